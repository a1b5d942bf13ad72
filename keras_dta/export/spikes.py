"""Per-layer spike agreement between an exported model and the Keras model.

Top-1 agreement says whether a conversion keeps the answers; it does not say where a
quantized network drifts. Spikes do: a spike is exactly 0 or 1 in both models, so the share
of equal spike values of each LIF layer shows which layers the quantization disturbs.

The exported model keeps its intermediate tensors to itself (XNNPACK computes them inside its
own graph), so the spikes are read from a probe: the same network with every LIF layer's
output as an extra output, converted with the same settings and calibration data. It runs the
same kernels on the same quantization parameters, only with more outputs.
"""

import numpy as np

from keras_dta.export import litert
from keras_dta.export._common import SERVING_ENDPOINT, check_inputs

# Examples run through the Keras probe at once: its outputs hold every layer's spikes.
_CHUNK = 16


def lif_probe(model):
    """The model with the logits and every LIF layer's spikes as outputs.

    Args:
        model: a functional `keras.Model` holding `keras_dta.layers.LIF` layers.

    Returns:
        `(probe, names)`: a `keras.Model` whose outputs are `[logits, *spikes]`, and the LIF
        layer names in that order.
    """
    import keras

    from keras_dta import stats

    lifs = stats.lif_layers(model)
    if not lifs:
        raise ValueError(f"The model has no LIF layer to compare spikes of. Received: model={model.name!r}")
    probe = keras.Model(model.inputs, [model.outputs[0], *[layer.output for layer in lifs]], name=f"{model.name}_probe")
    return probe, [layer.name for layer in lifs]


def spike_agreement(model, content, inputs, names, threads=None):
    """The share of equal spike values per LIF layer, Keras against a converted probe.

    Args:
        model: the Keras probe (`lif_probe(...)[0]`).
        content: bytes of the probe converted to TFLite (batch size 1).
        inputs: array `(num_examples, *input_shape)`.
        names: the LIF layer names, in the probe's output order.
        threads: int or None, interpreter threads.

    Returns:
        `{layer name: fraction of spike values equal in both models}`, in graph order.
    """
    inputs = check_inputs(model, inputs, "inputs")
    equal = np.zeros(len(names))
    total = np.zeros(len(names))
    interpreter, _ = litert.make_interpreter(content, threads)
    runner = interpreter.get_signature_runner(SERVING_ENDPOINT)
    (input_name,) = runner.get_input_details()
    for start in range(0, len(inputs), _CHUNK):
        chunk = inputs[start : start + _CHUNK]
        reference = model.predict(chunk, batch_size=_CHUNK, verbose=0)[1:]
        for j, x in enumerate(chunk):
            outputs = runner(**{input_name: x[None]})
            # The SavedModel signature names the outputs output_0, output_1, ... in order.
            for i, spikes in enumerate(reference):
                candidate = np.asarray(outputs[f"output_{i + 1}"]).reshape(spikes[j].shape)
                equal[i] += np.count_nonzero(spikes[j] == candidate)
                total[i] += spikes[j].size
    return {name: float(e / t) for name, e, t in zip(names, equal, total)}
