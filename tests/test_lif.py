import keras
import numpy as np
import pytest

from helpers import assert_grad_close, channels_last, load_fixture, run_layer_test, vjp
from keras_dta.layers import LIF


def numpy_lif(x, tau=0.5, v_threshold=1.0):
    """Independent reference of eq. 1-3 over axis 1."""
    u = np.zeros_like(x[:, 0])
    spikes = np.zeros_like(x)
    for t in range(x.shape[1]):
        u = tau * u + x[:, t]
        s = (u - v_threshold > 0).astype(x.dtype)
        u = (1 - s) * u
        spikes[:, t] = s
    return spikes


def test_lif_matches_reference_fixture():
    f = load_fixture("lif.npz")
    layer = LIF(tau=float(f["tau"]), v_threshold=float(f["threshold"]), alpha=1.0 / float(f["gamma"]))
    x = channels_last(f["x"])
    spikes, (x_grad,), _ = vjp(layer, x, channels_last(f["upstream_grad"]))
    np.testing.assert_allclose(spikes, channels_last(f["spikes"]), atol=1e-5)
    assert_grad_close(x_grad, channels_last(f["x_grad"]))


@pytest.mark.parametrize("shape", [(2, 5, 7), (2, 4, 3, 6), (2, 3, 4, 4, 5)])
@pytest.mark.parametrize("tau,v_threshold", [(0.5, 1.0), (0.25, 0.5), (1.0, 2.0)])
def test_lif_matches_numpy(shape, tau, v_threshold):
    x = np.random.default_rng(0).normal(0.8, 1.0, shape).astype("float32")
    out = keras.ops.convert_to_numpy(LIF(tau=tau, v_threshold=v_threshold)(x))
    assert out.shape == shape
    np.testing.assert_array_equal(out, numpy_lif(x, tau, v_threshold))


def test_lif_unknown_time_length_uses_scan():
    x = np.random.default_rng(1).normal(0.8, 1.0, (2, 7, 3)).astype("float32")
    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, LIF()(inputs))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x)), numpy_lif(x))


def test_lif_gradient_flows_through_reset():
    # One neuron that fires at t = 0: with the reset term attached, the gradient of the
    # spike at t = 1 reaches x_0 through u_0 * (1 - s_0).
    x = np.array([[[1.2], [0.5]]], "float32")
    upstream = np.array([[[0.0], [1.0]]], "float32")
    _, (grad,), _ = vjp(LIF(), x, upstream)
    # u0 = 1.2 fires; u1 = 0.5 * (1 - s0) * u0 + x1 = 0.5, ds1/du1 = max(0, 1 - |0.5 - 1|) = 0.5.
    # du1/dx0 = 0.5 * ((1 - s0) - u0 * ds0/du0) = 0.5 * (0 - 1.2 * 0.8) = -0.48.
    np.testing.assert_allclose(grad[0, :, 0], [0.5 * -0.48, 0.5], atol=1e-6)


def test_stateful_chunks_equal_whole_sequence_and_reset():
    x = np.random.default_rng(2).normal(0.8, 1.0, (2, 6, 4, 3)).astype("float32")
    whole = keras.ops.convert_to_numpy(LIF()(x))
    inputs = keras.Input((None, 4, 3), batch_size=2)
    layer = LIF(stateful=True)
    model = keras.Model(inputs, layer(inputs))
    chunks = [model.predict(x[:, t : t + 2], verbose=0) for t in (0, 2, 4)]
    np.testing.assert_array_equal(np.concatenate(chunks, axis=1), whole)
    assert np.any(layer.membrane.numpy() != 0)
    layer.reset_state()
    np.testing.assert_array_equal(layer.membrane.numpy(), 0)
    np.testing.assert_array_equal(model.predict(x[:, :2], verbose=0), whole[:, :2])


def test_stateful_needs_fixed_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        LIF(stateful=True)(keras.Input((3, 4)))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"tau": 0.0}, "tau=0.0"),
        ({"tau": 1.5}, "tau=1.5"),
        ({"tau": "0.5"}, "tau='0.5'"),
        ({"tau": float("nan")}, "tau=nan"),
        ({"alpha": 0.0}, "alpha=0.0"),
        ({"alpha": -2.0}, "alpha=-2.0"),
        ({"alpha": float("nan")}, "alpha=nan"),
        ({"alpha": float("inf")}, "alpha=inf"),
        ({"v_threshold": float("nan")}, "v_threshold=nan"),
        ({"v_threshold": float("inf")}, "v_threshold=inf"),
        ({"v_threshold": True}, "v_threshold=True"),
    ],
)
def test_lif_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LIF(**kwargs)


def test_lif_rejects_rank2_input():
    with pytest.raises(ValueError, match="rank"):
        LIF()(np.zeros((2, 3), "float32"))


