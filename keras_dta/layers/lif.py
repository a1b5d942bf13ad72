"""Leaky integrate-and-fire neurons (paper eq. 1-5)."""

import math
import numbers

import keras
from keras import ops

from keras_dta import surrogates
from keras_dta.layers.time import concat_time


def _check_real(name, value, ok, expected):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or not ok(value):
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="keras_dta")
class LIF(keras.layers.Layer):
    """Multi-step leaky integrate-and-fire neuron with hard reset.

    For each time step t (eq. 1-3):

        u = tau * u + x_t
        s_t = 1 if u - v_threshold > 0 else 0
        u = (1 - s_t) * u

    The spike's gradient is the triangular surrogate of eq. 5,
    `alpha * max(0, 1 - alpha * |u - v_threshold|)`. As in the authors' implementation the
    gradient also flows through the reset term `(1 - s_t) * u`; it is not detached.

    Spikes are written `min(relu(G v), 1)` with a power-of-two gain `G` (in int8 exports and
    half precision a short chain of clipped gain stages; `surrogates.exact_gains`): exactly
    the strict step, but made of ops TFLite's XNNPACK delegate runs in float and int8, so an
    exported model is not cut at every step. For the same reason inference (`training`
    false) reads each step as a `(batch, 1, ...)` slice and joins the spikes with
    concatenations, where training unstacks and stacks (whose gradients are cheaper). Non-finite input: a NaN membrane gives NaN spikes (it is not
    turned into silence), +inf fires and -inf does not.

    By default the membrane potential starts at zero on every call (the authors' neuron keeps
    no state). With `stateful=True` it is kept across calls in a non-trainable variable, like
    a stateful Keras RNN: feeding a sequence in chunks gives the same spikes as one call on the
    whole sequence. Call `reset_state()` between independent sequences.

    Args:
        tau: float in `(0, 1]`, the multiplicative membrane decay.
        v_threshold: float, the firing threshold `V_th`.
        alpha: positive float, the surrogate's inverse half-width.
        stateful: bool, keep the membrane potential between calls. Needs a fixed batch size.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: tensor `(batch, time, ...)`, the input current.

    Returns:
        Spikes, zeros and ones, with the shape of `inputs`.

    Example:

    >>> lif = keras_dta.layers.LIF()
    >>> spikes = lif(keras.random.normal((2, 4, 8, 8, 16)))

    Reference:
        Kim, Kim and Yang, "DTA: Dual Temporal-channel-wise Attention for Spiking Neural
        Networks", WACV 2025, section 3.1.
    """

    def __init__(self, tau=0.5, v_threshold=1.0, alpha=1.0, stateful=False, **kwargs):
        super().__init__(**kwargs)
        self.tau = _check_real("tau", tau, lambda v: 0.0 < v <= 1.0, "a number in (0, 1]")
        self.v_threshold = _check_real("v_threshold", v_threshold, lambda v: True, "a finite number")
        self.alpha = _check_real("alpha", alpha, lambda v: v > 0, "a finite positive number")
        self.stateful = bool(stateful)
        self.membrane = None

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(
                f"LIF expects inputs of rank >= 3 (batch, time, ...). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if self.stateful:
            if input_shape[0] is None or any(d is None for d in input_shape[2:]):
                raise ValueError(
                    "A stateful LIF needs a fixed batch size and feature shape: pass "
                    "`batch_size` to `keras.Input` (or `batch_shape`). "
                    f"Received: input_shape={tuple(input_shape)}"
                )
            self.membrane = self.add_weight(
                shape=(input_shape[0], *input_shape[2:]),
                initializer="zeros",
                trainable=False,
                name="membrane",
            )

    def reset_state(self):
        """Sets the membrane potential of a stateful layer back to zero."""
        if self.membrane is not None:
            self.membrane.assign(ops.zeros(self.membrane.shape, self.membrane.dtype))

    # The membrane of a stateful layer is state, not a weight (as a stateful Keras RNN's
    # states): saved models and weight files leave it out and loading leaves it alone, so
    # stateful and stateless models exchange weights, and a loaded model starts at rest.
    def save_own_variables(self, store):
        pass

    def load_own_variables(self, store):
        pass

    def _step(self, u, x):
        u = self.tau * u + x  # eq. 1
        # Read when the graph is traced: they depend on the dtype and on an int8 export.
        gains = surrogates.exact_gains(self.v_threshold, x.dtype)
        s = surrogates.spike(u - self.v_threshold, self.alpha, gains)  # eq. 2, 4
        return (1.0 - s) * u, s  # eq. 3, hard reset

    def unrolled(self, u, currents):
        """Runs the neuron over a list of per-step input currents (inference).

        Args:
            u: tensor, the membrane potential before the first step, shaped like a current.
            currents: list of tensors, one per time step, all of one shape.

        Returns:
            `(u, spikes)`: the membrane potential after the last step and the list of spikes.
        """
        spikes = []
        for x in currents:
            u, s = self._step(u, x)
            spikes.append(s)
        return u, spikes

    def call(self, inputs, training=None):
        if self.stateful:
            u = ops.cast(self.membrane, inputs.dtype)
        else:
            u = ops.zeros_like(inputs[:, 0])
        if inputs.shape[1] is None:
            # Unknown length: a scan over time (time-major).
            u, spikes = ops.scan(self._step, u, ops.moveaxis(inputs, 1, 0))
            spikes = ops.moveaxis(spikes, 0, 1)
        elif training:
            # Known length: unrolled, so exported graphs hold plain ops (no while loop).
            # One unstack, not T slices `inputs[:, t]`: on TensorFlow each slice's gradient is
            # a full-size (batch, time, ...) scatter, T of them per layer, which cost ~18% of
            # an MS-ResNet-18 training step on CPU; unstack's gradient is a single stack.
            steps = []
            for x_t in ops.unstack(inputs, axis=1):
                u, s = self._step(u, x_t)
                steps.append(s)
            spikes = ops.stack(steps, axis=1)
        else:
            # Inference, unrolled on (batch, 1, ...) steps: XNNPACK runs keep-dims slices and
            # concatenations, not the UNPACK and PACK of unstack and stack.
            u, steps = self.unrolled(ops.expand_dims(u, 1), [inputs[:, t : t + 1] for t in range(inputs.shape[1])])
            spikes = concat_time(steps)
            u = ops.squeeze(u, 1)
        if self.stateful:
            self.membrane.assign(ops.cast(u, self.membrane.dtype))
        return spikes

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "tau": self.tau,
            "v_threshold": self.v_threshold,
            "alpha": self.alpha,
            "stateful": self.stateful,
        }
