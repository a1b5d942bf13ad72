import keras
import numpy as np
import pytest

from keras_dta.layers import Subsample2D, TimeFold


@pytest.mark.parametrize("size", [(8, 8), (7, 9), (1, 4)])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_subsample_keeps_every_stride_th_pixel(size, stride):
    x = np.random.default_rng(0).normal(size=(2, *size, 3)).astype("float32")
    layer = Subsample2D(stride)
    out = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_array_equal(out, x[:, ::stride, ::stride, :])
    assert layer.compute_output_shape(x.shape) == out.shape


def test_subsample_in_a_model_over_time_and_round_trip(tmp_path):
    inputs = keras.Input((2, 6, 6, 4))
    model = keras.Model(inputs, TimeFold(Subsample2D(2), name="sub")(inputs))
    x = np.arange(2 * 2 * 6 * 6 * 4, dtype="float32").reshape(2, 2, 6, 6, 4)
    np.testing.assert_array_equal(model.predict(x, verbose=0), x[:, :, ::2, ::2, :])
    assert Subsample2D.from_config(Subsample2D(3, name="s").get_config()).stride == 3
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), x[:, :, ::2, ::2, :])


@pytest.mark.parametrize("stride", [0, -1, 1.5, True, "2"])
def test_subsample_rejects_bad_strides(stride):
    with pytest.raises(ValueError, match="stride"):
        Subsample2D(stride)
