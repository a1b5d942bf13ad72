"""3x3 convolutions as Winograd F(2x2, 3x3): the faster float32 TFLite graph.

A 3x3 convolution computes each 2x2 block of outputs from a 4x4 tile of its input. Winograd's
minimal filtering (Lavin and Gray, 2016) transforms the tile (`V = B^T d B`, additions only),
multiplies it element by element with the transformed kernel (`U = G g G^T`, computed once),
and transforms back (`Y = A^T M A`, additions only). The sixteen element-wise products over
the channels are sixteen matrix products, 2.25x fewer multiplications than the convolution.

Written in TFLite builtin ops that XNNPACK runs (pads, slices, additions, sixteen
FULLY_CONNECTED, a DEPTH_TO_SPACE), the matrix products run as XNNPACK's dense GEMM, which on
this project's CPU is also much faster than its float32 convolution on wide layers:
MS-ResNet-18's 3x3 convolutions took 1.65x (32x32x128) to 2.9x (8x8x512) less time. On
narrow ones the transforms, which move memory, cost more than the products save (64
channels: even; 32: 1.7x slower), so only convolutions with at least `min_channels` (128)
input and output channels are changed (`benchmarks/inference.py` has the figures). The values are those of the convolution up to float rounding (about 1e-6
relative), which is another rounding than the direct convolution's: a spiking network may
flip a spike whose membrane lies that close to the threshold. So it is an option of the
float32 export (`convert_to_tflite(winograd=True)`, CLI `--winograd`), compared with the
Keras model like any export.
"""

import keras
import numpy as np

from keras_dta.export.fold import fold_batchnorm, foldable_pairs
from keras_dta.export.graph import replace_layers

# F(2x2, 3x3): the kernel transform G (4x3) and the output transform A^T (2x4); the input
# transform B^T is written out in `_input_tiles`.
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def winograd_kernel(kernel):
    """`U = G g G^T` of a `(3, 3, in, out)` kernel: `(4, 4, in, out)` float32 (computed in
    float64)."""
    return np.einsum("ai,ijck,bj->abck", _G, np.asarray(kernel, np.float64), _G).astype(np.float32)


# Below this many input or output channels Winograd was slower here (module docstring).
MIN_CHANNELS = 128


def _eligible(conv, input_shape, min_channels):
    """Whether a `Conv2D` is 3x3, stride 1, 'same', undilated, ungrouped and linear, on
    channels-last inputs of even height and width, at least `min_channels` wide."""
    return (
        min(input_shape[-1], conv.filters) >= min_channels
        and tuple(conv.kernel_size) == (3, 3)
        and tuple(conv.strides) == (1, 1)
        and tuple(conv.dilation_rate) == (1, 1)
        and conv.padding == "same"
        and conv.groups == 1
        and conv.data_format == "channels_last"
        and conv.activation is keras.activations.linear
        and input_shape[-3] is not None
        and input_shape[-2] is not None
        and input_shape[-3] % 2 == 0
        and input_shape[-2] % 2 == 0
    )


@keras.saving.register_keras_serializable(package="keras_dta")
class WinogradConv2D(keras.layers.Layer):
    """A 3x3, stride-1, 'same' convolution computed as Winograd F(2x2, 3x3) (inference only,
    TensorFlow backend).

    Args:
        filters: int, output channels.
        use_bias: bool.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `(batch, height, width, channels)`, height and width even.
    """

    def __init__(self, filters, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.use_bias = use_bias

    def build(self, input_shape):
        self.u = self.add_weight(shape=(4, 4, input_shape[-1], self.filters), initializer="zeros", name="u")
        self.bias = self.add_weight(shape=(self.filters,), initializer="zeros", name="bias") if self.use_bias else None

    def call(self, inputs):
        import tensorflow as tf

        _, H, W, C = inputs.shape
        K = self.filters
        Ht, Wt = H // 2, W // 2
        products = {}
        for (a, b), tile in _input_tiles(inputs).items():
            product = tf.matmul(tile, self.u[a, b])
            # A^T's rows both take M[1][1] once: the bias added there reaches every output once.
            if (a, b) == (1, 1) and self.bias is not None:
                product = product + self.bias
            products[a, b] = product
        rows = [
            [products[0, b] + products[1, b] + products[2, b] for b in range(4)],
            [products[1, b] - products[2, b] - products[3, b] for b in range(4)],
        ]
        outputs = []
        for row in rows:
            outputs.append(row[0] + row[1] + row[2])
            outputs.append(row[1] - row[2] - row[3])
        # (dy, dx) = (0, 0), (0, 1), (1, 0), (1, 1): DEPTH_TO_SPACE's channel order.
        blocks = tf.concat([tf.reshape(y, (-1, Ht, Wt, K)) for y in outputs], axis=-1)
        return tf.nn.depth_to_space(blocks, 2)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "use_bias": self.use_bias}