def test_lif_config_round_trip():
    layer = LIF(tau=0.25, v_threshold=0.5, alpha=2.0, stateful=True, name="n")
    clone = LIF.from_config(layer.get_config())
    assert (clone.tau, clone.v_threshold, clone.alpha, clone.stateful, clone.name) == (0.25, 0.5, 2.0, True, "n")


@pytest.mark.parametrize("v_threshold", [1.0, 0.3, 0.0])
def test_training_and_inference_unrolling_give_the_same_spikes(v_threshold):
    # Inference slices each step and concatenates (what XNNPACK runs); training unstacks and
    # stacks. Inputs on a 1/8 grid put membranes exactly on the threshold too.
    x = (np.random.default_rng(3).integers(-8, 24, (2, 7, 3, 4)) / 8.0).astype("float32")
    layer = LIF(v_threshold=v_threshold)
    train = keras.ops.convert_to_numpy(layer(x, training=True))
    infer = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_array_equal(train, infer)
    np.testing.assert_array_equal(infer, numpy_lif(x, v_threshold=v_threshold))


def numpy_lif_input_grad(x, upstream, tau=0.5, v_threshold=1.0, alpha=1.0):
    """d sum(spikes * upstream) / dx by backpropagation through time, written out in NumPy.

    The surrogate `alpha * max(0, 1 - alpha |u - V_th|)` (eq. 5) stands for ds/du, and the
    gradient also flows through the reset `u = (1 - s) * u`.
    """
    T = x.shape[1]
    u, pre, spikes = np.zeros_like(x[:, 0]), [], []
    for t in range(T):
        u = tau * u + x[:, t]
        s = (u - v_threshold > 0).astype(x.dtype)
        pre.append(u)
        spikes.append(s)
        u = (1 - s) * u
    grad = np.zeros_like(x)
    du = np.zeros_like(x[:, 0])  # dL/du after the reset of step t
    for t in reversed(range(T)):
        surrogate = alpha * np.maximum(0.0, 1.0 - alpha * np.abs(pre[t] - v_threshold))
        d_pre = upstream[:, t] * surrogate + du * ((1 - spikes[t]) - pre[t] * surrogate)
        grad[:, t] = d_pre
        du = tau * d_pre
    return grad


@pytest.mark.parametrize("alpha", [0.5, 2.0, 3.0])
@pytest.mark.parametrize("training", [True, False])
def test_lif_gradient_uses_its_alpha(alpha, training):
    rng = np.random.default_rng(4)
    x = rng.normal(0.8, 0.6, (2, 5, 3, 4)).astype("float32")
    upstream = rng.normal(size=x.shape).astype("float32")
    _, (grad,), _ = vjp(LIF(tau=0.5, v_threshold=1.0, alpha=alpha), x, upstream, training=training)
    expected = numpy_lif_input_grad(x, upstream, alpha=alpha)
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "init_kwargs", [{}, {"tau": 0.25, "v_threshold": 0.5, "alpha": 2.0, "name": "lif"}]
)
def test_lif_layer_harness(init_kwargs, tmp_path):
    run_layer_test(
        LIF, init_kwargs, input_shape=(2, 3, 4, 4, 5), expected_output_shape=(2, 3, 4, 4, 5),
        expected_num_trainable_weights=0, tmp_dir=tmp_path,
    )


def test_stateful_and_stateless_models_exchange_weights(tmp_path):
    # The membrane is state, not a weight: weight files of either kind load into the other,
    # and a loaded stateful model starts at rest.
    def build(stateful):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((3, 4), batch_size=2)
        x = keras.layers.Dense(4, name="dense")(inputs)
        return keras.Model(inputs, LIF(stateful=stateful, name="lif")(x))

    x = np.random.default_rng(5).normal(0.8, 1.0, (2, 3, 4)).astype("float32")
    stateless, stateful = build(False), build(True)
    stateless.get_layer("dense").set_weights([np.eye(4, dtype="float32") * 2, np.zeros(4, "float32")])
    stateless.save_weights(tmp_path / "stateless.weights.h5")
    stateful.load_weights(tmp_path / "stateless.weights.h5")
    np.testing.assert_array_equal(stateful.predict(x, verbose=0), stateless.predict(x, verbose=0))
    assert np.any(stateful.get_layer("lif").membrane.numpy() != 0)
    stateful.save_weights(tmp_path / "stateful.weights.h5")
    other = build(False)
    other.load_weights(tmp_path / "stateful.weights.h5")
    np.testing.assert_array_equal(other.get_layer("dense").get_weights()[0], np.eye(4) * 2)
    stateful.save(tmp_path / "stateful.keras")
    loaded = keras.saving.load_model(tmp_path / "stateful.keras")
    np.testing.assert_array_equal(loaded.get_layer("lif").membrane.numpy(), 0)
