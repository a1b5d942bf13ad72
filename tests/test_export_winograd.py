"""3x3 convolutions as Winograd F(2x2, 3x3) (keras_dta.export.winograd)."""

import keras
import numpy as np
import pytest

from keras_dta import export, models
from keras_dta.export import flatbuffer
from keras_dta.layers import RepeatTime, TimeFold


def _convs(**kwargs):
    """One 3x3 'same' convolution with a bias, and beside it layers that must stay as they are."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 6, 5), name="images")
    fast = keras.layers.Conv2D(7, 3, padding="same", name="fast", **kwargs)(inputs)
    strided = keras.layers.Conv2D(7, 3, strides=2, padding="same", name="strided")(inputs)
    pointwise = keras.layers.Conv2D(7, 1, name="pointwise")(inputs)
    valid = keras.layers.Conv2D(7, 3, name="valid")(inputs)
    dilated = keras.layers.Conv2D(7, 3, padding="same", dilation_rate=2, name="dilated")(inputs)
    odd = keras.layers.Conv2D(7, 3, padding="same", name="odd")(keras.layers.Cropping2D(((0, 1), (0, 0)))(inputs))
    pooled = [keras.layers.GlobalAveragePooling2D()(t) for t in (fast, strided, pointwise, valid, dilated, odd)]
    return keras.Model(inputs, [fast, keras.layers.Concatenate()(pooled)])


def test_winograd_convolution_computes_the_convolution():
    model = _convs()
    x = np.random.default_rng(0).normal(size=(3, 8, 6, 5)).astype("float32")
    fast, names = export.winograd_convolutions(model, min_channels=5)
    assert names == ["fast"]
    assert export.winograd_convolutions(model, min_channels=8)[1] == []  # 7 filters: too narrow
    assert isinstance(fast.get_layer("fast"), export.winograd.WinogradConv2D)
    assert type(model.get_layer("fast")) is keras.layers.Conv2D  # the model given is unchanged
    for expected, actual in zip(model.predict(x, verbose=0), fast.predict(x, verbose=0)):
        np.testing.assert_allclose(actual, expected, atol=2e-6, rtol=0)
    # A bias reaches every output once; so does a kernel with one tap (the transforms' signs).
    conv = model.get_layer("fast")
    kernel = np.zeros(conv.kernel.shape, "float32")
    kernel[2, 0] = 1.0
    conv.set_weights([kernel, np.arange(7, dtype="float32")])
    fast, _ = export.winograd_convolutions(model, min_channels=5)
    # (A few float32 ulps of outputs up to ~8: the transforms add and subtract.)
    np.testing.assert_allclose(fast.predict(x, verbose=0)[0], model.predict(x, verbose=0)[0], atol=1e-5, rtol=0)


def test_winograd_float32_export_of_an_ms_resnet():
    """Wide enough (128 channels) for the default `min_channels`, small enough (8x8) to be quick."""
    keras.utils.set_random_seed(0)
    model = models.ms_resnet18(
        T=2, num_classes=10, input_shape=(8, 8, 3), stem_filters=8, stage_filters=(128, 128, 128), stage_blocks=(1, 1, 1)
    )
    x = np.random.default_rng(0).uniform(0.0, 3.0, (8, 8, 8, 3)).astype("float32")
    for _ in range(3):
        model(x, training=True)  # BatchNorm statistics away from (0, 1): folded first
    _, names = export.winograd_convolutions(model)
    # 3x3, stride 1, 128 channels in and out: not the stem (3 -> 8), the first convolution
    # (8 -> 128) or the strided ones.
    assert names == ["stage1_block1_conv2", "stage2_block1_conv2", "stage3_block1_conv2"]
    direct = export.convert_to_tflite(model)
    content = export.convert_to_tflite(model, winograd=True)
    ops, direct_ops = flatbuffer.check_builtin_ops(content), flatbuffer.list_ops(direct)
    assert ops["CONV_2D"] == direct_ops["CONV_2D"] - len(names)
    assert ops["FULLY_CONNECTED"] == direct_ops["FULLY_CONNECTED"] + 16 * len(names)
    interpreter, _ = export.make_interpreter(content, threads=1)
    summary = export.delegate_summary(interpreter)
    assert summary["partitions"] == 1 and summary["ops_outside"] == {}
    np.testing.assert_allclose(
        export.tflite_predict(content, x, interpreter=interpreter), model.predict(x, verbose=0), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="`winograd` is for float32 exports.*quantize='dynamic', winograd=True"):
        export.convert_to_tflite(model, quantize="dynamic", winograd=True)


def test_winograd_inside_timefold():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4, 4, 3), name="images")
    y = TimeFold(keras.layers.Conv2D(5, 3, padding="same"), name="folded")(RepeatTime(2)(inputs))
    model = keras.Model(inputs, y)
    fast, names = export.winograd_convolutions(model, min_channels=3)
    assert names == ["folded"] and isinstance(fast.get_layer("folded").layer, export.winograd.WinogradConv2D)
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(fast.predict(x, verbose=0), model.predict(x, verbose=0), atol=2e-6, rtol=0)
    with pytest.raises(ValueError, match="min_channels"):
        export.winograd_convolutions(model, min_channels=0)
