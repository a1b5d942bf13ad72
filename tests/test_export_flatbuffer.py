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


def test_restore_float_weights_gives_the_chosen_ops_their_float_weights_back():
    from ai_edge_litert import schema_py_generated as schema

    import tensorflow as tf

    model = _depthwise_model()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    float_content = converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    hybrid = converter.convert()
    assert _weights(hybrid, "CONV_2D")[0] == schema.TensorType.INT8
    content, names = flatbuffer.restore_float_weights(hybrid, float_content, lambda op, _: op == "CONV_2D")
    assert len(names) == 1
    kind, values, _ = _weights(content, "CONV_2D")
    assert kind == schema.TensorType.FLOAT32
    # TFLite's filters are (out, h, w, in); the Keras kernel is (h, w, in, out).
    np.testing.assert_array_equal(values, model.get_layer("conv").kernel.numpy().transpose(3, 0, 1, 2).ravel())
    assert _weights(content, "DEPTHWISE_CONV_2D")[0] == schema.TensorType.INT8  # not chosen
    with pytest.raises(ValueError, match="float32 conversion of the same model"):
        flatbuffer.restore_float_weights(hybrid, hybrid, lambda op, _: op == "CONV_2D")


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
