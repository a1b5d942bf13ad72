r"""Trains a DTA-SNN with the paper's recipe.

With no flags it trains a small MS-ResNet with DTA on scikit-learn's 8x8
digits (offline, a few minutes on a laptop CPU):

    python trainers/fit.py        # or: keras-dta-fit

The paper's settings (Table 4) are each dataset's preset; every flag
overrides one of them:

    python trainers/fit.py --dataset cifar100 --T 6 --model_dir runs/c100
    python trainers/fit.py --dataset imagenet2012 --data_dir /data/tfds

Rerunning the same command resumes an interrupted run from its last backup.
"""

import sys

from absl import app, flags, logging

from keras_dta import cli, training
from keras_dta.data import datasets

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "dataset", "digits", f"Dataset, one of {datasets.available_datasets()}."
)
flags.DEFINE_integer("T", None, "Time steps (default: the preset's).")
flags.DEFINE_enum("attn", "dta", list(training.ATTN_KINDS), "Attention after the stem.")
flags.DEFINE_integer("epochs", None, "Epochs (default: the preset's).")
flags.DEFINE_integer(
    "batch_size", None, "Global batch size over all devices (default: the preset's)."
)
flags.DEFINE_float(
    "learning_rate",
    None,
    "Learning rate at the preset's batch size (default: the preset's); the rate used is "
    "learning_rate * batch_size / preset batch size.",
)
flags.DEFINE_float("momentum", None, "SGD momentum (default: the preset's).")
flags.DEFINE_float(
    "weight_decay", None, "L2 weight decay, coupled as in torch.optim.SGD (default: the preset's)."
)
flags.DEFINE_string(
    "model_dir", None, "Run directory (default: runs/<dataset>); rerun to resume."
)
flags.DEFINE_string(
    "data_dir", None, "Dataset directory (tfds data_dir; raw recordings for cifar10_dvs)."
)
flags.DEFINE_integer(
    "steps_per_epoch", None, "Training steps per epoch (default: one pass over the data)."
)
flags.DEFINE_integer("eval_steps", None, "Evaluation steps (default: the whole test split).")
flags.DEFINE_string(
    "backup_freq", "epoch", "Back up for preemption every epoch ('epoch') or every N steps."
)
flags.DEFINE_enum("mixed_precision", "float32", list(training.PRECISIONS), "Dtype policy.")
flags.DEFINE_bool(
    "jit_compile",
    None,
    "Compile the training step with XLA (default: on JAX always; on TensorFlow on GPUs only, "
    "as its XLA step is slower on CPUs).",
)
flags.DEFINE_enum(
    "distribute",
    "auto",
    list(training.DISTRIBUTE_KINDS),
    "auto: all GPUs when there are 2 or more; mirrored: all local devices (MirroredStrategy; "
    "on JAX keras.distribution.DataParallel); multi_worker: MultiWorkerMirroredStrategy from "
    "TF_CONFIG (on JAX: keras.distribution.initialize from KERAS_DISTRIBUTION_*); none.",
)
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_enum("loss", "ce", list(training.LOSSES), "ce on mean-over-time logits, or tet.")
flags.DEFINE_bool("export", True, "Export a SavedModel of the best model at the end.")
flags.DEFINE_integer(
    "firing_rate_freq", 1, "Log LIF firing rates to TensorBoard every N epochs (0: never)."
)
flags.DEFINE_bool(
    "overwrite", False, "Replace a run of another configuration in --model_dir (or retrain a finished one)."
)


def _backup_freq(value):
    if value == "epoch":
        return value
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"--backup_freq must be 'epoch' or a positive integer. Received: "
            f"backup_freq={value!r}"
        ) from None


flags.DEFINE_string(
    "preset", None, "Training recipe (default: the dataset's own). `cpu_small`: a small model "
    "for one CPU, for any dataset."
)
# Dataset options: passed to the dataset's constructor only when set.
flags.DEFINE_integer("image_size", None, "image_folder, digits: side of the model input (default: the dataset's).")
flags.DEFINE_float(
    "test_fraction", None, "image_folder without a test/ folder: share of each class held out."
)
flags.DEFINE_bool("skip_bad", None, "image_folder: skip images that do not decode (counted in a warning).")
flags.DEFINE_enum(
    "split_order", None, ["name", "numeric"], "cifar10_dvs: order of the recordings before the "
    "9:1 split (default 'name': the published split)."
)
flags.DEFINE_bool(
    "cutmix", None, "cifar10, cifar100, image_folder: CutMix on training batches (default: the preset's; "
    "on in the paper's recipe, off in cpu_small)."
)
flags.DEFINE_bool(
    "augment", None, "image_folder: crop and flip training images (default: the preset's; on in the "
    "paper's recipe, off in cpu_small)."
)
flags.DEFINE_bool(
    "int8_grid", False, "Train the spike-fed convolutions on the int8 grid (quantization-aware): the "
    "model's dynamic-range TFLite export then computes what the model computes."
)
_DATASET_OPTIONS = {"image_size": "image_size", "test_fraction": "test_fraction", "skip_bad": "skip_bad",
                    "split_order": "order", "cutmix": "cutmix", "augment": "augment"}


def config_from_flags():
    """The `TrainConfig` the flags describe (validated).

    Every flag named like a `TrainConfig` field sets that field; `None` keeps the preset's.
    """
    overrides = {
        name: FLAGS[name].value
        for name in training.config_fields()
        if name in FLAGS and name != "dataset"
    }
    overrides["backup_freq"] = _backup_freq(FLAGS.backup_freq)
    if FLAGS.int8_grid:
        overrides["model_kwargs"] = {"int8_grid": True}
    overrides["dataset_kwargs"] = {
        option: FLAGS[flag].value for flag, option in _DATASET_OPTIONS.items() if FLAGS[flag].value is not None
    }
    return training.make_config(FLAGS.dataset, **overrides).validate()


def _log_results(results):
    paths = results["paths"]
    logging.info(
        "Test accuracy: %.4f (best, epoch %d of %d); last epoch: %.4f",
        results["test_accuracy"],
        results["best_epoch"],
        results["epochs"],
        results["last_test_accuracy"],
    )
    logging.info("Best model: %s", paths["best_model"])
    logging.info("Last model: %s", paths["last_model"])
    if paths["saved_model"]:
        logging.info("SavedModel: %s", paths["saved_model"])
    logging.info("TensorBoard logs: %s", paths["logs"])
    logging.info("History: %s", paths["history"])
    if paths.get("spike_stats"):
        logging.info("Spike statistics: %s (plot: %s)", paths["spike_stats"], paths["firing_rates_plot"])
    logging.info("Config: %s", paths["config"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        config = config_from_flags()
        status = training.prepare_run_dir(config)  # refuses another run's directory; writes config.json
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    logging.info(
        "%s run of %s on %s in %s",
        {"new": "A new", "resume": "The", "complete": "The finished"}[status],
        config.model,
        config.dataset,
        config.model_dir,
    )
    try:
        results = training.train(config, verbose=1 if sys.stdout.isatty() else 2)
    except (training.NonFiniteLossError, training.MultiWorkerUnsupportedError) as e:
        logging.error("%s", e)
        return 1
    except ValueError as e:
        # Bad input found while training starts (a dataset folder, a file): one line that
        # names it; the traceback only at --verbosity=1.
        logging.error("%s", e)
        logging.debug("Traceback:", exc_info=True)
        return 2
    _log_results(results)
    return 0


def run():
    """The `keras-dta-fit` entry point."""
    cli.run_main(main, __name__)


if __name__ == "__main__":
    run()
