"""The inference graph evaluated step by step (keras_dta.export.stepwise)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dta import export, models
from keras_dta.export import flatbuffer, spikes
from keras_dta.export.stepwise import stepwise_call
from keras_dta.layers import LIF, RepeatTime, TimeFold


def _tiny(T=3):
    keras.utils.set_random_seed(0)
    return models.ms_resnet18(
        T=T, num_classes=10, input_shape=(16, 16, 3), stem_filters=8, stage_filters=(8, 16, 16), stage_blocks=(1, 1, 1)
    )


def test_stepwise_call_computes_the_models_values_exactly():
    """The same ops on the same values, step by step: every logit and every spike equal."""
    model = _tiny()
    x = np.random.default_rng(0).uniform(0.0, 3.0, (4, 16, 16, 3)).astype("float32")
    np.testing.assert_array_equal(stepwise_call(model, tf.constant(x)).numpy(), model(x, training=False).numpy())
    probe, names = spikes.lif_probe(model)
    expected = probe(x, training=False)
    actual = stepwise_call(probe, tf.constant(x))
    assert isinstance(actual, list) and len(actual) == len(expected) == 1 + len(names)
    for e, a in zip(expected, actual):
        np.testing.assert_array_equal(a.numpy(), e.numpy())
    assert 0.0 < float(np.mean(expected[1])) < 1.0  # the stem fires: the spikes say something


def test_layers_that_need_every_step_get_the_whole_sequence():
    """A stateful LIF and an unknown layer are called on (batch, time, ...) as in the model."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4, 4, 3), batch_size=2, name="images")
    x = TimeFold(keras.layers.Conv2D(4, 3, padding="same"))(RepeatTime(3)(inputs))
    x = LIF(stateful=True, name="stateful")(x)
    x = keras.layers.Lambda(lambda t: t[:, ::-1], name="reverse_time")(x)  # needs all steps
    x = LIF(name="stateless")(TimeFold(keras.layers.Conv2D(4, 1))(x))
    model = keras.Model(inputs, keras.layers.Flatten()(x))
    x = np.random.default_rng(1).uniform(0.0, 3.0, (2, 4, 4, 3)).astype("float32")
    expected = model(x, training=False).numpy()
    model.get_layer("stateful").reset_state()
    np.testing.assert_array_equal(stepwise_call(model, tf.constant(x)).numpy(), expected)
    assert expected.any()


def test_stepwise_call_refuses_a_layer_called_twice():
    inputs = keras.Input((4, 4, 3), name="images")
    conv = TimeFold(keras.layers.Conv2D(3, 1), name="shared")
    x = RepeatTime(2)(inputs)
    model = keras.Model(inputs, conv(conv(x)))
    with pytest.raises(ValueError, match="`stepwise_call` needs every layer called once"):
        stepwise_call(model, tf.zeros((1, 4, 4, 3)))


def test_dynamic_export_runs_the_convolutions_step_by_step_and_float32_folds_time():
    """Dynamic range: each convolution once per step on one shared weight tensor, and no slice
    or join of the spikes between a LIF and the next convolution. Float32: time folded."""
    T = 3
    model = _tiny(T)
    convs = sum(isinstance(getattr(layer, "layer", None), keras.layers.Conv2D) for layer in model.layers)
    dta_convs = 2 + 3  # T-XA's two, T-NA's encoding, pointwise and decoding convolutions
    float32 = flatbuffer.list_ops(export.convert_to_tflite(model))
    dynamic_content = export.convert_to_tflite(model, quantize="dynamic")
    dynamic = flatbuffer.list_ops(dynamic_content)
    assert float32["CONV_2D"] == convs + dta_convs
    # The stem's image is the same at every step: its convolution runs once.
    assert dynamic["CONV_2D"] == T * (convs - 1) + 1 + dta_convs
    assert dynamic["STRIDED_SLICE"] < float32["STRIDED_SLICE"] and dynamic["CONCATENATION"] < float32["CONCATENATION"]
    # Shared weights: the file is no larger for holding T ops per layer.
    from ai_edge_litert import schema_py_generated as schema

    tfl = schema.Model.GetRootAsModel(dynamic_content, 0)
    conv_weights = {op.Inputs(1) for name, op, _ in flatbuffer.iter_ops(dynamic_content) if name == "CONV_2D"}
    assert tfl.SubgraphsLength() == 1 and len(conv_weights) == convs + dta_convs
