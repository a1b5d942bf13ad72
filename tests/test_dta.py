import keras
import numpy as np
import pytest

from helpers import assert_grad_close, channels_last, load_fixture, params, run_layer_test, vjp
from keras_dta import convert
from keras_dta.layers import DTA, LIF, TNA, TXA


def count(layer):
    return sum(int(np.prod(v.shape)) for v in layer.trainable_variables)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def numpy_conv1d_torch_same(x, w):
    """PyTorch Conv1d, 'same' padding, no bias. x (B, C_in, L), w (C_out, C_in, K)."""
    k = w.shape[-1]
    left = (k - 1) // 2
    xp = np.pad(x, ((0, 0), (0, 0), (left, k - 1 - left)))
    out = np.zeros((x.shape[0], w.shape[0], x.shape[2]), x.dtype)
    for i in range(x.shape[2]):
        out[:, :, i] = np.einsum("bck,ock->bo", xp[:, :, i : i + k], w)
    return out


def test_dta_matches_reference_fixture():
    f = load_fixture("dta_T4_C64.npz")
    x, spikes = channels_last(f["x_seq"]), channels_last(f["spikes"])
    layer = DTA()
    layer([x, spikes])
    convert.load_reference_dta_weights(layer, params(f))
    y, (x_grad, s_grad), var_grads = vjp(layer, [x, spikes], channels_last(f["upstream_grad"]))
    np.testing.assert_allclose(y, channels_last(f["y"]), atol=1e-5)
    assert_grad_close(x_grad, channels_last(f["x_seq_grad"]))
    assert_grad_close(s_grad, channels_last(f["spikes_grad"]))
    grads = {id(v): g for v, g in zip(layer.trainable_variables, var_grads)}
    reference = params(f, "param_grad/")
    targets = list(convert._dta_targets(layer, ""))
    assert len(targets) == len(reference) == len(layer.trainable_variables)
    for variable, (key,), layout in targets:
        assert_grad_close(grads[id(variable)], layout(reference[key]))


def test_txa_matches_numpy_for_odd_sizes():
    rng = np.random.default_rng(0)
    B, T, H, W, C = 2, 3, 4, 5, 5
    x = rng.normal(size=(B, T, H, W, C)).astype("float32")
    layer = TXA()
    layer.build(x.shape)
    w_t = rng.normal(size=(T, T, 3)).astype("float32")  # torch layout (out, in, k)
    w_c = rng.normal(size=(C, C, 6)).astype("float32")
    layer.conv_t.assign(w_t.transpose(2, 1, 0))
    layer.conv_c.assign(w_c.transpose(2, 1, 0))
    layer.scale_t.assign(0.7)
    layer.scale_c.assign(1.3)
    x_m = x.mean(axis=(2, 3))  # (B, T, C)
    a_t = sigmoid(numpy_conv1d_torch_same(x_m, w_t))  # T as channels, C as length
    a_c = sigmoid(numpy_conv1d_torch_same(x_m.transpose(0, 2, 1), w_c)).transpose(0, 2, 1)
    expected = (x + 0.7 * a_t[:, :, None, None, :]) * (x + 1.3 * a_c[:, :, None, None, :])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("T,C", [(2, 8), (3, 5), (4, 64), (6, 16)])
def test_branch_shapes_and_parameter_counts(T, C):
    x = np.random.default_rng(T).normal(size=(2, T, 6, 6, C)).astype("float32")
    D = T * C
    hidden = D // max(D // 16, 4)
    txa, tna = TXA(), TNA()
    assert keras.ops.convert_to_numpy(txa(x)).shape == x.shape
    assert keras.ops.convert_to_numpy(tna(x)).shape == x.shape
    assert count(txa) == 3 * T * T + 6 * C * C + 2
    assert count(tna) == 3 * D * D + 31 * D + 2 * hidden * D
    if D >= 64:
        assert count(tna) == 3 * D * D + 63 * D


@pytest.mark.parametrize("use_txa,use_tna", [(True, True), (True, False), (False, True)])
def test_dta_branches(use_txa, use_tna):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 2, 4, 4, 8)).astype("float32")
    spikes = keras.ops.convert_to_numpy(LIF()(x))
    layer = DTA(use_txa=use_txa, use_tna=use_tna)
    y = keras.ops.convert_to_numpy(layer([x, spikes]))
    parts = [keras.ops.convert_to_numpy(b(x)) for b in (layer.txa, layer.tna) if b is not None]
    expected = sigmoid(np.prod(parts, axis=0)) * spikes
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    assert np.all(y[spikes == 0] == 0)


def test_dta_errors():
    x = np.zeros((2, 2, 4, 4, 8), "float32")
    with pytest.raises(ValueError, match="use_txa=False, use_tna=False"):
        DTA(use_txa=False, use_tna=False)
    with pytest.raises(ValueError, match="input_shape"):
        TXA()(np.zeros((2, 4, 4, 8), "float32"))
    with pytest.raises(ValueError, match="same shape"):
        DTA()([x, np.zeros((2, 3, 4, 4, 8), "float32")])
    with pytest.raises(ValueError, match="same shape"):
        DTA()([x, np.zeros((1, 2, 4, 4, 8), "float32")])  # would broadcast over the batch
    layer = DTA()
    layer([x, x])
    with pytest.raises(ValueError, match=r"spikes.shape=\(3, 2, 4, 4, 8\)"):
        layer([x, np.zeros((3, 2, 4, 4, 8), "float32")])
    with pytest.raises(ValueError, match="local_kernel_size=4"):
        TNA(local_kernel_size=4)


@pytest.mark.parametrize(
    "layer", [TXA(kernel_size_t=5, kernel_size_c=4), TNA(local_kernel_size=3), DTA(use_tna=False)]
)
def test_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config


@pytest.mark.parametrize(
    "layer_cls, init_kwargs, num_weights",
    [
        (TXA, {"kernel_size_t": 5, "kernel_size_c": 4}, 4),
        (TNA, {"local_kernel_size": 3}, 12),
    ],
)
def test_branch_layer_harness(layer_cls, init_kwargs, num_weights, tmp_path):
    run_layer_test(
        layer_cls, init_kwargs, input_shape=(2, 2, 4, 4, 8), expected_output_shape=(2, 2, 4, 4, 8),
        expected_num_trainable_weights=num_weights, tmp_dir=tmp_path,
    )


@pytest.mark.parametrize(
    "init_kwargs, num_weights",
    [({}, 16), ({"use_txa": True, "use_tna": False}, 4), ({"use_txa": False, "use_tna": True}, 12)],
)
def test_dta_layer_harness(init_kwargs, num_weights, tmp_path):
    shape = (2, 2, 4, 4, 8)
    run_layer_test(
        DTA, init_kwargs, input_shape=[shape, shape], expected_output_shape=shape,
        expected_num_trainable_weights=num_weights, tmp_dir=tmp_path,
    )
