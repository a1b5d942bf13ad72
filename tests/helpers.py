"""Test helpers: the reference fixtures, layout conversion, gradients, and `run_layer_test`,
the one harness every layer test goes through (as keras-hub's `TestCase.run_layer_test`)."""

import copy
import os
import pathlib
import tempfile

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


def _random_inputs(input_shape, seed=0):
    rng = np.random.default_rng(seed)
    if isinstance(input_shape, list):
        return [rng.normal(size=s).astype("float32") for s in input_shape]
    return rng.normal(size=input_shape).astype("float32")


def _as_list(x):
    return list(x) if isinstance(x, list) else [x]


def _symbolic_model(layer, input_shape):
    import keras

    inputs = [keras.Input(s[1:], batch_size=s[0]) for s in _as_list(input_shape)]
    outputs = layer(inputs if isinstance(input_shape, list) else inputs[0])
    return keras.Model(inputs if isinstance(input_shape, list) else inputs[0], outputs)


def _check_config_holds_arguments(layer, init_kwargs):
    """`get_config()` holds every constructor argument, as given (layers serialized)."""
    import keras

    config = layer.get_config()
    for name, value in init_kwargs.items():
        assert name in config, f"{type(layer).__name__}.get_config() drops `{name}`"
        if isinstance(value, keras.layers.Layer):
            value = keras.saving.serialize_keras_object(value)
            assert config[name]["config"] == value["config"], name
        else:
            assert config[name] == value, f"`{name}`: {config[name]!r} != {value!r}"
    clone = type(layer).from_config(copy.deepcopy(config))
    assert clone.get_config() == config


def _check_saving(layer, input_shape, x, tmp_dir):
    import keras

    model = _symbolic_model(layer, input_shape)
    expected = keras.ops.convert_to_numpy(model(x))
    path = os.path.join(tmp_dir, "layer.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), expected, rtol=1e-6, atol=1e-6)


def _check_fit_step(layer, input_shape, x, expected_output_shape):
    model = _symbolic_model(layer, input_shape)
    if not model.trainable_weights:
        return  # nothing to fit
    model.compile(optimizer="sgd", loss="mse", jit_compile=False)
    y = np.zeros(expected_output_shape, "float32")
    history = model.fit(x, y, batch_size=expected_output_shape[0], epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def _check_mixed_precision(layer_cls, config, x, expected_output_shape):
    import keras

    layer = layer_cls.from_config({**copy.deepcopy(config), "dtype": "mixed_float16"})
    out = layer(x)
    assert tuple(out.shape) == tuple(expected_output_shape)
    for variable in layer.weights:
        assert keras.backend.standardize_dtype(variable.dtype) == "float32", variable.path


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_shape,
    expected_output_shape,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    run_training_check=True,
    run_mixed_precision_check=True,
    run_saving_check=True,
    tmp_dir=None,
):
    """Checks one layer the way every keras_dta layer is checked.

    - `get_config()` holds every constructor argument of `init_kwargs` as given, and
      `from_config` gives back the same config;
    - the output shape, eager and symbolic, and the number of (non-)trainable weights;
    - a `.keras` round trip of a model around the layer (`safe_mode=True`) gives equal outputs;
    - one `fit` step of that model;
    - a call under the `mixed_float16` policy, with float32 variables.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        input_shape: a full shape `(batch, ...)`, or a list of them for several inputs.
        expected_output_shape: the full output shape.
        expected_num_trainable_weights: int or None (not checked).
        expected_num_non_trainable_weights: int or None (not checked).
        run_training_check, run_mixed_precision_check, run_saving_check: bools.
        tmp_dir: a directory for the saving check (a temporary one when None).
    """
    import keras

    layer = layer_cls(**init_kwargs)
    _check_config_holds_arguments(layer, init_kwargs)
    config = layer.get_config()
    x = _random_inputs(input_shape)
    out = layer(x)
    assert tuple(out.shape) == tuple(expected_output_shape)
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights
    symbolic = _symbolic_model(layer_cls.from_config(copy.deepcopy(config)), input_shape)
    assert tuple(symbolic.output_shape) == (None, *expected_output_shape[1:]) or tuple(
        symbolic.output_shape
    ) == tuple(expected_output_shape)
    if run_saving_check:
        with tempfile.TemporaryDirectory(dir=tmp_dir) as directory:
            _check_saving(layer_cls.from_config(copy.deepcopy(config)), input_shape, x, directory)
    if run_training_check:
        _check_fit_step(layer_cls.from_config(copy.deepcopy(config)), input_shape, x, expected_output_shape)
    if run_mixed_precision_check:
        _check_mixed_precision(layer_cls, config, x, expected_output_shape)
    keras.backend.clear_session()


def int8_weight_layers(content, model):
    """The layers of `model` whose weights the TFLite model holds in int8, found by value.

    Tensor names do not say it: a convolution run once per time step shares one weight tensor
    among T ops, which the converter names generically. But per output channel the int8 codes
    are the layer kernel's symmetric codes `round(127 w / max|w|)`, whatever positive scale
    the converter folded in first (a BatchNorm's), up to the channel's sign (a negative one).
    """
    import keras
    from ai_edge_litert import schema_py_generated as schema

    tflite = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    int8 = []
    for tensor in tflite.subgraphs[0].tensors:
        data = tflite.buffers[tensor.buffer].data
        if tensor.type == schema.TensorType.INT8 and data is not None and len(data) == np.prod(tensor.shape):
            int8.append(np.frombuffer(bytes(data), np.int8).reshape(tensor.shape[0], -1).astype("int32"))
    found = set()
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if isinstance(inner, keras.layers.Conv2D) and not isinstance(inner, keras.layers.DepthwiseConv2D):
            kernel = np.asarray(inner.kernel.numpy())
            rows = kernel.transpose(3, 0, 1, 2).reshape(kernel.shape[-1], -1)
        elif isinstance(inner, keras.layers.Dense):
            rows = np.asarray(inner.kernel.numpy()).T
        else:
            continue
        top = np.abs(rows).max(axis=1, keepdims=True)
        codes = np.round(rows / np.where(top > 0, top, 1.0) * 127).astype("int32")
        for ints in int8:
            if ints.shape == codes.shape and all(
                np.array_equal(i, c) or np.array_equal(i, -c) for i, c in zip(ints, codes)
            ):
                found.add(layer.name)
    return found
