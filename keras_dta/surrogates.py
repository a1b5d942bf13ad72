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

# The gain exponents beyond e (|V_th| in [2^e, 2^(e+1))): the gains multiply to 2^(24 - e),
# enough for float32's 24-bit significand (and bfloat16's 8); float16 (11 bits, largest
# number 65504) takes 2^(12 - e), whose constants stay finite.
_TOTAL_BITS = {"float16": 12}
_DEFAULT_TOTAL_BITS = 24
# The small-stage chain (int8 and half precision): clip(v g1, -1, 1), relu(. g2),
# clip(. g3, -1, 1) with g2 = g3 = 2^7. In int8, XNNPACK's MUL needs
# `input_scale * gain_scale / output_scale` below 256: with outputs in [-1, 1], [0, 2^7] and
# [-1, 1] the last two stages give about 2^7 * 2^7 / 2^8 = 64, the first about
# 2^(10 - e) * input_scale. In float16 nothing exceeds 2^7.
_LATER_STAGE_BITS = 7
_small_stages = threading.local()


@contextlib.contextmanager
def small_spike_stages():
    """Within this block, float32 spikes are built of small gain stages (see `exact_gains`).

    The values are the same. The export traces full-integer models in this block, so that
    every MUL of the spike stays within XNNPACK's int8 scale limits, and float16 models, which
    XNNPACK may run in half precision (where one gain of 2^24 would overflow).
    """
    previous = getattr(_small_stages, "value", False)
    _small_stages.value = True
    try:
        yield
    finally:
        _small_stages.value = previous


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
    """Power-of-two gains for which `heaviside(u - V_th, gains)` is the strict step exactly.

    XNNPACK, the CPU delegate of TFLite, has no kernel for `GREATER` or its bool `CAST`, so a
    spike written `cast(u - V_th > 0)` splits an exported network at every LIF step. Written
    with a gain it is made of `MUL` ops with fused activations and a `MINIMUM`, which XNNPACK
    runs, and it is exact: let `|V_th|` lie in `[2^e, 2^(e+1))`. Floats there are at least
    `2^(e-24)` apart in float32 (coarser in float16 and bfloat16), so every `u > V_th` gives
    `fl(u - V_th) >= 2^(e-24)` (`2^(e-11)` in float16), and gains multiplying to `2^(24-e)`
    (`2^(12-e)` in float16) lift that to 1 or more,
    where the clip gives exactly 1; `u <= V_th` gives 0. Every gain is a power of two, so no
    multiplication rounds. +inf fires, -inf does not, NaN stays NaN (where `greater` gives 0).

    - float32: one gain, `min(relu(v * 2^(24-e)), 1)`: two ops.
    - float16, bfloat16, and float32 inside `small_spike_stages` (the int8 and float16
      exports): three, `clip(v g1, -1, 1)`, `relu(. g2)`, `clip(. g3, -1, 1)` with
      `g2 = g3 = 2^7`: nothing overflows half precision, every int8 `MUL` stays within
      XNNPACK's scale limits, and the int8 spike tensor holds exactly 0 and 1 (its range is
      [0, 1]: scale 1/255, zero point -128).

    Args:
        v_threshold: float, the firing threshold.
        dtype: the dtype the spike is computed in.

    Returns:
        A tuple of gains (one, or three), or None where no gain is exact (`V_th = 0`, or a
        non-finite threshold): use `greater` there.
    """
    if not math.isfinite(v_threshold) or v_threshold == 0:
        return None
    exponent = math.frexp(abs(v_threshold))[1] - 1  # |V_th| in [2^e, 2^(e+1))
    dtype = keras.backend.standardize_dtype(dtype)
    bits = _TOTAL_BITS.get(dtype, _DEFAULT_TOTAL_BITS) - exponent
    float32 = dtype == "float32"
    if float32 and not getattr(_small_stages, "value", False):
        return (2.0**bits,)
    return (2.0 ** max(bits - 2 * _LATER_STAGE_BITS, 0),) + (2.0**_LATER_STAGE_BITS,) * 2


def heaviside(v, gains=None):
    """Strict Heaviside step: 1 where `v > 0`, else 0, in `v`'s dtype.

    Args:
        v: tensor, `u - V_th`.
        gains: optional `exact_gains(V_th)`: the step is then computed with multiplications
            and clips (the same values; see `exact_gains`), which TFLite's XNNPACK delegate
            runs; without it, with `greater`.
    """
    if gains is None:
        return ops.cast(ops.greater(v, 0), v.dtype)
    if len(gains) == 1:
        return ops.minimum(ops.relu(v * gains[0]), 1.0)
    first, second, third = gains
    v = ops.clip(v * first, -1.0, 1.0)
    v = ops.relu(v * second)
    return ops.clip(v * third, -1.0, 1.0)


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
