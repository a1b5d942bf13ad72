"""Training DTA-SNNs: the recipe of the paper (Table 4) on Keras 3 / TensorFlow.

`train(config)` builds the dataset, the model, the optimizer and the callbacks
from a `TrainConfig`, runs `model.fit`, and leaves a run directory:

```
model_dir/
  config.json       the configuration (refuses a different one without overwrite)
  history.csv       per-epoch metrics (appended across restarts)
  logs/             TensorBoard
  best.keras        the model with the best test accuracy so far (best.json: which)
  last.keras        the model after the last finished epoch
  saved_model/      a TF SavedModel of the best model (mean-over-time logits)
  results.json      written when the run is complete
  spike_stats.json  firing rate per LIF layer and the energy estimate of the best model
  firing_rates.png  the firing rates, plotted
  backup/           BackupAndRestore state while the run is in progress
```

Recipe: SGD with momentum and weight decay coupled as in `torch.optim.SGD`
(`CoupledSGD`), cosine decay from the learning rate to 0 over the whole run,
cross-entropy on the mean over time of the logits (or TET, `loss="tet"`).
The learning rate is scaled linearly with the global batch size:
`lr = learning_rate * batch_size / base_batch_size`, where `base_batch_size`
is the preset's batch size.

A run killed at any point and restarted with the same configuration resumes
from its last backup, and ends with the same number of epochs, optimizer
iterations and learning-rate schedule as an uninterrupted run.
"""

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil

import keras
from keras import ops

from keras_dta import files
from keras_dta.losses import MeanOverTimeAccuracy, TETLoss
from keras_dta.optimizers import CoupledSGD
from keras_dta.data import datasets

logger = logging.getLogger(__name__)

ATTN_KINDS = ("dta", "txa", "tna", "none")
LOSSES = ("ce", "tet")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
DISTRIBUTE_KINDS = ("auto", "none", "mirrored", "multi_worker")

# Keys that say how a run is executed rather than what it computes: a run
# directory may be resumed with them changed.
_EXECUTION_KEYS = (
    "model_dir", "data_dir", "overwrite", "jit_compile", "distribute", "export", "firing_rate_freq",
)

# Test batches the spike statistics (firing rates, energy) are measured on.
SPIKE_STATS_BATCHES = 4

_RUN_FILES = (
    "results.json",
    "best.keras",
    "best.json",
    "last.keras",
    "history.csv",
    "spike_stats.json",
    "firing_rates.png",
)
_RUN_DIRS = ("logs", "backup", "saved_model")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run.

    Build one with `make_config`, which fills the dataset's preset in.

    Attributes:
        dataset: a name from `keras_dta.data.datasets.available_datasets()`.
        model: model function in `keras_dta.models` (`"ms_resnet18"`, ...).
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
        jit_compile: compile the train step with XLA; `None` for XLA exactly
            when training on GPUs (on CPUs it compiles slowly and runs slower).
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
            _check_positive_int(name, getattr(self, name))
        for name in ("steps_per_epoch", "eval_steps", "seed", "firing_rate_freq"):
            value = getattr(self, name)
            if value is not None:
                minimum = 0 if name in ("seed", "firing_rate_freq") else 1
                _check_positive_int(name, value, minimum=minimum)
        if self.backup_freq != "epoch":
            _check_positive_int("backup_freq", self.backup_freq)
        for name, lo, hi in (
            ("learning_rate", 0.0, None),
            ("momentum", None, 1.0),
            ("weight_decay", None, None),
            ("label_smoothing", None, 1.0),
        ):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and math.isfinite(value) and value >= 0
            ok = ok and (lo is None or value > lo) and (hi is None or value < hi)
            if not ok:
                bounds = {
                    "learning_rate": "a number > 0",
                    "momentum": "a number in [0, 1)",
                    "weight_decay": "a number >= 0",
                    "label_smoothing": "a number in [0, 1)",
                }[name]
                raise ValueError(f"`{name}` must be {bounds}. Received: {name}={value!r}")
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
        if self.model not in ("ms_resnet18", "ms_resnet34"):
            raise ValueError(
                "Unknown model. Expected 'ms_resnet18' or 'ms_resnet34'. "
                f"Received: model={self.model!r}"
            )
        if not isinstance(self.model_kwargs, dict):
            raise ValueError(
                f"`model_kwargs` must be a dict. Received: model_kwargs={self.model_kwargs!r}"
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


def _iterations(optimizer):
    """The optimizer's step count as an int (also for a mirrored variable)."""
    return int(ops.convert_to_numpy(optimizer.iterations.value))


def _check_positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"`{name}` must be {what}. Received: {name}={value!r}")


