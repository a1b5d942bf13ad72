"""The frozen TensorFlow inference graph (keras_dta.export.inference_function)."""

import keras
import numpy as np
import pytest

from keras_dta import export, models
from keras_dta.export import spikes


def _trained_tiny():
    keras.utils.set_random_seed(0)
    model = models.ms_resnet18(
        T=2, num_classes=10, input_shape=(16, 16, 3), stem_filters=8, stage_filters=(8, 16, 16), stage_blocks=(1, 1, 1)
    )
    x = np.random.default_rng(0).uniform(0.0, 3.0, (8, 16, 16, 3)).astype("float32")
    for _ in range(3):  # BatchNorm statistics away from (0, 1): folding has something to do
        model(x, training=True)
    return model, x


def _op_types(function):
    return [op.type for op in function.graph.get_operations()]


def test_inference_function_computes_the_model_with_weights_as_constants():
    model, x = _trained_tiny()
    reference = model.predict(x, verbose=0)
    predict = export.inference_function(model, batch_size=None)
    np.testing.assert_allclose(predict(x).numpy(), reference, atol=1e-5, rtol=0)
    types = _op_types(predict)
    assert not set(types) & {"VarHandleOp", "ReadVariableOp", "ResourceGather"}
    unfolded = export.inference_function(model, batch_size=8, fold=False)
    np.testing.assert_allclose(unfolded(x).numpy(), reference, atol=1e-5, rtol=0)
    # Folded: each folded convolution carries its BatchNorm as a bias (DTA's have their own).
    folded = len(export.foldable_pairs(model))
    assert folded == 9 and types.count("BiasAdd") == _op_types(unfolded).count("BiasAdd") + folded
    # Frozen when made: later weight changes do not reach it.
    model.set_weights([w * 1.5 for w in model.get_weights()])
    assert not np.allclose(model.predict(x, verbose=0), reference, atol=1e-3)
    np.testing.assert_allclose(predict(x).numpy(), reference, atol=1e-5, rtol=0)


def test_inference_function_of_a_model_with_several_outputs_and_bad_batch_sizes():
    model, x = _trained_tiny()
    probe, names = spikes.lif_probe(model)
    outputs = export.inference_function(probe, batch_size=8)(x)
    expected = probe.predict(x, verbose=0)
    assert isinstance(outputs, list) and len(outputs) == len(expected) == 1 + len(names)
    for e, a in zip(expected[1:], outputs[1:]):
        np.testing.assert_array_equal(a.numpy(), e)
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer or None. Received: batch_size=0"):
        export.inference_function(model, batch_size=0)
