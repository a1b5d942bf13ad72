"""`train`: a run from its configuration to a filled run directory.

It reads as its phases: the datasets, the model, the callbacks, the resume point, `fit`
over what is left, and the final files (results, SavedModel, spike statistics).
"""

import contextlib
import dataclasses
import json
import logging
import os
import shutil

import keras

from keras_dta import files
from keras_dta.data import datasets
from keras_dta.losses import MeanOverTimeAccuracy, TETLoss
from keras_dta.optimizers import CoupledSGD
from keras_dta.training import checkpoint, distribute
from keras_dta.training.callbacks import RunCheckpoint, StopOnNonFiniteLoss, iterations
from keras_dta.training.config import LOSSES
from keras_dta.training.run_dir import RunPaths, prepare_run_dir

logger = logging.getLogger(__name__)

# Test batches the spike statistics (firing rates, energy) are measured on.
SPIKE_STATS_BATCHES = 4


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


def dataset_spec(config):
    """The dataset of `config`, with its options; a folder dataset is listed and scanned
    (`prepare`, its statistics cached in the run directory) so that its classes and input
    shape are known."""
    spec = datasets.get_dataset(config.dataset, **config.dataset_kwargs)
    if hasattr(spec, "prepare"):
        spec.prepare(config.data_dir, stats_dir=config.model_dir)
    return spec


def build_model(config, spec=None):
    """The model of `config` for its dataset (logits; per step for TET)."""
    from keras_dta import models

    spec = spec or dataset_spec(config)
    model_fn = getattr(models, config.model)
    return model_fn(
        attn=config.attn,
        T=config.T,
        num_classes=spec.num_classes,
        input_shape=spec.input_shape(config.T),
        return_sequences=config.loss == "tet",
        **config.model_kwargs,
    )


@dataclasses.dataclass
class _Run:
    """What the phases of one `train` call share."""

    config: object
    paths: RunPaths
    strategy: object
    is_chief: bool
    write_dir: str
    spec: object = None
    steps_per_epoch: int = None
    eval_ds: object = None
    stats_data: object = None


