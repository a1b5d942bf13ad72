import contextlib

import numpy as np
import pytest
from keras import ops

from helpers import elementwise_grad
from keras_dta import surrogates


def smooth_step(v, alpha):
    """The piecewise-quadratic step whose derivative is the triangle of eq. 5."""
    a = alpha * ops.clip(v, -1.0 / alpha, 1.0 / alpha)
    return ops.where(a < 0, 0.5 * (1.0 + a) ** 2, 1.0 - 0.5 * (1.0 - a) ** 2)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_surrogate_gradient_is_the_triangle(alpha):
    # A grid that includes the edges |v| = 1 / alpha and the threshold itself.
    v = np.unique(np.concatenate([np.linspace(-3, 3, 121), [-1 / alpha, 1 / alpha, 0.0]])).astype("float32")
    grad = elementwise_grad(lambda x: surrogates.spike(x, alpha), v)
    analytic = alpha * np.maximum(0.0, 1.0 - alpha * np.abs(v))
    np.testing.assert_allclose(grad, analytic, atol=1e-6)
    assert grad[np.isclose(v, 1 / alpha)] == 0 and grad[np.isclose(v, -1 / alpha)] == 0
    assert grad[v == 0] == pytest.approx(alpha)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_surrogate_matches_autodiff_of_smooth_step(alpha):
    v = np.linspace(-2.5, 2.5, 101).astype("float32")
    expected = elementwise_grad(lambda x: smooth_step(x, alpha), v)
    np.testing.assert_allclose(elementwise_grad(lambda x: surrogates.spike(x, alpha), v), expected, atol=1e-5)


def test_spike_forward_is_strict_heaviside():
    v = np.array([-1.0, -1e-7, 0.0, 1e-7, 2.0], "float32")
    np.testing.assert_array_equal(ops.convert_to_numpy(surrogates.spike(v)), [0, 0, 0, 1, 1])


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_spike_rejects_non_positive_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        surrogates.spike(np.zeros(3, "float32"), alpha)


def _around(value, count=6):
    """float32 values within `count` ulps of `value` on either side."""
    value = np.float32(value)
    up, down, values = value, value, [value]
    for _ in range(count):
        up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(-np.inf))
        values += [up, down]
    return values


@pytest.mark.parametrize("int8_stages", [False, True])
@pytest.mark.parametrize("v_threshold", [1.0, 0.5, 0.3, 2.0, 3.7, 1e6, 1e9, 1e-20, -1.0, -0.7])
def test_gain_step_equals_greater_exactly(v_threshold, int8_stages):
    stages = surrogates.small_spike_stages() if int8_stages else contextlib.nullcontext()
    with stages:
        gain = surrogates.exact_gains(v_threshold)
    assert gain and all(np.log2(g) == int(np.log2(g)) for g in gain)
    assert len(gain) == (3 if int8_stages else 1)
    if int8_stages and abs(v_threshold) == 1.0:
        assert gain == (2.0**10, 2.0**7, 2.0**7)  # within XNNPACK's int8 limits
    th = np.float32(v_threshold)
    u = np.array(
        _around(th) + _around(2 * th) + _around(th / 2) + _around(0.0)
        + [th * 1e3, -th * 1e3, 3e38, -3e38, np.inf, -np.inf, 1.0, -1.0], "float32"
    )
    v = ops.convert_to_tensor(u) - v_threshold  # as the LIF computes it, in float32
    expected = (ops.convert_to_numpy(v) > 0).astype("float32")
    actual = ops.convert_to_numpy(surrogates.heaviside(v, gain))
    np.testing.assert_array_equal(actual, expected)
    np.testing.assert_array_equal(ops.convert_to_numpy(surrogates.spike(v, 1.0, gain)), expected)
    assert expected.min() == 0 and expected.max() == 1


def test_gain_step_propagates_nan():
    v = np.array([np.nan, 1.0], "float32")
    assert np.isnan(ops.convert_to_numpy(surrogates.heaviside(v, surrogates.exact_gains(1.0)))[0])
    assert ops.convert_to_numpy(surrogates.heaviside(v))[0] == 0  # greater: NaN > 0 is false


@pytest.mark.parametrize("v_threshold", [0.0, float("nan"), float("inf")])
def test_no_exact_gain_falls_back_to_greater(v_threshold):
    assert surrogates.exact_gains(v_threshold) is None


def test_gain_step_keeps_the_surrogate_gradient():
    v = np.linspace(-2.5, 2.5, 101).astype("float32")
    gain = surrogates.exact_gains(1.0)
    np.testing.assert_allclose(
        elementwise_grad(lambda x: surrogates.spike(x, 2.0, gain), v),
        elementwise_grad(lambda x: surrogates.spike(x, 2.0), v),
        atol=0,
    )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_gain_step_is_exact_in_half_precision(dtype):
    th = np.float32(1.0)
    u = np.array(_around(th, 4) + [0.0, -3.0, 7.0, 6e4], "float32")
    v = ops.cast(ops.convert_to_tensor(u), dtype) - ops.cast(1.0, dtype)
    expected = ops.convert_to_numpy(ops.cast(ops.greater(v, 0), "float32"))
    actual = ops.convert_to_numpy(ops.cast(surrogates.heaviside(v, surrogates.exact_gains(1.0, dtype)), "float32"))
    np.testing.assert_array_equal(actual, expected)
    assert expected.max() == 1
