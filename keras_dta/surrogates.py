"""Spike functions with surrogate gradients.

The forward pass of a spiking neuron is a Heaviside step, whose derivative is zero almost
everywhere. Training replaces that derivative with a surrogate. This module is the only place
in keras_dta with backend-specific code: a custom gradient is a backend feature
(`tf.custom_gradient` on TensorFlow, `jax.custom_vjp` on JAX).
"""

import contextlib
import functools
import math
import threading

import keras
from keras import ops

# Largest gain of one stage in int8 graphs and in half precision: 2^9. An int8 MUL in
# XNNPACK needs `input_scale * gain_scale / output_scale` below 256, so one huge gain would
# leave the spike outside the delegate in int8 models, and in float16 a gain of 2^27 would
# overflow (0 * inf is NaN). A chain of small stages avoids both.
_SMALL_STAGE_BITS = 9
# Float32 takes one stage (a float32 gain up to 2^100 is finite): two ops a spike.
_FLOAT32_STAGE_BITS = 100
_int8_graph = threading.local()


@contextlib.contextmanager
def int8_spike_stages():
    """Within this block, float32 spikes are built as for int8 graphs: stages of 2^9 at most.

    The values are the same; the export traces full-integer models in this block, so that
    every MUL of the spike stays within XNNPACK's int8 scale limits.
    """
    previous = getattr(_int8_graph, "value", False)
    _int8_graph.value = True
    try:
        yield
    finally:
        _int8_graph.value = previous


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


def exact_gains(v_threshold, dtype="float32"):
    """Gains for which a chain of RELU6 stages is exactly the strict step, for every float.

    XNNPACK, the CPU delegate of TFLite, has no kernel for `GREATER` or its bool `CAST`, so a
    spike written `cast(u - V_th > 0)` splits an exported network at every LIF step. Written
    as `relu6(... relu6(relu6(v * g_1) * g_2) ... * g_n) * (1/6)` with `v = u - V_th` it is
    made of `MUL` ops with a fused RELU6, which XNNPACK runs in float and in int8, and it is
    exact: let `|V_th|` lie in `[2^e, 2^(e+1))`. Float32 numbers there are `2^(e-23)` apart
    (`2^(e-24)` just above a negative power of two), so every float32 `u > V_th` gives
    `fl(u - V_th) >= 2^(e-24)`; the gains multiply to `2^(27-e)`, which lifts that to at least
    6, where RELU6 saturates, and `6 * fl(1/6)` rounds to exactly 1. `u <= V_th` gives 0.
    Intermediate values stay in [0, 6], so float16 and bfloat16 (coarser, hence larger
    differences) are exact too. +inf fires, -inf does not, NaN stays NaN (where `greater`
    gives 0). In an int8 model every stage's output has the fixed range [0, 6], and the
    spike's [0, 1]: 0 and 1 are represented exactly (scale 1/255, zero point -128).

    Args:
        v_threshold: float, the firing threshold.
        dtype: the dtype the spike is computed in: float32 takes one stage (two ops), other
            dtypes, and float32 inside `int8_spike_stages`, stages of at most 2^9.

    Returns:
        A tuple of power-of-two gains, or None where no chain is exact (`V_th = 0`, or a
        non-finite threshold): use `greater` there.
    """
    if not math.isfinite(v_threshold) or v_threshold == 0:
        return None
    exponent = math.frexp(abs(v_threshold))[1] - 1  # |V_th| in [2^e, 2^(e+1))
    bits = max(27 - exponent, 0)
    float32 = keras.backend.standardize_dtype(dtype) == "float32"
    stage = _FLOAT32_STAGE_BITS if float32 and not getattr(_int8_graph, "value", False) else _SMALL_STAGE_BITS
    full, rest = divmod(bits, stage)
    return tuple(2.0**b for b in [stage] * full + ([rest] if rest or not full else []))


def heaviside(v, gains=None):
    """Strict Heaviside step: 1 where `v > 0`, else 0, in `v`'s dtype.

    Args:
        v: tensor, `u - V_th`.
        gains: optional `exact_gains(V_th)`: the step is then computed as a chain of RELU6
            stages (the same values; see `exact_gains`), which TFLite's XNNPACK delegate
            runs; without it, with `greater`.
    """
    if gains is None:
        return ops.cast(ops.greater(v, 0), v.dtype)
    for gain in gains:
        v = ops.relu6(v * gain)
    return v * (1.0 / 6.0)


@functools.lru_cache(maxsize=None)
def _jax_spike(alpha, gains):
    import jax  # noqa: PLC0415 - only on the JAX backend

    @jax.custom_vjp
    def spike(v):
        return heaviside(v, gains)

    def forward(v):
        return heaviside(v, gains), v

    def backward(v, upstream):
        return (upstream * triangle_surrogate(v, alpha).astype(upstream.dtype),)

    spike.defvjp(forward, backward)
    return spike


def _custom_gradient_spike(v, alpha, gains):
    @ops.custom_gradient
    def spike(v):
        def grad(upstream):
            return upstream * ops.cast(triangle_surrogate(v, alpha), upstream.dtype)

        return heaviside(v, gains), grad

    return spike(v)


def spike(v, alpha=1.0, gains=None):
    """Heaviside spike function with the triangular surrogate gradient (eq. 4-5).

    Forward: `s = 1 if v > 0 else 0` (strict). Backward:
    `ds/dv = alpha * max(0, 1 - alpha * |v|)`.

    Args:
        v: tensor, `u - V_th`.
        alpha: positive float, the surrogate's inverse half-width (the paper's `alpha`).
        gains: optional `exact_gains(V_th)`: the forward step is then written with ops
            TFLite's XNNPACK delegate runs (the same values; see `heaviside`).

    Returns:
        A tensor of zeros and ones like `v`.
    """
    if not alpha > 0:
        raise ValueError(f"`alpha` must be positive. Received: alpha={alpha}")
    gains = None if gains is None else tuple(float(g) for g in gains)
    if keras.backend.backend() == "jax":
        return _jax_spike(float(alpha), gains)(v)
    return _custom_gradient_spike(v, float(alpha), gains)
