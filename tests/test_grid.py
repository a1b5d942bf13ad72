"""Training on the int8 grid: `Int8GridConv2D` and `ms_resnet18(int8_grid=True)`."""

import keras
import numpy as np
import pytest

from helpers import int8_weight_layers
from keras_dta import export, layers, models, training


def _tiny(**kwargs):
    return models.ms_resnet18(
        T=2, num_classes=10, input_shape=(16, 16, 3), stem_filters=8, stage_filters=(8, 16, 16),
        stage_blocks=(1, 1, 1), **kwargs,
    )


def test_grid_conv_convolves_with_the_rounded_kernel_and_passes_the_gradient_through():
    keras.utils.set_random_seed(0)
    x = keras.random.uniform((2, 6, 6, 8))
    grid = layers.Int8GridConv2D(12, 3, use_bias=False)
    plain = keras.layers.Conv2D(12, 3, use_bias=False)
    grid.build(x.shape)
    plain.build(x.shape)
    kernel = grid.kernel.numpy()
    rounded = export.int8_grid(kernel)
    assert not np.array_equal(kernel, rounded)  # the test means something
    plain.kernel.assign(rounded)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(grid(x)), keras.ops.convert_to_numpy(plain(x)))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(grid.grid_kernel()), rounded)

    import tensorflow as tf

    def kernel_gradient(layer):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x) ** 2)
        return tape.gradient(loss, layer.kernel).numpy()

    # Straight through: the float kernel gets the gradient taken at the rounded kernel.
    np.testing.assert_allclose(kernel_gradient(grid), kernel_gradient(plain), rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="export traces the model with TensorFlow")
def test_a_model_trained_on_the_grid_is_its_own_int8_model(tmp_path):
    """The spike-fed convolutions of `int8_grid=True` are on the grid whatever their variables
    hold, so the dynamic-range export computes what the float export computes."""
    keras.utils.set_random_seed(1)
    model = _tiny(int8_grid=True)
    spike_fed = export.spike_fed_layers(model)
    assert spike_fed == [f"stage{s}_block1_conv{i}" for s in (1, 2, 3) for i in (1, 2)]
    for layer in model.layers:
        if isinstance(getattr(layer, "layer", None), keras.layers.Conv2D):
            assert isinstance(layer.layer, layers.Int8GridConv2D) == (layer.name in spike_fed), layer.name
    assert export.off_grid_layers(model) == []
    assert export.off_grid_layers(_tiny()) == spike_fed
    path = tmp_path / "grid.keras"
    model.save(path)
    loaded = export.load_model(str(path))
    assert loaded.int8_grid is True and export.off_grid_layers(loaded) == []

    x = np.random.default_rng(0).uniform(0.0, 2.0, (24, 16, 16, 3)).astype("float32")
    reference = model.predict(x, verbose=0)
    content = export.convert_to_tflite(model, quantize="dynamic")
    # The rounding is folded into constant int8 weights (those of >= 1024 weights: the
    # converter leaves smaller ones in float).
    assert int8_weight_layers(content) == {f"stage{s}_block1_conv{i}" for s in (2, 3) for i in (1, 2)}
    dynamic = export.tflite_predict(content, x)
    float32 = export.tflite_predict(export.convert_to_tflite(model), x)
    np.testing.assert_allclose(dynamic, float32, atol=1e-5, rtol=0)
    np.testing.assert_allclose(float32, reference, atol=1e-4, rtol=0)


def test_int8_grid_argument_and_its_training_flag():
    with pytest.raises(ValueError, match="int8_grid='yes'"):
        _tiny(int8_grid="yes")
    config = training.make_config("digits", preset="cpu_small", model_kwargs={"int8_grid": True})
    # Merged over the recipe's model options: the small widths stay.
    assert config.model_kwargs["int8_grid"] is True and config.model_kwargs["stage_filters"] == [32, 64, 128]
