"""Inference models: training on the int8 grid (`Int8GridConv2D`, `ms_resnet18(int8_grid=True)`)
and BatchNorm folded into the convolutions (`keras_dta.export.fold_batchnorm`)."""

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

    if keras.backend.backend() != "tensorflow":
        return  # the gradient is checked on TensorFlow; `test_a_grid_model_trains...` trains on any backend
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
    assert int8_weight_layers(content, model) == {f"stage{s}_block1_conv{i}" for s in (2, 3) for i in (1, 2)}
    dynamic = export.tflite_predict(content, x)
    float32 = export.tflite_predict(export.convert_to_tflite(model), x)
    np.testing.assert_allclose(dynamic, float32, atol=1e-5, rtol=0)
    np.testing.assert_allclose(float32, reference, atol=1e-4, rtol=0)


def test_a_grid_model_trains_and_stays_on_the_grid():
    """Training moves the float weights; the layers still convolve on the grid (any backend)."""
    keras.utils.set_random_seed(4)
    model = _tiny(int8_grid=True)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).uniform(0.0, 2.0, (16, 16, 16, 3)).astype("float32")
    layer = model.get_layer("stage2_block1_conv1").layer
    before = keras.ops.convert_to_numpy(layer.kernel).copy()
    model.fit(x, np.arange(16) % 10, epochs=2, batch_size=8, verbose=0)
    assert np.abs(keras.ops.convert_to_numpy(layer.kernel) - before).max() > 1e-3
    assert export.off_grid_layers(model) == []


def test_int8_grid_argument_and_its_training_flag():
    with pytest.raises(ValueError, match="int8_grid='yes'"):
        _tiny(int8_grid="yes")
    config = training.make_config("digits", preset="cpu_small", model_kwargs={"int8_grid": True})
    # Merged over the recipe's model options: the small widths stay.
    assert config.model_kwargs["int8_grid"] is True and config.model_kwargs["stage_filters"] == [32, 64, 128]


@pytest.mark.parametrize("int8_grid", [False, True])
def test_folded_batchnorm_computes_the_same_logits(int8_grid):
    keras.utils.set_random_seed(2)
    model = _tiny(int8_grid=int8_grid)
    rng = np.random.default_rng(0)
    for _ in range(3):  # BatchNorm statistics away from their initial 0 and 1
        model(rng.uniform(0.0, 2.0, (8, 16, 16, 3)).astype("float32"), training=True)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            # Shifted up, so that every layer fires and the logits depend on the input.
            layer.gamma.assign(rng.uniform(0.5, 2.0, layer.gamma.shape))
            layer.beta.assign(rng.uniform(0.0, 1.0, layer.beta.shape))
    folded = export.fold_batchnorm(model)
    batch_norms = [layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    # Every BatchNorm of MS-ResNet follows a convolution: all fold.
    assert sorted(export.foldable_pairs(model)) == sorted(batch_norms) and len(batch_norms) == 9
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    x = rng.uniform(0.0, 2.0, (16, 16, 16, 3)).astype("float32")
    expected, actual = model.predict(x, verbose=0), folded.predict(x, verbose=0)
    assert expected.std(axis=0).mean() > 0.01  # the logits vary with the input
    # The same function up to rounding; a spike flipped at its threshold moves one input more.
    close = np.abs(actual - expected).max(axis=1) <= 1e-5
    assert close.mean() >= 0.9 and np.array_equal(actual.argmax(-1)[close], expected.argmax(-1)[close])
    with pytest.raises(ValueError, match="functional keras.Model"):
        export.fold_batchnorm(keras.layers.Dense(2))


def test_a_batchnorm_folds_only_into_a_convolution_nothing_else_reads():
    inputs = keras.Input((8, 8, 4))
    conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    shared = keras.layers.Conv2D(4, 3, padding="same", name="shared")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(conv)
    y = keras.layers.BatchNormalization(name="bn_shared")(shared)
    z = keras.layers.BatchNormalization(name="bn_input")(inputs)
    model = keras.Model(inputs, [x, keras.layers.Add()([y, shared]), z])
    assert export.foldable_pairs(model) == {"bn": "conv"}
    folded = export.fold_batchnorm(model)
    assert {layer.name: type(layer).__name__ for layer in folded.layers if "bn" in layer.name} == {
        "bn": "FoldedBatchNorm", "bn_shared": "BatchNormalization", "bn_input": "BatchNormalization"}
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")
    for expected, actual in zip(model.predict(x, verbose=0), folded.predict(x, verbose=0)):
        np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_fold_batchnorm_refuses_a_layer_called_twice():
    inputs = keras.Input((8, 8, 4))
    conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")
    model = keras.Model(inputs, keras.layers.BatchNormalization()(conv(conv(inputs))))
    with pytest.raises(ValueError, match="every layer called once"):
        export.fold_batchnorm(model)
