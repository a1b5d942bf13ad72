"""Multiply-accumulates per image of every convolution, dense layer and DTA block.

MACs are per image, from the layers' static shapes: a convolution does
`H_out * W_out * k_h * k_w * C_in * C_out / groups` per time step, a dense layer `in * out`;
the total is that times T. Each counted layer also says what feeds it: spikes (a `LIF`
layer, possibly through padding or max pooling), a rate (an average of spikes) or real
values; the graph is walked through the public `layer.input` / `layer.output`.
"""

import logging
import math

import keras

from keras_dta.layers import DTA, LIF, TNA, TXA, Subsample2D, TimeFold
from keras_dta.layers.dta import tna_hidden_width
from keras_dta.stats.rates import check_functional, flat_layers

logger = logging.getLogger(__name__)

# Layers between a LIF and a counted layer that keep the spikes binary.
_SPIKE_PRESERVING = (
    keras.layers.ZeroPadding1D,
    keras.layers.ZeroPadding2D,
    keras.layers.ZeroPadding3D,
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.Reshape,
    keras.layers.Flatten,
    keras.layers.Dropout,
    Subsample2D,
)
# Layers that turn spikes into rates.
_AVERAGING = (
    keras.layers.GlobalAveragePooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling1D,
    keras.layers.AveragePooling1D,
)


def _producers(layers):
    """`{id(tensor): layer}` for every symbolic output of `layers`, from the public
    `layer.output` (a layer called more than once has no single output and is left out)."""
    producers = {}
    for layer in layers:
        try:
            outputs = layer.output
        except (AttributeError, ValueError):
            continue
        for tensor in keras.tree.flatten(outputs):
            producers[id(tensor)] = layer
    return producers


def _inner(layer):
    return layer.layer if isinstance(layer, TimeFold) else layer


def _input_source(layer, producers):
    """(kind, lif_name) of a layer's input: kind is 'spikes', 'rate' or 'real'."""
    tensor = layer.input
    while True:
        producer = producers.get(id(tensor))
        if producer is None:
            return "real", None
        if isinstance(producer, LIF):
            return "spikes", producer.name
        if isinstance(_inner(producer), _SPIKE_PRESERVING):
            tensor = producer.input
            continue
        if isinstance(_inner(producer), _AVERAGING):
            kind, source = _input_source(producer, producers)
            return ("rate", source) if kind == "spikes" else (kind, None)
        return "real", None


def _conv_macs_per_sample(conv, input_shape, output_shape):
    """MACs of one sample of a Conv/DepthwiseConv layer from its shapes (channels last)."""
    kernel = conv.kernel_size
    spatial_out = math.prod(output_shape[1:-1])
    c_in, c_out = input_shape[-1], output_shape[-1]
    if isinstance(conv, keras.layers.DepthwiseConv2D) or isinstance(
        conv, getattr(keras.layers, "DepthwiseConv1D", ())
    ):
        return spatial_out * math.prod(kernel) * c_out  # one input channel per output
    groups = getattr(conv, "groups", 1)
    return spatial_out * math.prod(kernel) * c_in * c_out // groups


def _is_conv(layer):
    return isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Conv3D
                      | keras.layers.DepthwiseConv2D) and not isinstance(
        layer, keras.layers.Conv2DTranspose | keras.layers.Conv1DTranspose | keras.layers.Conv3DTranspose
    )


def _dta_macs(layer):
    """MACs of the DTA block per sample, over all T steps, by operation."""
    x_shape = layer.input[0].shape
    _, T, H, W, C = x_shape
    D = T * C
    parts = {}
    if layer.txa is not None:
        k_t, k_c = layer.txa.kernel_size_t, layer.txa.kernel_size_c
        parts["txa_conv_t"] = C * k_t * T * T  # length C, T -> T channels
        parts["txa_conv_c"] = T * k_c * C * C  # length T, C -> C channels
    if layer.tna is not None:
        hidden = tna_hidden_width(D)
        k = layer.tna.local_kernel_size
        parts["tna_encoding"] = H * W * D * D
        parts["tna_local_depthwise"] = H * W * k * k * D
        parts["tna_local_pointwise"] = H * W * D * D
        parts["tna_global_squeeze"] = D * hidden
        parts["tna_global_excite"] = hidden * D
        parts["tna_decoding"] = H * W * D * D
    return T, parts


