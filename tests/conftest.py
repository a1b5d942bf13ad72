"""Shared test helpers: the reference fixtures and layout conversion."""

import os
import pathlib

import numpy as np
import pytest

FIXTURES = pathlib.Path(
    os.environ.get(
        "KERAS_DTA_FIXTURES", pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
    )
)


def load_fixture(name):
    """Loads `../shared/fixtures/<name>`, skipping the test when the fixtures are absent."""
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"reference fixture {path} is absent (it lives in ../shared/fixtures, outside the repo)")
    return np.load(path)


def channels_last(array):
    """(B, T, C, H, W) -> (B, T, H, W, C)."""
    return np.transpose(array, (0, 1, 3, 4, 2))


def params(fixture, prefix="param/"):
    return {k[len(prefix):]: fixture[k] for k in fixture.files if k.startswith(prefix)}


def assert_grad_close(actual, expected, rtol=1e-4):
    """Gradients within `rtol` relative to the largest reference magnitude."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = max(float(np.abs(expected).max()), 1e-12)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def vjp(layer, inputs, upstream, training=False):
    """Backend-neutral `sum(layer(inputs) * upstream)` and its gradients.

    Args:
        layer: a built Keras layer or model.
        inputs: a numpy array, or a list of them for a multi-input layer.
        upstream: numpy array like the output.
        training: passed to the layer.

    Returns:
        `(outputs, input_grads, trainable_grads)` as numpy arrays; `input_grads` is a list
        matching `inputs` (a list of one for a single input), `trainable_grads` matches
        `layer.trainable_variables`.
    """
    import keras

    multi = isinstance(inputs, (list, tuple))
    xs = list(inputs) if multi else [inputs]
    if keras.backend.backend() == "jax":
        import jax
        import jax.numpy as jnp

        if not layer.built:
            layer(xs if multi else xs[0])
        non_trainable = [v.value for v in layer.non_trainable_variables]

        def loss(trainable, xs):
            kwargs = {"training": training} if layer._call_has_training_arg else {}
            out, _ = layer.stateless_call(trainable, non_trainable, xs if multi else xs[0], **kwargs)
            return jnp.sum(out * upstream), out

        (_, out), (g_vars, g_xs) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
            [v.value for v in layer.trainable_variables], [jnp.asarray(x) for x in xs]
        )
    else:
        import tensorflow as tf

        tensors = [tf.constant(x) for x in xs]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            out = layer(tensors if multi else tensors[0], training=training)
            loss = tf.reduce_sum(out * upstream)
        g_xs, g_vars = tape.gradient(loss, (tensors, layer.trainable_variables))
    return np.asarray(out), [np.asarray(g) for g in g_xs], [np.asarray(g) for g in g_vars]


def elementwise_grad(fn, x):
    """d sum(fn(x)) / dx for a backend-neutral elementwise `fn`, as numpy."""
    import keras

    if keras.backend.backend() == "jax":
        import jax
        import jax.numpy as jnp

        return np.asarray(jax.grad(lambda v: jnp.sum(fn(v)))(jnp.asarray(x)))
    import tensorflow as tf

    v = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(v)
        y = tf.reduce_sum(fn(v))
    return tape.gradient(y, v).numpy()
