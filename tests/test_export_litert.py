"""The LiteRT side of export: XNNPACK partitions and the ops left outside the delegate."""

import keras
import numpy as np
import pytest

from keras_dta import export


def _convert(build):
    inputs = keras.Input((8, 8, 4), name="images")
    model = keras.Model(inputs, build(inputs))
    return export.convert_to_tflite(model)


def test_a_fully_supported_graph_is_one_partition():
    content = _convert(lambda x: keras.layers.Conv2D(4, 1, activation="relu")(keras.layers.Conv2D(4, 3)(x)))
    interpreter, delegate = export.make_interpreter(content, threads=1)
    summary = export.delegate_summary(interpreter)
    assert delegate == "xnnpack"
    assert summary["partitions"] == 1
    assert summary["ops_outside"] == {}
    assert summary["delegated_ops"] == summary["total_ops"] == sum(export.list_ops(content).values())


def test_an_unsupported_op_splits_the_graph():
    # GREATER and its bool CAST have no XNNPACK kernel: the convolutions on either side end
    # up in two partitions, with the comparison between them in the builtin kernels.
    def build(x):
        x = keras.layers.Conv2D(4, 1)(x)
        x = keras.ops.cast(keras.ops.greater(x, 0.5), "float32")
        return keras.layers.Conv2D(4, 1)(x)

    content = _convert(build)
    interpreter, _ = export.make_interpreter(content, threads=1)
    summary = export.delegate_summary(interpreter)
    assert summary["partitions"] == 2
    assert summary["ops_outside"] == {"GREATER": 1, "CAST": 1}
    assert summary["delegated_ops"] == summary["total_ops"] - 2


def test_the_builtin_fallback_has_no_partition():
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    content = _convert(lambda x: keras.layers.Conv2D(4, 3)(x))
    interpreter = Interpreter(
        model_content=content, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interpreter.allocate_tensors()
    summary = export.delegate_summary(interpreter)
    assert summary["partitions"] == 0 and summary["delegated_ops"] == 0
    assert summary["ops_outside"] == {"CONV_2D": 1}


@pytest.mark.parametrize("threads", [0, -1, 1.5])
def test_bad_thread_counts(threads):
    content = _convert(lambda x: keras.layers.Conv2D(4, 3)(x))
    with pytest.raises(ValueError, match="threads"):
        export.make_interpreter(content, threads=threads)


def test_predict_matches_keras_on_a_float_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 4), name="images")
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3)(inputs))
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 4)).astype("float32")
    content = export.convert_to_tflite(model)
    np.testing.assert_allclose(export.tflite_predict(content, x), model.predict(x, verbose=0), atol=1e-5)