def make_config(dataset="digits", **overrides):
    """A `TrainConfig` for `dataset`: its preset, then `overrides` (None = preset).

    Args:
        dataset: a registered dataset name.
        **overrides: `TrainConfig` fields; a value of `None` keeps the preset's.

    Returns:
        An unvalidated `TrainConfig` (call `.validate()`).
    """
    spec = datasets.get_dataset(dataset)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"Unknown configuration fields. Received: {unknown}")
    values = {"dataset": dataset, "model_dir": os.path.join("runs", dataset)}
    values.update(
        {k: (dict(v) if isinstance(v, dict) else v) for k, v in spec.preset.items()}
    )
    values["base_batch_size"] = spec.preset["batch_size"]
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)


# ---------------------------------------------------------------------------
# Optimizer, losses, metrics
# ---------------------------------------------------------------------------


def make_loss(kind):
    """The training loss: `"ce"` on mean-over-time logits or `"tet"`."""
    if kind == "ce":
        # Labels come soft (CutMix, smoothing); from_logits as the model
        # outputs logits.
        return keras.losses.CategoricalCrossentropy(from_logits=True)
    if kind == "tet":
        return TETLoss()
    raise ValueError(f"Unknown loss. Expected one of {list(LOSSES)}. Received: loss={kind!r}")


def make_optimizer(config, steps_per_epoch):
    """`CoupledSGD` with cosine decay from the scaled learning rate to 0."""
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.scaled_learning_rate,
        decay_steps=config.epochs * steps_per_epoch,
        alpha=0.0,
    )
    return CoupledSGD(
        learning_rate=schedule,
        momentum=config.momentum,
        l2_weight_decay=config.weight_decay,
    )


def build_model(config, spec=None):
    """The model of `config` for its dataset (logits; per step for TET)."""
    from keras_dta import models

    spec = spec or datasets.get_dataset(config.dataset)
    model_fn = getattr(models, config.model)
    return model_fn(
        attn=config.attn,
        T=config.T,
        num_classes=spec.num_classes,
        input_shape=spec.input_shape(config.T),
        return_sequences=config.loss == "tet",
        **config.model_kwargs,
    )


# ---------------------------------------------------------------------------
# Distribution
# ---------------------------------------------------------------------------


def _cluster_task():
    """(task_type, task_index, is_chief) from TF_CONFIG; a single worker is chief."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = tf_config.get("task") or {}
    cluster = tf_config.get("cluster") or {}
    task_type, index = task.get("type"), int(task.get("index", 0))
    if task_type is None:
        return None, 0, True
    is_chief = task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in cluster)
    return task_type, index, is_chief


def make_strategy(kind):
    """A `tf.distribute` strategy.

    Args:
        kind: `"auto"`: `MirroredStrategy` over all visible GPUs when there are
            2 or more, else the default strategy; `"none"`: the default
            strategy; `"mirrored"`: `MirroredStrategy` over all GPUs, or over
            all logical CPU devices when there is no GPU; `"multi_worker"`:
            `MultiWorkerMirroredStrategy`, configured by the `TF_CONFIG`
            environment variable.
    """
    import tensorflow as tf

    if kind not in DISTRIBUTE_KINDS:
        raise ValueError(
            f"Unknown distribute. Expected one of {list(DISTRIBUTE_KINDS)}. "
            f"Received: distribute={kind!r}"
        )
    if kind == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "distribute='multi_worker' needs the TF_CONFIG environment variable "
                "(cluster and task) on every worker. Received: TF_CONFIG unset"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if kind == "none" or (kind == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


class MultiWorkerUnsupportedError(RuntimeError):
    """Keras's `fit` failed under `MultiWorkerMirroredStrategy` (a Keras 3 bug)."""


