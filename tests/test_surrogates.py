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