@contextlib.contextmanager
def dtype_policy(name):
    """Sets the global Keras dtype policy `name` (`float32`, `mixed_bfloat16`, ...) within."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _load_datasets(run):
    config, spec = run.config, run.spec
    replicas = run.strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(
            f"The global batch is split evenly over the {replicas} devices: give a multiple "
            f"of {replicas}. Received: batch_size={config.batch_size}"
        )
    num_train = spec.num_examples("train", config.data_dir, T=config.T)
    run.steps_per_epoch = config.steps_per_epoch or max(1, num_train // config.batch_size)
    run.eval_ds = spec.load(spec.eval_split, training=False, **_load_kwargs(config))
    if distribute.on_jax() and replicas > 1:
        run.eval_ds = _whole_batches_for_jax(run.eval_ds, spec, config, replicas)
    run.stats_data = run.eval_ds.take(SPIKE_STATS_BATCHES)


def _whole_batches_for_jax(eval_ds, spec, config, replicas):
    """JAX splits every batch evenly over the devices: a last test batch that does not split
    is left out, and the log says how many examples are evaluated."""
    num_eval = spec.num_examples(spec.eval_split, config.data_dir, T=config.T)
    remainder = num_eval % config.batch_size
    if remainder % replicas == 0:
        return eval_ds
    logger.warning(
        "Evaluating %d of the %d %s examples: the last %d do not split over %d devices "
        "(choose a batch size that leaves a multiple of %d to evaluate them all).",
        num_eval - remainder, num_eval, spec.eval_split, remainder, replicas, replicas,
    )
    return eval_ds.take(num_eval // config.batch_size)


def _load_kwargs(config):
    return dict(batch_size=config.batch_size, data_dir=config.data_dir, seed=config.seed, T=config.T)


def _train_data(run, start_step):
    """The training batches from global step `start_step` on, as an uninterrupted run sees
    them: a new pipeline (its random streams start as in a fresh run) with the batches
    already trained skipped, so a resumed seeded run ends with the uninterrupted run's
    weights. Skipping prepares those batches without training on them (their decoding and
    augmentation), a small cost next to training them."""
    config = run.config
    data = run.spec.load(
        "train", training=True, label_smoothing=config.label_smoothing, **_load_kwargs(config)
    ).repeat()
    if start_step:
        logger.info("Skipping the %d batches already trained, to continue the data stream.", start_step)
        data = data.skip(start_step)
    return data


def _log_plan(run, jit_compile):
    config = run.config
    logger.info(
        "Training %s (attn=%s, T=%d) on %s: %d epochs x %d steps, global batch %d "
        "on %d replica(s), lr %.4g (= %.4g x %d / %d), momentum %s, weight decay %s, "
        "loss %s, %s, jit_compile=%s",
        config.model, config.attn, config.T, config.dataset, config.epochs,
        run.steps_per_epoch, config.batch_size, run.strategy.num_replicas_in_sync,
        config.scaled_learning_rate, config.learning_rate, config.batch_size,
        config.base_batch_size, config.momentum, config.weight_decay, config.loss,
        config.mixed_precision, jit_compile,
    )


def compile_model(config, steps_per_epoch, spec=None, jit_compile=False):
    """The model of `config`, compiled as the trainer trains it: `CoupledSGD` with the cosine
    schedule over `config.epochs * steps_per_epoch` steps, the loss, the mean-over-time
    accuracy, and the optimizer's variables built.

    Call it inside the distribution's scope and the dtype policy of the run (as `train` does);
    `benchmarks/gpu_jax.py` times the step of the model it returns.

    Args:
        config: a `TrainConfig`.
        steps_per_epoch: steps of an epoch (the schedule's length).
        spec: the dataset (default: `config`'s).
        jit_compile: compile the step with XLA.
    """
    model = build_model(config, spec)
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch),
        loss=make_loss(config.loss),
        metrics=[MeanOverTimeAccuracy(name="accuracy")],
        jit_compile=jit_compile,
    )
    # Optimizer variables are created here, inside the strategy's scope, before a
    # backup is restored into them.
    model.optimizer.build(model.trainable_variables)
    return model


def _compile_model(run, jit_compile):
    with run.strategy.scope():
        return compile_model(run.config, run.steps_per_epoch, run.spec, jit_compile)


def _make_callbacks(run, run_checkpoint, extra):
    config, write_dir = run.config, run.write_dir
    # The checkpoint before the loggers: what they log for an epoch is committed.
    out = [StopOnNonFiniteLoss(config.model_dir), run_checkpoint]
    if run.is_chief:
        out.append(keras.callbacks.TensorBoard(os.path.join(write_dir, "logs"), write_graph=False))
    if config.firing_rate_freq:
        from keras_dta import stats

        # On every worker, like the checkpoint: running the model is collective
        # under MultiWorkerMirroredStrategy.
        out.append(
            stats.FiringRateLogger(
                run.stats_data,
                os.path.join(write_dir, "logs"),
                every_n_epochs=config.firing_rate_freq,
                on_train_end=False,
            )
        )
    out.extend(extra or [])
    return out


def _restore(run, model, store):
    """Restores the step checkpoint and repairs the run's files; returns the progress."""
    checkpoint.remove_leftovers(run.write_dir, store.directory)
    progress = store.restore(model)
    from_previous = store.restored_from == store.previous
    if progress is None:
        progress = checkpoint.new_progress()
    return checkpoint.repair(run.write_dir, progress, from_previous=from_previous)


def _resume_point(run, progress):
    """(epoch, step in epoch) to continue from, said in the user's terms."""
    config, steps = run.config, run.steps_per_epoch
    done = progress["step"]
    epoch, step_in_epoch = divmod(done, steps)
    if progress["epochs_done"] >= config.epochs:
        logger.info(
            "All %d epochs of this run are trained (step %d); finishing it.", config.epochs, done
        )
    elif step_in_epoch:
        logger.info(
            "Resuming epoch %d of %d at step %d of %d.", epoch + 1, config.epochs,
            step_in_epoch, steps,
        )
    elif done:
        logger.info(
            "Resuming after epoch %d of %d: epoch %d is next.", epoch, config.epochs, epoch + 1
        )
    return epoch, step_in_epoch


def _fit_rest(run, model, epoch, step_in_epoch, fit_callbacks, verbose):
    """Fits the rest of an interrupted epoch, then the epochs left."""
    config, steps = run.config, run.steps_per_epoch
    fit_kwargs = dict(
        validation_data=run.eval_ds,
        validation_steps=config.eval_steps,
        callbacks=fit_callbacks,
        verbose=verbose,
        shuffle=False,  # the datasets shuffle themselves
    )
    # Each `fit` call iterates its dataset afresh: each gets a pipeline that starts where the
    # data stream stands.
    if step_in_epoch and epoch < config.epochs:
        distribute.fit(
            model, run.strategy, _train_data(run, epoch * steps + step_in_epoch),
            initial_epoch=epoch, epochs=epoch + 1, steps_per_epoch=steps - step_in_epoch,
            **fit_kwargs,
        )
        epoch += 1
    if epoch < config.epochs:
        distribute.fit(
            model, run.strategy, _train_data(run, epoch * steps), initial_epoch=epoch,
            epochs=config.epochs, steps_per_epoch=steps, **fit_kwargs,
        )


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


def weights_fingerprint(model):
    """A short hash of the model's trainable variables (values, shapes, dtypes): equal
    fingerprints, equal weights. Every worker of a data-parallel run logs the same one.
    (BatchNorm's moving statistics are left out: under `tf.distribute` each worker keeps
    its own, from its own batches, and the chief's are saved.)"""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for variable in model.trainable_variables:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(variable.value))
        digest.update(f"{variable.path}:{value.dtype}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()[:16]


def _results(run, model, progress):
    config = run.config
    rows = progress["history"]
    last = {"epoch": rows[-1]["epoch"] + 1, **{k: v for k, v in rows[-1].items() if k != "epoch"}}
    best = progress["best"] or last
    return {
        "test_accuracy": best["val_accuracy"],
        "best_epoch": best["epoch"],
        "last_test_accuracy": last["val_accuracy"],
        "epochs": config.epochs,
        "steps_per_epoch": run.steps_per_epoch,
        "optimizer_iterations": iterations(model.optimizer),
        "learning_rate": config.scaled_learning_rate,
        "num_replicas": run.strategy.num_replicas_in_sync,
        "trainable_weights_fingerprint": weights_fingerprint(model),
        "paths": run.paths.describe(export=config.export),
    }


def _finalize(run, model, run_checkpoint):
    """Writes the results (and, on the chief, the SavedModel and spike statistics).

    The results come from the checkpoint's progress, so they say what `best.json`,
    `best.keras` and `history.csv` say, also when nothing was left to fit.
    """
    config, paths = run.config, run.paths
    results = _results(run, model, run_checkpoint.progress)
    logger.info("Final trainable weights fingerprint: %s", results["trainable_weights_fingerprint"])
    if not os.path.exists(run_checkpoint.best_path):
        files.save_model(model, run_checkpoint.best_path)
    if run.is_chief:
        if config.export:
            _export_saved_model(run_checkpoint.best_path, paths.saved_model, config.loss)
        rates = _write_spike_stats(
            run_checkpoint.best_path, run.stats_data, paths.spike_stats, paths.firing_rates_plot
        )
        results["mean_firing_rate"] = sum(rates.values()) / len(rates)
        files.write_json(paths.results, results)  # the run is complete from here
    run_checkpoint.store.remove()
    if not run.is_chief:
        shutil.rmtree(run.write_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the last worker out removes workers/
            os.rmdir(os.path.dirname(run.write_dir))
    logger.info(
        "Test accuracy %.4f (best, epoch %d); %.4f (last). Run directory: %s",
        results["test_accuracy"], results["best_epoch"], results["last_test_accuracy"],
        paths.root,
    )
    return results


def _train_in_policy(run, callbacks, verbose):
    config = run.config
    keras.utils.set_random_seed(config.seed)
    run.spec = dataset_spec(config)
    jit_compile = distribute.resolve_jit_compile(config.jit_compile, run.strategy)
    _load_datasets(run)
    _log_plan(run, jit_compile)
    model = _compile_model(run, jit_compile)
    # Every worker keeps a checkpoint, the others in their own directory: under
    # MultiWorkerMirroredStrategy saving is a collective operation.
    store = checkpoint.StepCheckpoint(os.path.join(run.write_dir, "backup"))
    progress = _restore(run, model, store)
    run_checkpoint = RunCheckpoint(
        run.write_dir, store, run.steps_per_epoch, config.backup_freq, progress=progress
    )
    fit_callbacks = _make_callbacks(run, run_checkpoint, callbacks)
    epoch, step_in_epoch = _resume_point(run, progress)
    _fit_rest(run, model, epoch, step_in_epoch, fit_callbacks, verbose)
    return _finalize(run, model, run_checkpoint)


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
    paths = RunPaths.of(config.model_dir)
    if prepare_run_dir(config) == "complete":
        with open(paths.results) as f:
            results = json.load(f)
        logger.info(
            "%s already holds a finished run of this configuration; not retraining "
            "(pass --overwrite to retrain). Test accuracy: %.4f",
            config.model_dir,
            results["test_accuracy"],
        )
        return results

    # The strategy first: MultiWorkerMirroredStrategy must be created before
    # the TensorFlow runtime is used.
    strategy = distribute.make_strategy(config.distribute)
    task_type, task_index, is_chief = distribute.cluster_task()
    # Workers other than the chief write what they must into their own place.
    write_dir = config.model_dir
    if not is_chief:
        write_dir = os.path.join(config.model_dir, "workers", f"{task_type}_{task_index}")
    os.makedirs(write_dir, exist_ok=True)
    run = _Run(config=config, paths=paths, strategy=strategy, is_chief=is_chief, write_dir=write_dir)
    with dtype_policy(config.mixed_precision):
        return _train_in_policy(run, callbacks, verbose)
