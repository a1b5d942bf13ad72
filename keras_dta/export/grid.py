"""Int8 weights that compute exactly what the float model computes.

A convolution fed by spikes multiplies its weights by 0 or 1, so its int8 product (XNNPACK's
dynamic-range kernel: int8 weights, the spikes quantized on the fly, which holds 0 and 1
exactly) differs from the float convolution only by the rounding of the weights. Put the
weights on the int8 grid first (per output channel `w = k * s`, `k` an integer in
[-127, 127], `s = max|w| / 127`: the converter's own symmetric per-channel scheme) and
nothing is left to round: the TFLite model answers as the float TFLite model does, and the
Keras model it is compared with is the same network.

Layers fed by real values (the stem on the image, the membrane shortcuts, DTA, the
classifier on spike rates) would also have their inputs quantized on the fly, which no grid
makes exact; `convert_to_tflite` keeps those in float (`spike_fed_layers` says which are
which). They are a few percent of the work.

A BatchNorm after the convolution scales each output channel; per-channel quantization is
unchanged by such a scale, so the grid survives the converter's folding.

Two ways onto the grid: train on it (`ms_resnet18(int8_grid=True)`, `trainers/fit.py
--int8_grid`: the spike-fed convolutions are `keras_dta.layers.Int8GridConv2D`), and the
trained model is its own int8 model; or round a trained model's weights afterwards
(`snap_to_int8_grid`), which makes a slightly different model whose accuracy is to be checked.

Measured on the real-image CIFAR-10 model (README, Export; 10,000 test images): trained on
the grid, its dynamic-range export answers as it does on every image; trained without, the
export agrees on 94.75%, and after snapping on 99.57% (the snapped copy keeps the accuracy,
70.31% against 70.30%, but answers as the original on 94.71%).
"""

import numpy as np

from keras_dta.layers.grid import INT8_LEVELS


def int8_grid(kernel):
    """`kernel` rounded to the per-output-channel symmetric int8 grid, as a numpy array.

    Args:
        kernel: array whose last axis is the output channel (Keras `Conv2D` and `Dense`).

    Returns:
        A float32 array of the same shape: `round(kernel / s) * s` with `s = max|w| / 127`
        per output channel (`keras_dta.layers.grid.int8_grid`, also what
        `Int8GridConv2D` trains with).
    """
    import keras

    from keras_dta.layers import grid

    return keras.ops.convert_to_numpy(grid.int8_grid(keras.ops.convert_to_tensor(np.asarray(kernel, "float32"))))


def spike_fed_layers(model):
    """The convolutions and dense layers of `model` whose input is spikes.

    Found with `keras_dta.stats.count_macs` (its "spikes" input kind: a LIF output, possibly
    through padding or subsampling). Depthwise convolutions are left out: XNNPACK has no
    dynamic-range kernel for them, so they stay in float.

    Args:
        model: a functional `keras.Model`.

    Returns:
        The layer names, in graph order.
    """
    import keras

    from keras_dta.stats import count_macs

    names = []
    for name, entry in count_macs(model).items():
        if entry["input"] != "spikes":
            continue
        if isinstance(inner_layer(model.get_layer(name)), keras.layers.DepthwiseConv2D):
            continue
        names.append(name)
    return names


def inner_layer(layer):
    """The layer a `TimeFold` wraps, or the layer itself."""
    return getattr(layer, "layer", layer)


def effective_kernel(layer):
    """The kernel a layer computes with (an `Int8GridConv2D` rounds its variable)."""
    import keras

    inner = inner_layer(layer)
    kernel = inner.grid_kernel() if hasattr(inner, "grid_kernel") else inner.kernel
    return np.asarray(keras.ops.convert_to_numpy(kernel))


def _on_grid(kernel):
    """Whether every output channel of `kernel` lies on its int8 grid, up to float rounding.

    (Exact equality with `int8_grid(kernel)` asks too much: `max|w| / 127` of a grid kernel
    may round to a neighbour of the scale it was built with, and backends divide
    differently.)
    """
    flat = np.asarray(kernel, "float64").reshape(-1, kernel.shape[-1])
    scale = np.abs(flat).max(axis=0) / INT8_LEVELS
    steps = flat / np.where(scale > 0, scale, 1.0)
    return bool(np.abs(steps - np.round(steps)).max() <= 1e-3)


def off_grid_layers(model):
    """The spike-fed layers whose kernel is not on the int8 grid (`int8_grid`)."""
    return [name for name in spike_fed_layers(model) if not _on_grid(effective_kernel(model.get_layer(name)))]


def snap_to_int8_grid(model):
    """Rounds the kernels of the spike-fed layers onto the int8 grid, in place.

    The snapped model is the float model of record for an int8 export: its dynamic-range
    TFLite model computes the same convolutions. Check its accuracy against the original's
    (the export CLI's `--snap_to_int8_grid` does, and reports both).

    Args:
        model: a functional `keras.Model` (changed in place).

    Returns:
        The names of the layers whose kernels were rounded.
    """
    names = spike_fed_layers(model)
    for name in names:
        kernel = inner_layer(model.get_layer(name)).kernel
        kernel.assign(int8_grid(kernel.numpy()))
    return names
