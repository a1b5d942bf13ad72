"""BatchNorm folded into the convolution before it: the inference graph for TensorFlow.

At inference a BatchNorm is a per-channel affine map, `y = a x + b` with
`a = gamma / sqrt(var + eps)` and `b = beta - a mean`. After a convolution it folds into the
kernel (`W a`, per output channel) and a bias (`b`), which removes one pass over every
feature map. The TFLite converter does this by itself; a TensorFlow graph (`tf.function`,
the SavedModel) does not, and there it is worth 1-6% of MS-ResNet-18's latency on a CPU
(README, Benchmarks). The folded model computes the same function up to float rounding: use
it for inference only (it has no BatchNorm to train).
"""

import keras
import numpy as np

from keras_dta.export.graph import layer_graph, replace_layers
from keras_dta.export.grid import effective_kernel, inner_layer


@keras.saving.register_keras_serializable(package="keras_dta")
class FoldedBatchNorm(keras.layers.Layer):
    """The place of a BatchNorm folded into its convolution: passes its input on.

    It takes the BatchNorm's call arguments (`training`, `mask`), so the folded graph keeps
    the original's wiring.
    """

    def call(self, inputs, training=None, mask=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def _conv_of(layer):
    """The `Conv2D` of a layer (itself, or the one a `TimeFold` wraps), or None."""
    inner = inner_layer(layer)
    if isinstance(inner, keras.layers.Conv2D) and not isinstance(inner, keras.layers.DepthwiseConv2D):
        return inner
    return None


def foldable_pairs(model):
    """`{batch norm name: conv layer name}` for every BatchNorm that folds into its convolution.

    A BatchNorm folds when it normalizes the last axis and its input is the output of a 2D
    convolution (or a `TimeFold` of one) that nothing else reads.
    """
    graph = layer_graph(model, "fold_batchnorm")
    producers = {id(t): name for name, (_, outputs) in graph.items() for t in outputs}
    readers = {}
    for tensor in [t for inputs, _ in graph.values() for t in inputs] + keras.tree.flatten(model.outputs):
        readers[id(tensor)] = readers.get(id(tensor), 0) + 1
    pairs = {}
    for name, (inputs, _) in graph.items():
        layer = model.get_layer(name)
        if not isinstance(layer, keras.layers.BatchNormalization) or len(inputs) != 1:
            continue
        if layer.axis not in (-1, len(inputs[0].shape) - 1):
            continue
        producer = producers.get(id(inputs[0]))
        if producer is None or _conv_of(model.get_layer(producer)) is None or readers[id(inputs[0])] != 1:
            continue
        pairs[name] = producer
    return pairs


def fold_batchnorm(model):
    """A copy of `model` with every foldable BatchNorm folded into its convolution.

    Args:
        model: a functional `keras.Model` (e.g. `keras_dta.models.ms_resnet18`).

    Returns:
        A new functional `keras.Model` computing the same logits at inference (up to float
        rounding), with the folded BatchNorms replaced by `FoldedBatchNorm` (the identity)
        and their convolutions given a bias. A folded `Int8GridConv2D` becomes a `Conv2D`
        holding its rounded kernel, folded. The model given is not changed.
    """
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise ValueError(f"`fold_batchnorm` needs a functional keras.Model. Received: model={model!r}")
    pairs = foldable_pairs(model)

    def folded_bn(layer):
        return FoldedBatchNorm(name=layer.name, dtype=layer.dtype_policy.name)

    def biased_conv(conv):
        config = conv.get_config()
        config["use_bias"] = True
        return keras.layers.Conv2D.from_config(config)

    replacements = {name: folded_bn for name in pairs}
    replacements.update({name: biased_conv for name in pairs.values()})
    folded = replace_layers(model, replacements)
    for bn_name, conv_name in pairs.items():
        bn, conv = model.get_layer(bn_name), model.get_layer(conv_name)
        kernel = effective_kernel(conv)
        bias = np.asarray(_conv_of(conv).bias.numpy()) if _conv_of(conv).use_bias else 0.0
        variance = np.asarray(bn.moving_variance.numpy(), "float64")
        scale = 1.0 / np.sqrt(variance + bn.epsilon)
        if bn.scale:
            scale = scale * np.asarray(bn.gamma.numpy(), "float64")
        shift = -np.asarray(bn.moving_mean.numpy(), "float64") * scale
        if bn.center:
            shift = shift + np.asarray(bn.beta.numpy(), "float64")
        target = _conv_of(folded.get_layer(conv_name))
        target.kernel.assign((kernel * scale).astype("float32"))
        target.bias.assign((shift + scale * bias).astype("float32"))
    return folded
