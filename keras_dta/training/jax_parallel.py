"""Distribution on the JAX backend: `keras.distribution.DataParallel` behind the two things
the trainer asks of a `tf.distribute` strategy (a `scope()` and `num_replicas_in_sync`).

The `--distribute` kinds mean what they mean on TensorFlow:

- `none`: one device (the first).
- `auto`: data-parallel over all local accelerators when there are 2 or more, else one device.
- `mirrored`: data-parallel over all local devices (accelerators, or the CPU devices when there
  are none: `XLA_FLAGS=--xla_force_host_platform_device_count=N` makes N of them).
- `multi_worker`: `keras.distribution.initialize()` joins the processes named by
  `KERAS_DISTRIBUTION_JOB_ADDRESSES`, `KERAS_DISTRIBUTION_NUM_PROCESSES` and
  `KERAS_DISTRIBUTION_PROCESS_ID`, then data-parallel over the devices of every process.

Variables are replicated on every device and each batch is split over them along its first
axis (the global batch must divide by the device count); gradients are averaged by XLA's
collectives in the compiled step.
"""

import contextlib
import logging
import os

logger = logging.getLogger(__name__)

MULTI_PROCESS_ENV = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)


class JaxDataParallel:
    """A `keras.distribution.DataParallel` (or one device, `distribution=None`) seen as a
    strategy: `scope()` makes it current, `num_replicas_in_sync` counts its devices."""

    def __init__(self, distribution=None):
        self.distribution = distribution

    @property
    def num_replicas_in_sync(self):
        if self.distribution is None:
            return 1
        return self.distribution.device_mesh.devices.size

    def scope(self):
        if self.distribution is None:
            return contextlib.nullcontext()
        return self.distribution.scope()

    def __repr__(self):
        return f"JaxDataParallel(devices={self.num_replicas_in_sync})"


def _accelerators():
    import jax

    return [d for d in jax.local_devices() if d.platform != "cpu"]


def make_distribution(kind):
    """The `JaxDataParallel` for a `--distribute` kind (see the module docstring)."""
    import jax
    import keras

    if kind == "multi_worker":
        missing = [name for name in MULTI_PROCESS_ENV if not os.environ.get(name)]
        if missing:
            raise ValueError(
                "distribute='multi_worker' on JAX needs the environment variables "
                f"{', '.join(MULTI_PROCESS_ENV)} on every process "
                f"(keras.distribution.initialize). Received: {', '.join(missing)} unset"
            )
        keras.distribution.initialize()
        devices = jax.devices()  # every process's devices
    elif kind == "none":
        return JaxDataParallel()
    else:
        accelerators = _accelerators()
        if kind == "auto" and len(accelerators) < 2:
            return JaxDataParallel()
        devices = accelerators or jax.local_devices()
    if len(devices) < 2 and jax.process_count() == 1:
        return JaxDataParallel()
    logger.info("Data-parallel on %d JAX devices (%s).", len(devices), devices[0].platform)
    return JaxDataParallel(keras.distribution.DataParallel(devices=devices))


def cluster_task():
    """(task_type, task_index, is_chief): process 0 is the chief."""
    import jax

    if jax.process_count() == 1:
        return None, 0, True
    return "worker", jax.process_index(), jax.process_index() == 0
