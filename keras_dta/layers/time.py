"""Layers that move tensors between the time axis and the batch axis.

Spiking models hold activations as `(batch, time, height, width, channels)`. Convolutions,
pooling and dense layers act on every time step with shared weights; `TimeFold` does that by
folding time into the batch axis (one large convolution instead of T small ones, which is
also how the authors' `SeqToANNContainer` works).
"""

import keras
from keras import ops

from keras_dta._checks import check_int


# XNNPACK (TFLite's CPU delegate) joins at most five tensors in one CONCATENATION in this
# LiteRT; a concatenation of six runs outside the delegate and splits the graph.
_MAX_CONCAT_INPUTS = 5


def concat_time(steps):
    """Joins `(batch, 1, ...)` tensors along the time axis, at most five at a time.

    The same as one concatenation, but every CONCATENATION of an exported model stays within
    what XNNPACK runs.
    """
    while len(steps) > 1:
        steps = [
            group[0] if len(group) == 1 else ops.concatenate(group, axis=1)
            for group in (steps[i : i + _MAX_CONCAT_INPUTS] for i in range(0, len(steps), _MAX_CONCAT_INPUTS))
        ]
    return steps[0]


def _check_min_rank(layer, input_shape, rank):
    if len(input_shape) < rank:
        raise ValueError(
            f"Layer '{layer.name}' expects inputs of rank >= {rank} "
            f"(batch, time, ...). Received: input_shape={tuple(input_shape)}"
        )


@keras.saving.register_keras_serializable(package="keras_dta")
class RepeatTime(keras.layers.Layer):
    """Repeats a static input `T` times along a new time axis ("direct coding").

    Args:
        T: positive int, the number of time steps.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: tensor `(batch, ...)`.

    Returns:
        Tensor `(batch, T, ...)`.
    """

    def __init__(self, T, **kwargs):
        super().__init__(**kwargs)
        check_int("T", T)
        self.T = T

    def call(self, inputs):
        # Concatenated copies rather than `repeat`, whose TILE op XNNPACK does not run.
        return concat_time([ops.expand_dims(inputs, 1)] * self.T)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.T, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "T": self.T}


@keras.saving.register_keras_serializable(package="keras_dta")
class TimeFold(keras.layers.Wrapper):
    """Applies a layer to every time step at once by folding time into the batch axis.

    Unlike `keras.layers.TimeDistributed`, which calls the layer once per step, the wrapped
    layer sees one batch of `batch * time` samples. For convolutions this is faster; for
    layers with batch statistics it is what the authors' implementation does.

    Args:
        layer: a `keras.layers.Layer` acting on `(batch, ...)`.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: tensor `(batch, time, ...)` with a static time length.

    Returns:
        Tensor `(batch, time, ...)` with the wrapped layer's per-sample output shape.
    """

    def _child_shape(self, input_shape):
        _check_min_rank(self, input_shape, 3)
        batch, time = input_shape[0], input_shape[1]
        folded = None if batch is None or time is None else batch * time
        return (folded, *input_shape[2:])

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(self._child_shape(input_shape))
        self.built = True

    def compute_output_shape(self, input_shape):
        child = self.layer.compute_output_shape(self._child_shape(input_shape))
        return (input_shape[0], input_shape[1], *child[1:])

    def call(self, inputs, training=None):
        time = inputs.shape[1]
        if time is None:
            raise ValueError(
                f"Layer '{self.name}' needs a static time length. "
                f"Received: inputs.shape={inputs.shape}"
            )
        folded = ops.reshape(inputs, (-1, *inputs.shape[2:]))
        # Keras drops `training` for a layer whose `call` does not take it.
        outputs = self.layer(folded, training=training)
        return ops.reshape(outputs, (-1, time, *outputs.shape[1:]))


@keras.saving.register_keras_serializable(package="keras_dta")
class MeanOverTime(keras.layers.Layer):
    """Averages over the time axis: `(batch, time, ...)` -> `(batch, ...)`."""

    def call(self, inputs):
        return ops.mean(inputs, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *input_shape[2:])
