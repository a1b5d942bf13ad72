"""A convolution trained on the int8 grid (quantization-aware training of its weights)."""

import keras
from keras import ops

# The symmetric int8 range of TFLite's weights: [-127, 127].
INT8_LEVELS = 127


def int8_grid(kernel):
    """`kernel` rounded to the per-output-channel symmetric int8 grid.

    `round(kernel / s) * s` with `s = max|kernel| / 127` per output channel (the last axis;
    an all-zero channel stays zero): TFLite's own rounding of int8 weights. Applying it twice
    changes nothing.
    """
    if len(kernel.shape) < 2:
        raise ValueError(f"`kernel` must have an output-channel axis (ndim >= 2). Received: kernel.shape={kernel.shape}")
    axes = tuple(range(len(kernel.shape) - 1))
    scale = ops.max(ops.abs(kernel), axis=axes, keepdims=True) / INT8_LEVELS
    safe = ops.where(scale > 0, scale, ops.ones_like(scale))
    return ops.round(kernel / safe) * safe


def int8_grid_ste(kernel):
    """`int8_grid(kernel)` forward, with a straight-through gradient to `kernel`."""
    rounded = int8_grid(kernel)
    # kernel + (rounded - kernel) is `rounded` exactly: the difference of two floats within a
    # factor 2 of each other (or of a float and 0) is exact, and so is the sum it restores.
    return kernel + ops.stop_gradient(rounded - kernel)


@keras.saving.register_keras_serializable(package="keras_dta")
class Int8GridConv2D(keras.layers.Conv2D):
    """A `Conv2D` that convolves with its kernel rounded to the int8 grid.

    Quantization-aware training for the convolutions fed by spikes: the model learns with the
    weights an int8 export will hold, so its dynamic-range TFLite model (int8 products, exact
    on spikes) computes what the Keras model computes. The variable keeps the float weights
    the optimizer updates (a straight-through estimator, `int8_grid_ste`); `grid_kernel()`
    is what the layer uses.

    Args:
        Those of `keras.layers.Conv2D`.
    """

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, int8_grid_ste(kernel))

    def grid_kernel(self):
        """The kernel the layer convolves with, on the int8 grid."""
        return int8_grid_ste(self.kernel)
