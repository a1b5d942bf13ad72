"""The inference graph evaluated one time step at a time: the dynamic-range TFLite graph.

A keras_dta model holds activations as `(batch, time, ...)` and runs each convolution once on
all time steps (`TimeFold`). Its LIF neurons read one step at a time, so the exported graph
slices every convolution's output into steps and concatenates the spikes again for the next
convolution. XNNPACK runs those copies on one thread at a fraction of the memory bandwidth
its element-wise kernels reach: at T = 6 a slice and a concatenation cost about as much as
all of a LIF step's arithmetic.

Evaluated step by step, the spikes of step t go straight into the convolution of step t:
convolutions run T times on a batch of one (one weight tensor shared by the T ops), and the
slices and concatenations remain only around the layers that need all steps at once (DTA,
the mean over time). The values are those of the model's own call, op for op.

In a dynamic-range model that is faster (its int8 convolutions lose little on a batch of
one); in a float32 model it is slower (XNNPACK's float32 convolutions lose more). So
`convert_to_tflite` uses it for `quantize="dynamic"` only; `benchmarks/inference.py` has the
figures.
"""

import keras
from keras import ops

from keras_dta.export.graph import layer_graph


class _Value:
    """One tensor of the graph, as a whole `(batch, time, ...)` tensor, as a list of steps
    `(batch, ...)`, or both; each form is built from the other once, when first asked for."""

    def __init__(self, whole=None, steps=None):
        self._whole, self._steps = whole, steps

    def steps(self):
        if self._steps is None:
            # Keep-dims slices, reshaped: XNNPACK runs those, not a slice that drops an axis.
            whole = self._whole
            self._steps = [ops.squeeze(whole[:, t : t + 1], 1) for t in range(whole.shape[1])]
        return self._steps

    def whole(self):
        if self._whole is None:
            from keras_dta.layers.time import concat_time

            self._whole = concat_time([ops.expand_dims(s, 1) for s in self._steps])
        return self._whole


def _map_steps(fn, steps):
    """`[fn(s) for s in steps]`, computed once for steps that are the same tensor (the
    repeated image of `RepeatTime`: the stem convolution then runs once, not T times)."""
    done = {}
    for s in steps:
        if id(s) not in done:
            done[id(s)] = fn(s)
    return [done[id(s)] for s in steps]


def _last_axis(layer, rank):
    return layer.axis in (-1, rank - 1)


def _stepwise_layer(layer, args):
    """The layer's outputs computed step by step, or None for a layer that needs all steps."""
    from keras_dta.layers import LIF, RepeatTime, TimeFold

    if isinstance(layer, RepeatTime):
        return [_Value(steps=[args[0].whole()] * layer.T)]
    if len(args) == 1 and isinstance(layer, TimeFold):
        return [_Value(steps=_map_steps(lambda s: layer.layer(s, training=False), args[0].steps()))]
    if (
        len(args) == 1
        and isinstance(layer, keras.layers.BatchNormalization)
        and _last_axis(layer, len(layer.input.shape))
    ):
        # `call`, not `__call__`: the layer was built on (batch, time, ...) inputs and its
        # input spec says so. Inference normalizes the last axis with the moving statistics,
        # whatever the rank.
        return [_Value(steps=_map_steps(lambda s: layer.call(s, training=False), args[0].steps()))]
    if len(args) == 1 and isinstance(layer, LIF) and not layer.stateful:
        steps = args[0].steps()
        _, spikes = layer.unrolled(ops.zeros_like(steps[0]), steps)
        return [_Value(steps=spikes)]
    if isinstance(layer, keras.layers.Add):
        summed = []
        for parts in zip(*[a.steps() for a in args]):
            total = parts[0]
            for part in parts[1:]:
                total = ops.add(total, part)
            summed.append(total)
        return [_Value(steps=summed)]
    return None


def stepwise_call(model, inputs):
    """`model(inputs, training=False)`, evaluated one time step at a time where it can be.

    Layers acting on each step alone (`TimeFold`, `BatchNormalization` of the last axis, `Add`,
    stateless `LIF`, `RepeatTime`) run step by step; every other layer gets the whole
    `(batch, time, ...)` tensor, as in the model. Meant for tracing an inference graph (the
    dynamic-range TFLite export); a model whose compute dtype is not float32 is called as it
    is.

    Args:
        model: a functional `keras.Model` (every layer called once).
        inputs: the model's input tensor(s).

    Returns:
        The model's outputs, with the structure of `model.output` (as `model(inputs)`).
    """
    if model.dtype_policy.compute_dtype != "float32":
        return model(inputs, training=False)
    graph = layer_graph(model, "stepwise_call")
    values = {id(t): _Value(whole=x) for t, x in zip(keras.tree.flatten(model.inputs), keras.tree.flatten(inputs))}
    for name, (ins, outs) in graph.items():
        layer = model.get_layer(name)
        args = [values[id(t)] for t in ins]
        results = _stepwise_layer(layer, args)
        if results is None:
            called = layer(keras.tree.pack_sequence_as(layer.input, [a.whole() for a in args]), training=False)
            results = [_Value(whole=r) for r in keras.tree.flatten(called)]
        for tensor, value in zip(outs, results):
            values[id(tensor)] = value
    outputs = [values[id(t)].whole() for t in keras.tree.flatten(model.outputs)]
    return keras.tree.pack_sequence_as(model.output, outputs)
