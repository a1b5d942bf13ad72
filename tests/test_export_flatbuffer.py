"""Reading and rewriting TFLite flatbuffers (keras_dta.export.flatbuffer)."""

import keras
import numpy as np
import pytest

from keras_dta import export
from keras_dta.export import flatbuffer


def _depthwise_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 64), name="images")
    x = keras.layers.DepthwiseConv2D(5, padding="same", name="dw")(inputs)  # 1600 weights: quantized
    return keras.Model(inputs, keras.layers.Conv2D(32, 3, name="conv")(x))


def _weights(content, op_name):
    """(type, values) of the weight tensor of the first `op_name` op."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(content, 0)
    for name, op, subgraph in flatbuffer.iter_ops(content):
        if name == op_name:
            tensor = subgraph.Tensors(op.Inputs(1))
            data = model.Buffers(tensor.Buffer()).DataAsNumpy()
            dtype = np.int8 if tensor.Type() == schema.TensorType.INT8 else np.float32
            quant = tensor.Quantization()
            return tensor.Type(), np.frombuffer(data.tobytes(), dtype), quant.ScaleAsNumpy() if quant else None


def _op_key(content, op_name):
    """`(subgraph index, op index)` of the first `op_name` op."""
    for o, (name, _, _) in enumerate(flatbuffer.iter_ops(content)):
        if name == op_name:
            return (0, o)


def test_restore_float_weights_gives_the_ops_not_kept_their_float_weights_back():
    from ai_edge_litert import schema_py_generated as schema

    import tensorflow as tf

    model = _depthwise_model()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    float_content = converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    hybrid = converter.convert()
    assert _weights(hybrid, "CONV_2D")[0] == _weights(hybrid, "DEPTHWISE_CONV_2D")[0] == schema.TensorType.INT8
    content, names = flatbuffer.restore_float_weights(hybrid, float_content, keep_int8=set())
    assert len(names) == 2
    kind, values, _ = _weights(content, "CONV_2D")
    assert kind == schema.TensorType.FLOAT32
    # TFLite's filters are (out, h, w, in); the Keras kernel is (h, w, in, out).
    np.testing.assert_array_equal(values, model.get_layer("conv").kernel.numpy().transpose(3, 0, 1, 2).ravel())
    assert _weights(content, "DEPTHWISE_CONV_2D")[0] == schema.TensorType.FLOAT32
    # Kept: the conv stays int8; a depthwise convolution is restored whatever the choice
    # (XNNPACK has no dynamic-range kernel for it).
    keep = {_op_key(hybrid, "CONV_2D"), _op_key(hybrid, "DEPTHWISE_CONV_2D")}
    content, names = flatbuffer.restore_float_weights(hybrid, float_content, keep_int8=keep)
    assert len(names) == 1
    assert _weights(content, "CONV_2D")[0] == schema.TensorType.INT8
    assert _weights(content, "DEPTHWISE_CONV_2D")[0] == schema.TensorType.FLOAT32
    with pytest.raises(ValueError, match="float32 conversion of the same SavedModel"):
        flatbuffer.restore_float_weights(hybrid, hybrid, keep_int8=set())
    other = keras.Model(model.inputs, keras.layers.Dense(4)(model.outputs[0]))
    with pytest.raises(ValueError, match="its ops differ"):
        flatbuffer.restore_float_weights(hybrid, tf.lite.TFLiteConverter.from_keras_model(other).convert(), set())


def test_spike_fed_ops_follow_spikes_through_padding_and_concatenation_only():
    """A convolution reading spikes (padded, or joined over time) is found; one reading real
    values, or spikes added to real values, is not. Each layer has its own width, which
    tells the converted ops apart."""
    from keras_dta.layers import LIF, RepeatTime, TimeFold

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 8), name="images")
    x = TimeFold(keras.layers.Conv2D(8, 3, padding="same"), name="real")(RepeatTime(2)(inputs))
    spikes = LIF(name="lif")(x)
    padded = TimeFold(keras.layers.ZeroPadding2D(1), name="pad")(spikes)
    a = TimeFold(keras.layers.Conv2D(5, 3, strides=2), name="on_padded_spikes")(padded)
    b = TimeFold(keras.layers.Conv2D(6, 3, padding="same"), name="on_spikes")(spikes)
    mixed = keras.layers.Add(name="mixed")([spikes, x])
    c = TimeFold(keras.layers.Conv2D(7, 1), name="on_mixed")(mixed)
    pooled = [TimeFold(keras.layers.GlobalAveragePooling2D())(t) for t in (a, b, c)]
    model = keras.Model(inputs, keras.layers.Concatenate()(pooled))
    for content in (export.convert_to_tflite(model), export.convert_to_tflite(model, quantize="dynamic")):
        ops = list(flatbuffer.iter_ops(content))
        widths = {
            (0, o): int(sub.Tensors(op.Inputs(1)).Shape(0)) for o, (name, op, sub) in enumerate(ops) if name == "CONV_2D"
        }
        # The float32 graph folds time into the batch (one op per layer); the dynamic-range
        # one runs each step (two per layer, the stem's once: the image is the same).
        assert sorted(widths.values()) in ([5, 6, 7, 8], [5, 5, 6, 6, 7, 7, 8])
        assert sorted({widths[key] for key in flatbuffer.spike_fed_ops(content)}) == [5, 6]


def test_dynamic_export_keeps_depthwise_weights_in_float_inside_xnnpack():
    model = _depthwise_model()
    content = export.convert_to_tflite(model, quantize="dynamic")
    interpreter, _ = export.make_interpreter(content, threads=1)
    summary = export.delegate_summary(interpreter)
    assert summary["partitions"] == 1 and summary["ops_outside"] == {}
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 64)).astype("float32")
    reference = model.predict(x, verbose=0)
    actual = export.tflite_predict(content, x, interpreter=interpreter)
    # int8 weights (and activations quantized on the fly for the conv): close, not equal.
    assert np.abs(actual - reference).max() < 0.05 * np.abs(reference).max()
