"""Distribution: the `tf.distribute` strategy (on JAX, `keras.distribution.DataParallel`:
`keras_dta.training.jax_parallel`), the chief of a cluster, the XLA choice, and `fit` under
`MultiWorkerMirroredStrategy`.

The multi-worker workaround is the one place where the trainer reaches into Keras
internals (`keras.src.backend.tensorflow.trainer`); it is guarded by the Keras version it
was checked on, and `tests/test_fit.py::test_multi_worker_on_two_local_processes` fails
when a Keras release changes what it relies on.
"""

import contextlib
import json
import logging
import os

import keras

from keras_dta.training import jax_parallel
from keras_dta.training.config import DISTRIBUTE_KINDS

logger = logging.getLogger(__name__)

#: The newest Keras release the multi-worker workaround was checked on.
MULTI_WORKER_FIX_CHECKED_ON = (3, 15)


class MultiWorkerUnsupportedError(RuntimeError):
    """Keras's `fit` failed under `MultiWorkerMirroredStrategy` (a Keras 3 bug)."""


def on_jax():
    """Whether Keras runs on JAX (the distribution then comes from `jax_parallel`)."""
    return keras.backend.backend() == "jax"


def cluster_task():
    """(task_type, task_index, is_chief) from TF_CONFIG (on JAX: the process index); a
    single worker is chief."""
    if on_jax():
        return jax_parallel.cluster_task()
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = tf_config.get("task") or {}
    cluster = tf_config.get("cluster") or {}
    task_type, index = task.get("type"), int(task.get("index", 0))
    if task_type is None:
        return None, 0, True
    is_chief = task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in cluster)
    return task_type, index, is_chief


def make_strategy(kind):
    """A `tf.distribute` strategy (on JAX: a `jax_parallel.JaxDataParallel`).

    Args:
        kind: `"auto"`: `MirroredStrategy` over all visible GPUs when there are
            2 or more, else the default strategy; `"none"`: the default
            strategy; `"mirrored"`: `MirroredStrategy` over all GPUs, or over
            all logical CPU devices when there is no GPU; `"multi_worker"`:
            `MultiWorkerMirroredStrategy`, configured by the `TF_CONFIG`
            environment variable. On JAX the same kinds over JAX devices
            (`jax_parallel.make_distribution`).
    """
    if kind not in DISTRIBUTE_KINDS:
        raise ValueError(
            f"Unknown distribute. Expected one of {list(DISTRIBUTE_KINDS)}. "
            f"Received: distribute={kind!r}"
        )
    if on_jax():
        return jax_parallel.make_distribution(kind)
    import tensorflow as tf

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


def resolve_jit_compile(jit_compile, strategy):
    """XLA or not. `None`: on JAX always (JAX runs uncompiled steps op by op, many times
    slower); on TensorFlow on GPUs only (on CPUs its XLA step is slower than the graph).
    TensorFlow with several replicas on CPUs runs without XLA."""
    if on_jax():
        return True if jit_compile is None else bool(jit_compile)
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


def check_multi_worker_fix_version(version=None):
    """Warns when Keras is newer than the release the multi-worker workaround was checked on.

    Returns:
        True when `version` (default: the installed Keras) is one it was checked on.
    """
    version = version or keras.__version__
    major_minor = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if major_minor <= MULTI_WORKER_FIX_CHECKED_ON:
        return True
    logger.warning(
        "keras_dta's MultiWorkerMirroredStrategy workaround was checked on Keras up to "
        "%s; this is Keras %s. If fit fails, train on one host with --distribute=mirrored.",
        ".".join(map(str, MULTI_WORKER_FIX_CHECKED_ON)),
        version,
    )
    return False


@contextlib.contextmanager
def multi_worker_fit_fixes(model, strategy):
    """Works around Keras 3's `fit` under `MultiWorkerMirroredStrategy`.

    Keras 3 (through 3.15 at least; keras-team/keras#20585, tensorflow/tensorflow#72388)
    fails there twice: its symbolic build reduces a distributed `(x, y)` batch with
    `strategy.reduce`, which the collective strategy rejects, and it reduces each step's
    scalar logs with `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars. Under this
    strategy only, the model is left without its own strategy reference (Keras then takes the
    one in scope, and skips the symbolic build until the train function is traced), and the
    logs are reduced over replicas with `axis=None`. Other strategies run untouched.

    No public Keras API reaches these two places, so this swaps the private
    `keras.src.backend.tensorflow.trainer.reduce_per_replica` while `fit` runs and warns
    on a Keras newer than `MULTI_WORKER_FIX_CHECKED_ON`.
    """
    if on_jax():
        with strategy.scope():  # Keras's JAX trainer splits the batches of the current distribution
            yield
        return
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    check_multi_worker_fix_version()
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


def fit(model, strategy, *args, **kwargs):
    """`model.fit`, with the multi-worker fixes, and a clear error if they fall short."""
    try:
        with multi_worker_fit_fixes(model, strategy):
            return model.fit(*args, **kwargs)
    except ValueError as error:
        if "PerReplica" in str(error) and _is_multi_worker(strategy):
            raise MultiWorkerUnsupportedError(
                f"Keras {keras.__version__}'s model.fit does not run under "
                "MultiWorkerMirroredStrategy (keras-team/keras#20585, "
                "tensorflow/tensorflow#72388), and keras_dta's workaround did not cover this "
                "version. The strategy and TF_CONFIG were set up correctly. Train on one host "
                "with --distribute=mirrored (all its GPUs)."
            ) from error
        raise


def _is_multi_worker(strategy):
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def evaluate(model, strategy, data, steps):
    """`model.evaluate` as a dict of logs, with the multi-worker fixes."""
    with multi_worker_fit_fixes(model, strategy):
        return model.evaluate(data, steps=steps, return_dict=True, verbose=0)
