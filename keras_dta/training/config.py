"""The configuration of a training run: `TrainConfig`, `make_config` and its validation."""

import dataclasses
import math
import os

from keras_dta._checks import check_int
from keras_dta.data import datasets
from keras_dta.models import MODEL_NAMES
from keras_dta.models.ms_resnet import ATTENTION_KINDS
from keras_dta.training import presets

#: Attention kinds, as the models take them.
ATTN_KINDS = ATTENTION_KINDS
LOSSES = ("ce", "tet")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
DISTRIBUTE_KINDS = ("auto", "none", "mirrored", "multi_worker")

# Keys that say how a run is executed rather than what it computes: a run
# directory may be resumed with them changed.
EXECUTION_KEYS = (
    "model_dir", "data_dir", "overwrite", "jit_compile", "distribute", "export", "firing_rate_freq",
)

# Bounds of the real-valued hyperparameters: (lower bound, exclusive; upper bound,
# exclusive; what the message says). All must be finite and >= 0.
_REAL_BOUNDS = {
    "learning_rate": (0.0, None, "a number > 0"),
    "momentum": (None, 1.0, "a number in [0, 1)"),
    "weight_decay": (None, None, "a number >= 0"),
    "label_smoothing": (None, 1.0, "a number in [0, 1)"),
}


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run.

    Build one with `make_config`, which fills the recipe (`preset`) in.

    Attributes:
        dataset: a name from `keras_dta.data.datasets.available_datasets()`.
        dataset_kwargs: options of the dataset's constructor (e.g. `image_size`,
            `test_fraction`, `skip_bad` for `image_folder`, `order` for
            `cifar10_dvs`); its defaults when empty.
        preset: the recipe the other fields were filled from (the dataset's
            own by default; `keras_dta.training.presets`).
        model: model function in `keras_dta.models` (one of `MODEL_NAMES`).
        model_kwargs: extra keyword arguments of the model function (widths,
            depths); the paper's sizes when empty.
        T: number of time steps.
        attn: attention kind, one of `ATTN_KINDS`.
        epochs: number of epochs.
        batch_size: global batch size (over all replicas and workers).
        base_batch_size: the batch size `learning_rate` is given for (the
            preset's); the learning rate is scaled by `batch_size / base_batch_size`.
        learning_rate: initial learning rate at `base_batch_size`.
        momentum: SGD momentum.
        weight_decay: L2 weight decay, coupled as in `torch.optim.SGD`.
        label_smoothing: label smoothing of the training labels.
        loss: `"ce"` (cross-entropy on the mean over time of the logits) or
            `"tet"` (mean over time of the per-step cross-entropies).
        model_dir: run directory.
        data_dir: dataset directory (tfds `data_dir`, or the raw CIFAR10-DVS
            recordings); `None` for the tfds default.
        steps_per_epoch: training steps per epoch; `None` for one pass over
            the training split.
        eval_steps: evaluation steps; `None` for the whole test split.
        backup_freq: `"epoch"` or a number of steps between backups.
        mixed_precision: dtype policy, one of `PRECISIONS`.
        jit_compile: compile the train step with XLA; `None`: always on JAX,
            on TensorFlow exactly when training on GPUs (on CPUs its XLA step
            compiles slowly and runs slower).
        distribute: one of `DISTRIBUTE_KINDS`.
        seed: random seed.
        export: write a SavedModel of the best model at the end.
        firing_rate_freq: log the firing rate of every LIF layer to TensorBoard
            every this many epochs (0: never), measured on
            `SPIKE_STATS_BATCHES` test batches.
        overwrite: replace a run of another configuration in `model_dir`, or
            retrain a finished one.
    """

    dataset: str = "digits"
    dataset_kwargs: dict = None
    preset: str = None
    model: str = None
    model_kwargs: dict = None
    T: int = None
    attn: str = "dta"
    epochs: int = None
    batch_size: int = None
    base_batch_size: int = None
    learning_rate: float = None
    momentum: float = None
    weight_decay: float = None
    label_smoothing: float = None
    loss: str = "ce"
    model_dir: str = None
    data_dir: str = None
    steps_per_epoch: int = None
    eval_steps: int = None
    backup_freq: object = "epoch"
    mixed_precision: str = "float32"
    jit_compile: bool = None
    distribute: str = "auto"
    seed: int = 0
    export: bool = True
    firing_rate_freq: int = 1
    overwrite: bool = False

    @property
    def scaled_learning_rate(self):
        """The peak learning rate: `learning_rate * batch_size / base_batch_size`."""
        return self.learning_rate * self.batch_size / self.base_batch_size

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        return cls(**values)

    def validate(self):
        """Raises `ValueError` naming the first bad field."""
        if self.dataset not in datasets.available_datasets():
            raise ValueError(
                f"Unknown dataset. Expected one of {datasets.available_datasets()}. "
                f"Received: dataset={self.dataset!r}"
            )
        for name in ("T", "epochs", "batch_size", "base_batch_size"):
            check_int(name, getattr(self, name))
        for name in ("steps_per_epoch", "eval_steps"):
            check_int(name, getattr(self, name), allow_none=True)
        check_int("seed", self.seed, minimum=0, allow_none=True)
        check_int("firing_rate_freq", self.firing_rate_freq, minimum=0, allow_none=True)
        if self.backup_freq != "epoch":
            check_int("backup_freq", self.backup_freq)
        for name in _REAL_BOUNDS:
            _check_real(name, getattr(self, name))
        for name, choices in (
            ("attn", ATTN_KINDS),
            ("loss", LOSSES),
            ("mixed_precision", PRECISIONS),
            ("distribute", DISTRIBUTE_KINDS),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"Unknown {name}. Expected one of {list(choices)}. "
                    f"Received: {name}={getattr(self, name)!r}"
                )
        if self.model not in MODEL_NAMES:
            raise ValueError(
                f"Unknown model. Expected one of {list(MODEL_NAMES)}. "
                f"Received: model={self.model!r}"
            )
        for name in ("model_kwargs", "dataset_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"`{name}` must be a dict. Received: {name}={getattr(self, name)!r}")
        datasets.get_dataset(self.dataset, **self.dataset_kwargs)  # its options, checked early
        if self.preset not in presets.available_presets():
            raise ValueError(
                f"Unknown preset. Expected one of {presets.available_presets()}. "
                f"Received: preset={self.preset!r}"
            )
        if not isinstance(self.model_dir, str) or not self.model_dir:
            raise ValueError(
                f"`model_dir` must be a non-empty path. Received: model_dir={self.model_dir!r}"
            )
        if self.jit_compile is not None and not isinstance(self.jit_compile, bool):
            raise ValueError(
                f"`jit_compile` must be a bool or None. Received: jit_compile={self.jit_compile!r}"
            )
        for name in ("export", "overwrite"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"`{name}` must be a bool. Received: {name}={getattr(self, name)!r}"
                )
        return self


def _check_real(name, value):
    lo, hi, bounds = _REAL_BOUNDS[name]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and value >= 0
    ok = ok and (lo is None or value > lo) and (hi is None or value < hi)
    if not ok:
        raise ValueError(f"`{name}` must be {bounds}. Received: {name}={value!r}")


def config_fields():
    """The names of `TrainConfig`'s fields, in order."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig))


def make_config(dataset="digits", **overrides):
    """A `TrainConfig` for `dataset`: a recipe, then `overrides` (None = the recipe's).

    Args:
        dataset: a registered dataset name.
        **overrides: `TrainConfig` fields; a value of `None` keeps the recipe's. `preset`
            names the recipe (default: the dataset's own). `model_kwargs` are merged over the
            recipe's (e.g. `{"int8_grid": True}` keeps the recipe's widths).

    Returns:
        An unvalidated `TrainConfig` (call `.validate()`).
    """
    datasets.check_dataset(dataset)  # an unknown name fails here, naming the datasets
    unknown = sorted(set(overrides) - set(config_fields()))
    if unknown:
        raise ValueError(f"Unknown configuration fields. Received: {unknown}")
    name = overrides.get("preset") or dataset
    preset = presets.get_preset(name)
    # A recipe's dataset options apply to the datasets that take them (`cpu_small` turns
    # CutMix off where there is CutMix); the caller's are checked strictly, and win.
    taken = datasets.dataset_options(dataset)
    recipe_options = {k: v for k, v in preset.pop("dataset_kwargs", {}).items() if k in taken}
    values = {"dataset": dataset, "model_dir": os.path.join("runs", dataset), "preset": name}
    values.update(preset)
    values["base_batch_size"] = preset["batch_size"]
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["dataset_kwargs"] = {**recipe_options, **(overrides.get("dataset_kwargs") or {})}
    values["model_kwargs"] = {**(preset.get("model_kwargs") or {}), **(overrides.get("model_kwargs") or {})}
    return TrainConfig(**values)
