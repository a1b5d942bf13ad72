"""What every export path shares: the backend check, loading a `.keras` file, input specs."""

import os

import numpy as np

QUANTIZE_MODES = ("none", "float16", "dynamic", "int8")
SERVING_ENDPOINT = "serve"


class ExportCheckError(RuntimeError):
    """A converted model failed a check: non-builtin ops, or too far from the Keras model."""


def require_tensorflow_backend():
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "Export traces the model with TensorFlow; set KERAS_BACKEND=tensorflow, or export "
            "the saved `.keras` file with `keras-dta-export` (it runs on TensorFlow whatever "
            f"the backend that trained the model). Received: backend={keras.backend.backend()!r}"
        )


def check_quantize(quantize):
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"`quantize` must be one of {QUANTIZE_MODES}. Received: quantize={quantize!r}")


def load_model(path):
    """Loads a `.keras` model, with a clear error for a missing or wrong file.

    Args:
        path: str, a `.keras` file written by `model.save`.

    Returns:
        The `keras.Model`.
    """
    import keras

    import keras_dta.layers  # noqa: F401 - registers the custom layers

    if not path or not os.path.isfile(path):
        raise ValueError(f"The model file does not exist. Received: model={path!r}")
    if not str(path).endswith(".keras"):
        raise ValueError(f"The model must be a `.keras` file. Received: model={path!r}")
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"The model file is not a `.keras` archive (truncated, or another format). Received: model={path!r}"
        )
    try:
        # Inference only: the optimizer and metrics of a trainer's checkpoint are not needed.
        return keras.saving.load_model(path, compile=False)
    except (OSError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(f"The model file could not be read ({error}). Received: model={path!r}") from None


def as_model(model):
    """`model` itself, or the model loaded from a `.keras` path."""
    if isinstance(model, (str, os.PathLike)):
        return load_model(os.fspath(model))
    return model


def input_spec(model, batch_size):
    """The `tf.TensorSpec` of the model's single input at a static or any batch size."""
    if len(model.inputs) != 1:
        raise ValueError(
            f"Export supports models with one input. Received: {len(model.inputs)} inputs"
        )
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"`batch_size` must be a positive integer or None. Received: batch_size={batch_size}")
    import tensorflow as tf

    tensor = model.inputs[0]
    name = getattr(tensor, "name", None) or "inputs"
    # Keras tensor names may carry a ":0" or a layer path; a signature wants a plain name.
    name = name.split(":")[0].split("/")[-1]
    return tf.TensorSpec((batch_size, *tensor.shape[1:]), tensor.dtype or "float32", name=name)


def check_inputs(model, array, name):
    """Returns `array` as float32 after checking it matches the model's per-example shape.

    Args:
        model: the `keras.Model`.
        array: array-like `(num_examples, *model.input_shape[1:])`.
        name: the argument's name, for the error message.

    Returns:
        A float32 numpy array.
    """
    array = np.asarray(array)
    expected = tuple(model.inputs[0].shape[1:])
    if array.ndim != len(expected) + 1 or tuple(array.shape[1:]) != expected or len(array) == 0:
        raise ValueError(
            f"`{name}` must be a non-empty array of shape (num_examples, {', '.join(map(str, expected))}) "
            f"to match the model's input. Received: {name}.shape={array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"`{name}` must be numeric. Received: {name}.dtype={array.dtype}")
    array = array.astype("float32")
    bad = np.size(array) - np.count_nonzero(np.isfinite(array))
    if bad:
        # A spiking network turns NaN into silence (no spikes) and answers anyway: refuse
        # such inputs rather than calibrate or compare on them.
        raise ValueError(
            f"`{name}` must hold finite numbers only; {bad} value(s) are NaN or infinite. "
            f"Received: {name} with {bad} non-finite value(s)"
        )
    return array