def count_macs(model):
    """Multiply-accumulates per image of every convolution, dense layer and DTA block.

    Args:
        model: a functional `keras.Model` (e.g. from `keras_dta.models.ms_resnet18`).

    Returns:
        A dict, in graph order, `{name: entry}` where entry is a dict with
        `"kind"` (`"conv"`, `"dense"` or `"dta"`), `"time_steps"` (T, 1 for a layer that does
        not see a time axis), `"macs_per_step"`, `"macs"` (total over T), `"input"`
        (`"spikes"`, `"rate"` or `"real"`) and `"source"` (the feeding LIF layer's name, or
        None). DTA entries also hold `"parts"`, the MACs of each of its operations.

    Example:

    >>> macs = count_macs(keras_dta.models.ms_resnet18(T=6))
    >>> macs["stem_conv"]["macs_per_step"]  # 32 * 32 * 3 * 3 * 3 * 64
    1769472
    """
    check_functional(model)
    layers = flat_layers(model)
    producers = _producers(layers)
    result = {}
    for layer in layers:
        inner = _inner(layer)
        if isinstance(layer, DTA):
            T, parts = _dta_macs(layer)
            total = sum(parts.values())
            result[layer.name] = {
                "kind": "dta", "time_steps": T, "macs_per_step": total // T, "macs": total,
                "input": "real", "source": None, "parts": parts,
            }
            continue
        if isinstance(layer, TXA | TNA):
            logger.warning("count_macs: standalone %s '%s' is not counted.", type(layer).__name__, layer.name)
            continue
        if not (_is_conv(inner) or isinstance(inner, keras.layers.Dense)):
            continue
        in_shape, out_shape = tuple(layer.input.shape), tuple(layer.output.shape)
        if isinstance(layer, TimeFold):
            T = in_shape[1]
            in_shape, out_shape = (in_shape[0], *in_shape[2:]), (out_shape[0], *out_shape[2:])
        elif isinstance(inner, keras.layers.Dense) and len(in_shape) >= 3:
            T = in_shape[1]  # Dense on (batch, time, features): one product per step
        else:
            T = 1
        if any(d is None for d in (*in_shape[1:], *out_shape[1:])) or T is None:
            raise ValueError(
                f"count_macs needs static shapes. Received: {layer.name} input shape "
                f"{layer.input.shape}, output shape {layer.output.shape}"
            )
        if _is_conv(inner):
            kind, per_step = "conv", _conv_macs_per_sample(inner, in_shape, out_shape)
        else:
            # A Dense acts on the last axis; every other non-batch, non-time axis repeats it.
            middle = in_shape[1:-1] if T == 1 or isinstance(layer, TimeFold) else in_shape[2:-1]
            kind, per_step = "dense", math.prod(middle) * in_shape[-1] * inner.units
        source_kind, source = _input_source(layer, producers)
        result[layer.name] = {
            "kind": kind, "time_steps": T, "macs_per_step": per_step, "macs": per_step * T,
            "input": source_kind, "source": source,
        }
    return result


def format_macs_table(macs):
    """Formats the output of `count_macs` as a plain-text table.

    Args:
        macs: dict from `count_macs`.

    Returns:
        A string.
    """
    header = f"{'layer':<28} {'kind':<5} {'input':<6} {'T':>3} {'MACs/step':>12} {'MACs':>14}"
    lines = [header, "-" * len(header)]
    for name, e in macs.items():
        lines.append(
            f"{name:<28} {e['kind']:<5} {e['input']:<6} {e['time_steps']:>3} "
            f"{e['macs_per_step']:>12,} {e['macs']:>14,}"
        )
    per_step = sum(e["macs_per_step"] for e in macs.values())
    total = sum(e["macs"] for e in macs.values())
    lines += ["-" * len(header), f"{'total':<28} {'':<5} {'':<6} {'':>3} {per_step:>12,} {total:>14,}"]
    return "\n".join(lines)
