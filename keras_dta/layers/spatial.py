"""Spatial helpers of the MS-ResNet blocks."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_dta")
class Subsample2D(keras.layers.Layer):
    """Keeps every `stride`-th pixel: `x[:, ::stride, ::stride, :]`.

    A strided 1x1 convolution is this followed by a 1x1 convolution. TensorFlow 2.21's oneDNN
    kernel crashes (SIGSEGV) in the weight gradient of strided 1x1 convs with few input
    channels on 48x48 and larger inputs, so the MS-ResNet shortcut subsamples first. The pixels
    are picked with a reshape and a keep-dims slice rather than a strided slice or a 1x1 max
    pool: TFLite's XNNPACK delegate runs neither of those (each would split an exported model).

    Args:
        stride: positive int.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: tensor `(batch, height, width, channels)`.

    Returns:
        Tensor `(batch, ceil(height / stride), ceil(width / stride), channels)`.
    """

    def __init__(self, stride, **kwargs):
        super().__init__(**kwargs)
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"`stride` must be a positive integer. Received: stride={stride!r}")
        self.stride = stride

    def call(self, inputs):
        s = self.stride
        _, height, width, channels = inputs.shape
        if s == 1:
            return inputs
        if height is None or width is None or channels is None:
            return inputs[:, ::s, ::s, :]
        out_h, out_w = -(-height // s), -(-width // s)
        # Zeros after the last row and column make the sizes multiples of the stride; the
        # kept pixels (0, s, 2s, ...) are the same.
        x = ops.pad(inputs, [[0, 0], [0, out_h * s - height], [0, out_w * s - width], [0, 0]])
        # 5-D at most: TFLite's slicing kernels take up to five dimensions.
        x = ops.reshape(x, (-1, s, out_w, s, channels))[:, 0:1, :, 0:1, :]
        return ops.reshape(x, (-1, out_h, out_w, channels))

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        s = self.stride
        return (batch, None if height is None else -(-height // s), None if width is None else -(-width // s), channels)

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}
