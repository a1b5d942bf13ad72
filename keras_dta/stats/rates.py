"""Firing rates of the `LIF` layers of a model, measured by a probe sub-model."""

import logging
import math

import keras
import numpy as np
from keras import ops

from keras_dta._checks import check_int
from keras_dta.layers import LIF

logger = logging.getLogger(__name__)


def flat_layers(model):
    """The layers of `model` in graph order, nested models flattened."""
    out = []
    for layer in model.layers:
        out.extend(flat_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def lif_layers(model):
    """Returns every `LIF` layer of a model, in graph order (nested models included).

    Args:
        model: a functional `keras.Model`.

    Returns:
        A list of `keras_dta.layers.LIF`.
    """
    return [layer for layer in flat_layers(model) if isinstance(layer, LIF)]


def check_functional(model):
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise ValueError(
            "keras_dta.stats needs a functional (or built Sequential) keras.Model with "
            f"symbolic inputs. Received: model={model!r}"
        )


class RateProbe:
    """A sub-model returning, per LIF layer, the spike count of each sample and time step."""

    def __init__(self, model):
        check_functional(model)
        self.lifs = lif_layers(model)
        if not self.lifs:
            raise ValueError(f"The model has no LIF layer. Received: model={model.name}")
        outputs = {}
        self.neurons = {}
        for lif in self.lifs:
            spikes = lif.output
            if len(spikes.shape) < 3:
                raise ValueError(
                    f"LIF output must be (batch, time, ...). Received: "
                    f"{lif.name}.output.shape={spikes.shape}"
                )
            axes = tuple(range(2, len(spikes.shape)))
            # Reduced inside the graph: the full spike maps of MS-ResNet-18 are hundreds of
            # megabytes per batch.
            outputs[lif.name] = ops.sum(ops.cast(spikes, "float32"), axis=axes)
            self.neurons[lif.name] = math.prod(spikes.shape[2:])
        self.model = keras.Model(model.inputs, outputs, name=f"{model.name}_rate_probe")

    def counts(self, x):
        """Spike sums `(batch, time)` of every LIF layer for one batch of inputs."""
        out = self.model.predict_on_batch(x)
        return {name: np.asarray(value, dtype=np.float64) for name, value in out.items()}

    def rates(self, data, steps=None, batch_size=32, per_time_step=False):
        """`{lif_name: rate}` over `data` (see `firing_rates`), and the number of samples."""
        sums, samples = self._accumulate(data, steps, batch_size)
        rates = {}
        for name, total in sums.items():
            per_step = total / (samples * self.neurons[name])
            rates[name] = per_step if per_time_step else float(per_step.mean())
        return rates, samples

    def _accumulate(self, data, steps, batch_size):
        sums, samples = None, 0
        for x in _iterate_batches(data, steps, batch_size):
            counts = self.counts(x)
            batch_sums = {name: c.sum(axis=0) for name, c in counts.items()}  # (time,)
            samples += next(iter(counts.values())).shape[0]
            if sums is None:
                sums = batch_sums
            else:
                for name in sums:
                    sums[name] += batch_sums[name]
        if not samples:
            raise ValueError("`data` yielded no batch.")
        return sums, samples


def _iterate_batches(data, steps, batch_size):
    """Yields input batches from an array, a `tf.data.Dataset` or any iterable of batches."""
    check_int("steps", steps, allow_none=True)
    if isinstance(data, np.ndarray) or (hasattr(data, "shape") and hasattr(data, "dtype")):
        data = np.asarray(data)
        batches = (data[i : i + batch_size] for i in range(0, len(data), batch_size))
    elif hasattr(data, "as_numpy_iterator"):
        # tf.data: NumPy batches, which every backend's predict accepts.
        batches = data.as_numpy_iterator()
    else:
        batches = iter(data)
    for i, batch in enumerate(batches):
        if steps is not None and i >= steps:
            return
        if isinstance(batch, (tuple, list)):
            batch = batch[0]  # (x, y) or (x, y, sample_weight)
        yield batch


def firing_rates(model, data, steps=None, batch_size=32, per_time_step=False):
    """Mean firing rate of every `LIF` layer over a dataset.

    The rate of a layer is its number of spikes divided by (samples x time steps x neurons):
    the mean number of spikes per neuron per time step, in `[0, 1]`. The model runs in
    inference mode (BatchNorm uses its moving statistics).

    Args:
        model: a functional `keras.Model` holding `keras_dta.layers.LIF` layers.
        data: a NumPy array of inputs, a `tf.data.Dataset`, or any iterable of batches;
            batches may be `x` or tuples `(x, y, ...)` (only `x` is used).
        steps: int or None, the number of batches to use; None uses all of `data`.
        batch_size: int, the batch size when `data` is an array.
        per_time_step: bool; if True each value is a NumPy array `(time,)` of per-step rates
            instead of a float.

    Returns:
        A dict `{lif_layer_name: rate}` in graph order.

    Example:

    >>> rates = firing_rates(model, x_test[:256])
    >>> rates["stem_lif"]
    0.1432...
    """
    rates, samples = RateProbe(model).rates(data, steps, batch_size, per_time_step)
    logger.info("Firing rates over %d samples: %s", samples, rates)
    return rates