def _input_tiles(inputs):
    """`{(a, b): V_ab}`: the transformed 4x4 tiles `B^T d B`, each `(tiles, channels)`.

    Tile (i, j) covers the padded rows 2i..2i+3 and columns 2j..2j+3. Rows are read as pairs
    (a reshape) and sliced with unit strides, which XNNPACK runs; B^T's rows are
    `d0 - d2, d1 + d2, d2 - d1, d1 - d3`.
    """
    import tensorflow as tf

    _, H, W, C = inputs.shape
    Ht, Wt = H // 2, W // 2
    padded = tf.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]])
    row_len = (W + 2) * C
    pairs = tf.reshape(padded, (-1, Ht + 1, 2 * row_len))  # row pair k: rows 2k, 2k + 1
    d = [
        pairs[:, 0:Ht, 0:row_len],
        pairs[:, 0:Ht, row_len:],
        pairs[:, 1:, 0:row_len],
        pairs[:, 1:, row_len:],
    ]
    tiles = {}
    for a, rows in enumerate((d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3])):
        cols = tf.reshape(rows, (-1, Wt + 1, 2 * C))  # column pair k: columns 2k, 2k + 1
        e = [cols[:, 0:Wt, 0:C], cols[:, 0:Wt, C:], cols[:, 1:, 0:C], cols[:, 1:, C:]]
        for b, tile in enumerate((e[0] - e[2], e[1] + e[2], e[2] - e[1], e[1] - e[3])):
            tiles[a, b] = tf.reshape(tile, (-1, C))
    return tiles


def winograd_convolutions(model, min_channels=MIN_CHANNELS):
    """A copy of `model` whose eligible 3x3 convolutions compute by Winograd F(2x2, 3x3).

    BatchNorm is folded into the convolutions first (`fold_batchnorm`). Eligible: a float
    `Conv2D` (or the one a `TimeFold` wraps) of kernel 3x3, stride 1, 'same' padding, no
    dilation, groups or activation, on inputs of even height and width, with at least
    `min_channels` input and output channels. For inference on the TensorFlow backend (the
    TFLite export); the model given is not changed.

    Args:
        model: a functional `keras.Model`.
        min_channels: positive int, the narrowest convolution to change.

    Returns:
        `(model, names)`: the new functional `keras.Model`, and the names of the layers that
        compute by Winograd.
    """
    from keras_dta._checks import check_int
    from keras_dta.export.grid import inner_layer
    from keras_dta.layers import TimeFold

    check_int("min_channels", min_channels)
    if foldable_pairs(model):
        model = fold_batchnorm(model)
    chosen = {}
    for layer in model.layers:
        conv = inner_layer(layer)
        wrapped = conv is layer or isinstance(layer, TimeFold)
        if wrapped and type(conv) is keras.layers.Conv2D and _eligible(conv, tuple(layer.input.shape), min_channels):
            chosen[layer.name] = conv

    def fast(conv):
        return WinogradConv2D(conv.filters, use_bias=conv.use_bias, dtype=conv.dtype_policy.name, name=conv.name)

    fast_model = replace_layers(model, {name: fast for name in chosen})
    for name, conv in chosen.items():
        target = inner_layer(fast_model.get_layer(name))
        target.u.assign(winograd_kernel(conv.kernel.numpy()))
        if conv.use_bias:
            target.bias.assign(np.asarray(conv.bias.numpy(), np.float32))
    return fast_model, sorted(chosen)