@contextlib.contextmanager
def _multi_worker_fit_fixes(model, strategy):
    """Works around Keras 3's `fit` under `MultiWorkerMirroredStrategy`.

    Keras 3 (through 3.15 at least; keras-team/keras#20585, tensorflow/tensorflow#72388)
    fails there twice: its symbolic build reduces a distributed `(x, y)` batch with
    `strategy.reduce`, which the collective strategy rejects, and it reduces each step's
    scalar logs with `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars. Under this
    strategy only, the model is left without its own strategy reference (Keras then takes the
    one in scope, and skips the symbolic build until the train function is traced), and the
    logs are reduced over replicas with `axis=None`. Other strategies run untouched.
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    from keras.src.backend.tensorflow import trainer as tf_trainer  # noqa: PLC0415

    original_reduce = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction="auto"):
        if reduction not in ("auto", "mean"):
            return original_reduce(values, strategy, reduction)

        def reduce(value):
            if isinstance(value, tf.distribute.DistributedValues):
                return strategy.reduce("MEAN", value, axis=None)
            return value

        return tf.nest.map_structure(reduce, values)

    saved_strategy = model._distribute_strategy
    tf_trainer.reduce_per_replica = reduce_per_replica
    model._distribute_strategy = None
    try:
        with strategy.scope():
            yield
    finally:
        tf_trainer.reduce_per_replica = original_reduce
        model._distribute_strategy = saved_strategy


def _fit(model, strategy, *args, **kwargs):
    """`model.fit`, with the multi-worker fixes, and a clear error if they fall short."""
    import tensorflow as tf

    try:
        with _multi_worker_fit_fixes(model, strategy):
            return model.fit(*args, **kwargs)
    except ValueError as error:
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and "PerReplica" in str(error):
            raise MultiWorkerUnsupportedError(
                f"Keras {keras.__version__}'s model.fit does not run under "
                "MultiWorkerMirroredStrategy (keras-team/keras#20585, "
                "tensorflow/tensorflow#72388), and keras_dta's workaround did not cover this "
                "version. The strategy and TF_CONFIG were set up correctly. Train on one host "
                "with --distribute=mirrored (all its GPUs)."
            ) from error
        raise


def _resolve_jit_compile(jit_compile, strategy):
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if jit_compile is None:
        return bool(gpus)
    if not jit_compile:
        return False
    if strategy.num_replicas_in_sync > 1 and not gpus:
        # XLA-compiled steps under MirroredStrategy on (logical) CPU devices
        # fail in this TensorFlow; run them without XLA rather than crash.
        logger.warning(
            "jit_compile=True is not supported with %d replicas on CPU devices; "
            "training without XLA (jit_compile=False).",
            strategy.num_replicas_in_sync,
        )
        return False
    return True


# ---------------------------------------------------------------------------
# Run directory
# ---------------------------------------------------------------------------


def _comparable(config_dict):
    return {k: v for k, v in config_dict.items() if k not in _EXECUTION_KEYS}


def prepare_run_dir(config):
    """Creates `config.model_dir`, checks it against an earlier run, writes config.json.

    - Empty or new directory: a new run.
    - The same configuration (up to `model_dir`, `data_dir`, `jit_compile`,
      `distribute`, `export`, `overwrite`): resumes; if that run finished, returns
      `"complete"` unless `overwrite`, which retrains it from scratch.
    - Another configuration: `ValueError` unless `overwrite`, which deletes
      that run's files (only the files a run writes) and starts anew.

    Returns:
        `"new"`, `"resume"` or `"complete"`.
    """
    model_dir = config.model_dir
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, "config.json")
    status = "new"
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        new = json.loads(json.dumps(config.to_dict()))  # tuples -> lists
        diff = {
            k: (old.get(k), new.get(k))
            for k in sorted(set(_comparable(old)) | set(_comparable(new)))
            if old.get(k) != new.get(k)
        }
        finished = os.path.exists(os.path.join(model_dir, "results.json"))
        if diff and not config.overwrite:
            details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise ValueError(
                f"{model_dir} holds a run with another configuration ({details}). "
                "Pass --overwrite to replace it, or choose another --model_dir. "
                f"Received: model_dir={model_dir!r}"
            )
        if diff or (finished and config.overwrite):
            logger.warning("Overwriting the run in %s.", model_dir)
            _clear_run_dir(model_dir)
        elif finished:
            status = "complete"
        else:
            status = "resume"
    files.write_json(path, config.to_dict())
    return status


def _clear_run_dir(model_dir):
    for name in _RUN_FILES:
        p = os.path.join(model_dir, name)
        if os.path.exists(p):
            os.remove(p)
    for name in _RUN_DIRS:
        p = os.path.join(model_dir, name)
        if os.path.isdir(p):
            shutil.rmtree(p)


# ---------------------------------------------------------------------------
# Callbacks
# ---------------------------------------------------------------------------


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises `NonFiniteLossError` at the first batch whose loss is NaN or inf.

    Raising (rather than `stop_training`, as `keras.callbacks.TerminateOnNaN`
    does) skips the end-of-training hooks, so no callback writes the broken
    weights and the backup and the best and last models stay as they were.
    It must come before the checkpointing callbacks.
    """

    def __init__(self, model_dir=None):
        super().__init__()
        self.model_dir = model_dir
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if not math.isfinite(loss):
            step = _iterations(self.model.optimizer)
            raise NonFiniteLossError(
                f"The training loss became {loss} at step {step} (epoch {self._epoch + 1}, "
                f"batch {batch + 1}). Training stopped; the last good backup and "
                f"models in {self.model_dir} are kept. Try a lower --learning_rate "
                "or check the data."
            )


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that also resumes in the middle of an epoch.

    Keras restarts an interrupted epoch from its first batch, so with a step
    `save_freq` the optimizer would run more steps than an uninterrupted run.
    Here the epoch to resume is derived from the restored optimizer iterations
    (`iterations // steps_per_epoch`), and `train` runs the rest of a partial
    epoch first. The state at every epoch end is saved too, so the backup is
    never older than the last finished epoch. The backup is kept when training
    ends (`train` deletes it once the run is complete).
    """

    def __init__(self, backup_dir, steps_per_epoch, save_freq="epoch"):
        super().__init__(
            backup_dir, save_freq=save_freq, double_checkpoint=True, delete_checkpoint=False
        )
        self.steps_per_epoch = steps_per_epoch

    @property
    def exists(self):
        return os.path.exists(self._weights_path)

    def _load_model(self):
        super()._load_model()
        if self.exists:
            iterations = _iterations(self.model.optimizer)
            self.model._initial_epoch = iterations // self.steps_per_epoch

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            self._save_model()


class RunCheckpoint(keras.callbacks.Callback):
    """Saves `last.keras` every epoch and `best.keras` on a new best test accuracy.

    Writes go through temporary files (a kill never leaves a half-written
    model). The best score so far is kept in `best.json`, so it survives a
    restart.
    """

    def __init__(self, model_dir, monitor="val_accuracy"):
        super().__init__()
        self.model_dir = model_dir
        self.monitor = monitor
        self.best_path = os.path.join(model_dir, "best.keras")
        self.last_path = os.path.join(model_dir, "last.keras")
        self.best_json = os.path.join(model_dir, "best.json")
        self.best = None
        self.last = None

    def on_train_begin(self, logs=None):
        if os.path.exists(self.best_json):
            with open(self.best_json) as f:
                self.best = json.load(f)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.last = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}}
        files.save_model(self.model, self.last_path)
        value = logs.get(self.monitor)
        if value is None:
            return
        if self.best is None or float(value) > self.best[self.monitor]:
            files.save_model(self.model, self.best_path)
            self.best = dict(self.last)
            files.write_json(self.best_json, self.best)
            logger.info(
                "Epoch %d: new best %s %.4f, saved %s",
                epoch + 1,
                self.monitor,
                float(value),
                self.best_path,
            )


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def _export_saved_model(best_path, export_dir, loss):
    """Exports the best model as a SavedModel of mean-over-time logits."""
    from keras_dta import export
    from keras_dta.layers import MeanOverTime

    model = keras.saving.load_model(best_path, compile=False)
    if loss == "tet":
        model = keras.Model(model.input, MeanOverTime()(model.output), name=model.name)
    export.export_saved_model(model, export_dir)


def _write_spike_stats(best_path, data, json_path, png_path):
    """Firing rates and the energy estimate of the best model, as JSON and a PNG plot."""
    from keras_dta import stats

    model = keras.saving.load_model(best_path, compile=False)
    rates = stats.firing_rates(model, data)
    report = stats.energy(model, rates)
    files.write_json(json_path, {"firing_rates": rates, "energy": report.to_dict()})
    stats.plot_firing_rates(rates, png_path)
    logger.info("Spike statistics of the best model:\n%s", stats.format_energy_table(report))
    return rates


def train(config, *, callbacks=None, verbose="auto"):
    """Trains the model described by `config` and fills its run directory.

    Args:
        config: a `TrainConfig` (see `make_config`).
        callbacks: extra Keras callbacks, run after the built-in ones.
        verbose: `model.fit` verbosity.

    Returns:
        A dict with the test accuracy of the best and of the last model, the
        epoch of the best one, the optimizer iterations, the scaled learning
        rate and the paths written (also saved as `results.json`).

    Raises:
        ValueError: a bad configuration, or `model_dir` holding another run.
        NonFiniteLossError: the loss became NaN or infinite.
    """
    config.validate()
    model_dir = config.model_dir
    results_path = os.path.join(model_dir, "results.json")
    status = prepare_run_dir(config)
    if status == "complete":
        with open(results_path) as f:
            results = json.load(f)
        logger.info(
            "%s already holds a finished run of this configuration; not retraining "
            "(pass --overwrite to retrain). Test accuracy: %.4f",
            model_dir,
            results["test_accuracy"],
        )
        return results

    # The strategy first: MultiWorkerMirroredStrategy must be created before
    # the TensorFlow runtime is used.
    strategy = make_strategy(config.distribute)
    task_type, task_index, is_chief = _cluster_task()
    # Workers other than the chief write what they must into their own place.
    write_dir = model_dir if is_chief else os.path.join(model_dir, "workers", f"{task_type}_{task_index}")
    os.makedirs(write_dir, exist_ok=True)

    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(config.mixed_precision)
    try:
        keras.utils.set_random_seed(config.seed)
        spec = datasets.get_dataset(config.dataset)
        jit_compile = _resolve_jit_compile(config.jit_compile, strategy)

        num_train = spec.num_examples("train", config.data_dir, T=config.T)
        steps_per_epoch = config.steps_per_epoch or max(1, num_train // config.batch_size)
        load_kwargs = dict(
            batch_size=config.batch_size, data_dir=config.data_dir, seed=config.seed, T=config.T
        )
        train_ds = spec.load(
            "train", training=True, label_smoothing=config.label_smoothing, **load_kwargs
        ).repeat()
        eval_ds = spec.load(spec.eval_split, training=False, **load_kwargs)

        lr = config.scaled_learning_rate
        logger.info(
            "Training %s (attn=%s, T=%d) on %s: %d epochs x %d steps, global batch %d "
            "on %d replica(s), lr %.4g (= %.4g x %d / %d), momentum %s, weight decay %s, "
            "loss %s, %s, jit_compile=%s",
            config.model,
            config.attn,
            config.T,
            config.dataset,
            config.epochs,
            steps_per_epoch,
            config.batch_size,
            strategy.num_replicas_in_sync,
            lr,
            config.learning_rate,
            config.batch_size,
            config.base_batch_size,
            config.momentum,
            config.weight_decay,
            config.loss,
            config.mixed_precision,
            jit_compile,
        )

        with strategy.scope():
            model = build_model(config, spec)
            model.compile(
                optimizer=make_optimizer(config, steps_per_epoch),
                loss=make_loss(config.loss),
                metrics=[MeanOverTimeAccuracy(name="accuracy")],
                jit_compile=jit_compile,
            )
            # Optimizer variables are created here, inside the strategy's
            # scope, before a backup is restored into them.
            model.optimizer.build(model.trainable_variables)

        backup = ResumableBackup(
            os.path.join(write_dir, "backup"), steps_per_epoch, save_freq=config.backup_freq
        )
        # Every worker saves, the others into their own directory: under
        # MultiWorkerMirroredStrategy saving is a collective operation.
        checkpoint = RunCheckpoint(write_dir)
        all_callbacks = [
            StopOnNonFiniteLoss(model_dir),
            checkpoint,
            keras.callbacks.CSVLogger(os.path.join(write_dir, "history.csv"), append=True),
        ]
        stats_data = eval_ds.take(SPIKE_STATS_BATCHES)
        if is_chief:
            # tensorboard is a dependency of keras_dta: tf.summary.scalar needs it.
            all_callbacks.append(keras.callbacks.TensorBoard(os.path.join(write_dir, "logs"), write_graph=False))
        if config.firing_rate_freq:
            from keras_dta import stats

            # On every worker, like the checkpoint: running the model is collective
            # under MultiWorkerMirroredStrategy.
            all_callbacks.append(
                stats.FiringRateLogger(
                    stats_data,
                    os.path.join(write_dir, "logs"),
                    every_n_epochs=config.firing_rate_freq,
                    on_train_end=False,
                )
            )
        all_callbacks.append(backup)  # last: it saves what the others have seen
        all_callbacks.extend(callbacks or [])

        # Restore now, to know where the run stands (fit restores again, to the
        # same state).
        backup.set_model(model)
        backup.on_train_begin()
        done = _iterations(model.optimizer)
        epoch, step_in_epoch = divmod(done, steps_per_epoch)
        if done:
            logger.info(
                "Resuming from %s at step %d (epoch %d, step %d of %d).",
                backup.backup_dir,
                done,
                epoch + 1,
                step_in_epoch,
                steps_per_epoch,
            )
        fit_kwargs = dict(
            validation_data=eval_ds,
            validation_steps=config.eval_steps,
            callbacks=all_callbacks,
            verbose=verbose,
            shuffle=False,  # the datasets shuffle themselves
        )
        if step_in_epoch and epoch < config.epochs:
            # The rest of the interrupted epoch, then the following epochs.
            _fit(
                model,
                strategy,
                train_ds,
                initial_epoch=epoch,
                epochs=epoch + 1,
                steps_per_epoch=steps_per_epoch - step_in_epoch,
                **fit_kwargs,
            )
            epoch += 1
        if epoch < config.epochs:
            _fit(
                model,
                strategy,
                train_ds,
                initial_epoch=epoch,
                epochs=config.epochs,
                steps_per_epoch=steps_per_epoch,
                **fit_kwargs,
            )

        iterations = _iterations(model.optimizer)
        last = checkpoint.last
        if last is None or "val_accuracy" not in last:
            # Nothing ran in this process (the training had finished before a
            # restart): measure the final model.
            with _multi_worker_fit_fixes(model, strategy):
                logs = model.evaluate(eval_ds, steps=config.eval_steps, return_dict=True, verbose=0)
            last = {"epoch": config.epochs, **{f"val_{k}": float(v) for k, v in logs.items()}}
        best = checkpoint.best or last
        paths = {
            "model_dir": os.path.abspath(model_dir),
            "config": os.path.abspath(os.path.join(model_dir, "config.json")),
            "best_model": os.path.abspath(checkpoint.best_path),
            "last_model": os.path.abspath(checkpoint.last_path),
            "saved_model": os.path.abspath(os.path.join(model_dir, "saved_model")),
            "logs": os.path.abspath(os.path.join(model_dir, "logs")),
            "history": os.path.abspath(os.path.join(model_dir, "history.csv")),
            "spike_stats": os.path.abspath(os.path.join(model_dir, "spike_stats.json")),
            "firing_rates_plot": os.path.abspath(os.path.join(model_dir, "firing_rates.png")),
        }
        results = {
            "test_accuracy": best["val_accuracy"],
            "best_epoch": best["epoch"],
            "last_test_accuracy": last["val_accuracy"],
            "epochs": config.epochs,
            "steps_per_epoch": steps_per_epoch,
            "optimizer_iterations": iterations,
            "learning_rate": lr,
            "num_replicas": strategy.num_replicas_in_sync,
            "paths": paths,
        }
        if not os.path.exists(checkpoint.best_path):
            files.save_model(model, checkpoint.best_path)
        if is_chief:
            if config.export:
                _export_saved_model(checkpoint.best_path, paths["saved_model"], config.loss)
            else:
                paths["saved_model"] = None
            rates = _write_spike_stats(
                checkpoint.best_path, stats_data, paths["spike_stats"], paths["firing_rates_plot"]
            )
            results["mean_firing_rate"] = sum(rates.values()) / len(rates)
            files.write_json(results_path, results)
        # The run is complete: its backup is no longer needed.
        if os.path.isdir(backup.backup_dir):
            shutil.rmtree(backup.backup_dir)
        if not is_chief:
            shutil.rmtree(write_dir, ignore_errors=True)
            with contextlib.suppress(OSError):  # the last worker out removes workers/
                os.rmdir(os.path.dirname(write_dir))
        logger.info(
            "Test accuracy %.4f (best, epoch %d); %.4f (last). Run directory: %s",
            results["test_accuracy"],
            results["best_epoch"],
            results["last_test_accuracy"],
            paths["model_dir"],
        )
        return results
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
