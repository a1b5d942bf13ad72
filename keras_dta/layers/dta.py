"""Dual Temporal-channel-wise Attention: T-XA, T-NA and DTA (paper section 3.2-3.4).

All three layers take the stem's output `x` as `(batch, time, height, width, channels)`,
for any T and any channel count (the authors' code hard-codes 64 channels).
"""

import keras
from keras import ops

from keras_dta._checks import check_int


def _check_rank5(layer, input_shape):
    if len(input_shape) != 5 or any(d is None for d in input_shape[1:]):
        raise ValueError(
            f"Layer '{layer.name}' expects inputs of shape (batch, time, height, width, "
            f"channels) with static time, height, width and channels. "
            f"Received: input_shape={tuple(input_shape)}"
        )


def _conv1d_same(x, kernel):
    """1-D convolution over axis 1 with PyTorch's 'same' padding.

    PyTorch pads `(k - 1) // 2` before and the rest after; for the even kernel of `conv_c`
    that is 2 before and 3 after. Padding explicitly keeps every backend identical.
    """
    k = kernel.shape[0]
    x = ops.pad(x, ((0, 0), ((k - 1) // 2, k - 1 - (k - 1) // 2), (0, 0)))
    return ops.conv(x, kernel, padding="valid")


def _pointwise(x, kernel, bias):
    """1x1 Conv2D with bias on `(batch, height, width, channels)`."""
    return ops.conv(x, kernel, padding="valid") + bias


@keras.saving.register_keras_serializable(package="keras_dta")
class TXA(keras.layers.Layer):
    """Temporal-channel-wise identical Cross Attention, T-XA (paper section 3.3).

    With `x_m` the spatial mean of `x`, `(batch, time, channels)`:

        a_t = sigmoid(conv_t(x_m))   # Conv1d over channels, time as features, kernel 3
        a_c = sigmoid(conv_c(x_m))   # Conv1d over time, channels as features, kernel 6
        out = (x + scale_t * a_t) * (x + scale_c * a_c)

    with `a_t, a_c` broadcast over height and width. This is the authors' implementation,
    which the paper describes with a cross product of the two attention maps; its trainable
    parameters are `3 * T**2 + 6 * C**2 + 2`.

    Args:
        kernel_size_t: int, kernel of the temporal convolution (3 in the paper).
        kernel_size_c: int, kernel of the channel convolution (6 in the paper).
        **kwargs: base layer arguments.

    Call arguments:
        inputs: tensor `(batch, time, height, width, channels)`.

    Returns:
        Tensor with the shape of `inputs`.
    """

    def __init__(self, kernel_size_t=3, kernel_size_c=6, **kwargs):
        super().__init__(**kwargs)
        check_int("kernel_size_t", kernel_size_t)
        check_int("kernel_size_c", kernel_size_c)
        self.kernel_size_t = kernel_size_t
        self.kernel_size_c = kernel_size_c

    def build(self, input_shape):
        _check_rank5(self, input_shape)
        T, C = input_shape[1], input_shape[-1]
        # Keras Conv1D layout (kernel, in, out). conv_t slides along the channel axis with
        # time as its features; conv_c slides along time with channels as its features.
        self.conv_t = self.add_weight(
            shape=(self.kernel_size_t, T, T), initializer="glorot_uniform", name="conv_t"
        )
        self.conv_c = self.add_weight(
            shape=(self.kernel_size_c, C, C), initializer="glorot_uniform", name="conv_c"
        )
        self.scale_t = self.add_weight(shape=(), initializer="ones", name="scale_t")
        self.scale_c = self.add_weight(shape=(), initializer="ones", name="scale_c")

    def call(self, inputs):
        x_m = ops.mean(inputs, axis=(2, 3))  # (B, T, C)
        a_t = ops.sigmoid(ops.transpose(_conv1d_same(ops.transpose(x_m, (0, 2, 1)), self.conv_t), (0, 2, 1)))
        a_c = ops.sigmoid(_conv1d_same(x_m, self.conv_c))
        a_t = a_t[:, :, None, None, :]
        a_c = a_c[:, :, None, None, :]
        return (inputs + self.scale_t * a_t) * (inputs + self.scale_c * a_c)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size_t": self.kernel_size_t,
            "kernel_size_c": self.kernel_size_c,
        }


def tna_hidden_width(D):
    """The hidden width `h` of T-NA's GTCA for `D = T * C` channels: `D // max(D // 16, 4)`.

    The authors' reduction rule (16 for `D >= 64`); `keras_dta.stats` counts with it too.
    """
    return D // max(D // 16, 4)


@keras.saving.register_keras_serializable(package="keras_dta")
class TNA(keras.layers.Layer):
    """Temporal-channel-wise Non-identical Attention, T-NA (paper section 3.4).

    Time and channels are merged into `D = T * C` channels (index `t * C + c`), then:

        F' = GELU(encoding(x'))                           # 1x1 conv, exact GELU
        LTCA(F') = pointwise(scale_shift(depthwise5x5(F')))
        GTCA(F') = W2 @ relu(W1 @ GAP(F'))                # D -> h -> D, no bias
        F'_attn = GTCA(F') * LTCA(F') * F'
        out = decoding(F'_attn) + x'                      # 1x1 conv, residual

    The second LTCA convolution is, in the authors' implementation, a depthwise conv whose
    kernel size comes out as 1 from its formula: a per-channel scale and shift, kept here as
    such. `h = D // max(D // 16, 4)`. Trainable parameters: `3 * D**2 + 63 * D` when h = 16.

    Args:
        local_kernel_size: int, the depthwise kernel of LTCA (5 in the paper).
        **kwargs: base layer arguments.

    Call arguments:
        inputs: tensor `(batch, time, height, width, channels)`.

    Returns:
        Tensor with the shape of `inputs`.
    """

    def __init__(self, local_kernel_size=5, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(local_kernel_size, int) or local_kernel_size < 1 or local_kernel_size % 2 == 0:
            raise ValueError(
                "`local_kernel_size` must be a positive odd integer. "
                f"Received: local_kernel_size={local_kernel_size}"
            )
        self.local_kernel_size = local_kernel_size

    def build(self, input_shape):
        _check_rank5(self, input_shape)
        D = input_shape[1] * input_shape[-1]
        hidden = tna_hidden_width(D)
        k = self.local_kernel_size

        def weight(name, shape, initializer="glorot_uniform"):
            return self.add_weight(shape=shape, initializer=initializer, name=name)

        self.encoding_kernel = weight("encoding_kernel", (1, 1, D, D))
        self.encoding_bias = weight("encoding_bias", (D,), "zeros")
        self.local_depthwise_kernel = weight("local_depthwise_kernel", (k, k, D, 1))
        self.local_depthwise_bias = weight("local_depthwise_bias", (D,), "zeros")
        self.local_scale = weight("local_scale", (D,), "ones")
        self.local_shift = weight("local_shift", (D,), "zeros")
        self.local_pointwise_kernel = weight("local_pointwise_kernel", (1, 1, D, D))
        self.local_pointwise_bias = weight("local_pointwise_bias", (D,), "zeros")
        self.global_squeeze = weight("global_squeeze", (D, hidden))
        self.global_excite = weight("global_excite", (hidden, D))
        self.decoding_kernel = weight("decoding_kernel", (1, 1, D, D))
        self.decoding_bias = weight("decoding_bias", (D,), "zeros")

    def call(self, inputs):
        _, T, H, W, C = inputs.shape
        # (B, T, H, W, C) -> (B, H, W, T*C): channel index t * C + c, as the reference.
        x = ops.reshape(ops.transpose(inputs, (0, 2, 3, 1, 4)), (-1, H, W, T * C))
        f = ops.gelu(_pointwise(x, self.encoding_kernel, self.encoding_bias), approximate=False)
        local = ops.depthwise_conv(f, self.local_depthwise_kernel, padding="same")
        local = (local + self.local_depthwise_bias) * self.local_scale + self.local_shift
        local = _pointwise(local, self.local_pointwise_kernel, self.local_pointwise_bias)
        pooled = ops.mean(f, axis=(1, 2))
        glob = ops.matmul(ops.relu(ops.matmul(pooled, self.global_squeeze)), self.global_excite)
        attended = glob[:, None, None, :] * local * f
        out = _pointwise(attended, self.decoding_kernel, self.decoding_bias) + x
        return ops.transpose(ops.reshape(out, (-1, H, W, T, C)), (0, 3, 1, 2, 4))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "local_kernel_size": self.local_kernel_size}


def _check_same_shape(x_shape, s_shape):
    """`x` and `spikes` must match, the batch too wherever both are known."""
    batches_differ = None not in (x_shape[0], s_shape[0]) and x_shape[0] != s_shape[0]
    if x_shape[1:] != s_shape[1:] or batches_differ:
        raise ValueError(
            "DTA expects `x` and `spikes` of the same shape. "
            f"Received: x.shape={x_shape}, spikes.shape={s_shape}"
        )


@keras.saving.register_keras_serializable(package="keras_dta")
class DTA(keras.layers.Layer):
    """Dual Temporal-channel-wise Attention applied to spikes (paper eq. 6).

        DTA(x, s) = sigmoid(T_NA(x) * T_XA(x)) * s

    where `x` is the stem's output (conv + BN, before any spike) and `s = LIF(x)`. For the
    paper's ablation one branch can be switched off; the block is then
    `sigmoid(branch(x)) * s`.

    Args:
        use_txa: bool, use the T-XA branch.
        use_tna: bool, use the T-NA branch.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list `[x, spikes]` of two tensors `(batch, time, height, width, channels)`.

    Returns:
        Tensor with the shape of `spikes`.

    Example:

    >>> x = keras.random.normal((2, 4, 8, 8, 16))
    >>> y = keras_dta.layers.DTA()([x, keras_dta.layers.LIF()(x)])
    """

    def __init__(self, use_txa=True, use_tna=True, **kwargs):
        super().__init__(**kwargs)
        if not (use_txa or use_tna):
            raise ValueError(
                "DTA needs at least one branch. "
                f"Received: use_txa={use_txa}, use_tna={use_tna}"
            )
        self.use_txa = bool(use_txa)
        self.use_tna = bool(use_tna)
        self.txa = TXA(name="txa", dtype=self.dtype_policy) if self.use_txa else None
        self.tna = TNA(name="tna", dtype=self.dtype_policy) if self.use_tna else None

    def build(self, input_shape):
        if not (isinstance(input_shape, (list, tuple)) and len(input_shape) == 2
                and isinstance(input_shape[0], (list, tuple))):
            raise ValueError(f"DTA expects a list [x, spikes]. Received: input_shape={input_shape}")
        x_shape, s_shape = (tuple(s) for s in input_shape)
        _check_rank5(self, x_shape)
        _check_same_shape(x_shape, s_shape)
        for branch in (self.txa, self.tna):
            if branch is not None:
                branch.build(x_shape)

    def call(self, inputs):
        x, spikes = inputs
        # Checked on every call, not only at build: a later call with another batch size
        # would otherwise broadcast one input over the other.
        _check_same_shape(tuple(x.shape), tuple(spikes.shape))
        if self.use_txa and self.use_tna:
            attention = self.tna(x) * self.txa(x)
        else:
            attention = (self.txa or self.tna)(x)
        return ops.sigmoid(attention) * spikes

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])

    def get_config(self):
        return {**super().get_config(), "use_txa": self.use_txa, "use_tna": self.use_tna}
