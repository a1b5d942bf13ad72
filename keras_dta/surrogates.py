"""Spike functions with surrogate gradients.

The forward pass of a spiking neuron is a Heaviside step, whose derivative is zero almost
everywhere. Training replaces that derivative with a surrogate. This module is the only place
in keras_dta with backend-specific code: a custom gradient is a backend feature
(`tf.custom_gradient` on TensorFlow, `jax.custom_vjp` on JAX).
"""

import functools

import keras
from keras import ops


def triangle_surrogate(v, alpha=1.0):
    """The triangular surrogate derivative of the Heaviside step (eq. 5).

    `ds/du = alpha * max(0, 1 - alpha * |u - V_th|)`. The authors' code writes the same
    function with `gamma = 1 / alpha`: `(1 / gamma**2) * max(0, gamma - |u - V_th|)`.

    Args:
        v: tensor, the membrane potential minus the threshold, `u - V_th`.
        alpha: positive float, the inverse half-width of the triangle.

    Returns:
        A tensor like `v`.
    """
    return alpha * ops.relu(1.0 - alpha * ops.abs(v))


def heaviside(v):
    """Strict Heaviside step: 1 where `v > 0`, else 0, in `v`'s dtype."""
    return ops.cast(ops.greater(v, 0), v.dtype)


@functools.lru_cache(maxsize=None)
def _jax_spike(alpha):
    import jax  # noqa: PLC0415 - only on the JAX backend

    @jax.custom_vjp
    def spike(v):
        return heaviside(v)

    def forward(v):
        return heaviside(v), v

    def backward(v, upstream):
        return (upstream * triangle_surrogate(v, alpha).astype(upstream.dtype),)

    spike.defvjp(forward, backward)
    return spike


def _custom_gradient_spike(v, alpha):
    @ops.custom_gradient
    def spike(v):
        def grad(upstream):
            return upstream * ops.cast(triangle_surrogate(v, alpha), upstream.dtype)

        return heaviside(v), grad

    return spike(v)


def spike(v, alpha=1.0):
    """Heaviside spike function with the triangular surrogate gradient (eq. 4-5).

    Forward: `s = 1 if v > 0 else 0` (strict). Backward:
    `ds/dv = alpha * max(0, 1 - alpha * |v|)`.

    Args:
        v: tensor, `u - V_th`.
        alpha: positive float, the surrogate's inverse half-width (the paper's `alpha`).

    Returns:
        A tensor of zeros and ones like `v`.
    """
    if alpha <= 0:
        raise ValueError(f"`alpha` must be positive. Received: alpha={alpha}")
    if keras.backend.backend() == "jax":
        return _jax_spike(float(alpha))(v)
    return _custom_gradient_spike(v, float(alpha))
