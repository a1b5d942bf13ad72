"""TF SavedModel export for serving (from any Keras backend: see `export_saved_model`)."""

import logging
import os
import subprocess
import sys
import tempfile

from keras_dta import files
from keras_dta.export._common import SERVING_ENDPOINT, as_model, input_spec

logger = logging.getLogger(__name__)


def write_saved_model(model, path, batch_size, stepwise=False):
    """Writes the inference graph of `model` to `path` (not atomic: see `export_saved_model`).

    With `stepwise`, the graph is traced by `keras_dta.export.stepwise.stepwise_call` (the
    same values, computed one time step at a time).
    """
    import keras

    from keras_dta.export.stepwise import stepwise_call

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SERVING_ENDPOINT,
        (lambda inputs: stepwise_call(model, inputs)) if stepwise else (lambda inputs: model(inputs, training=False)),
        input_signature=[input_spec(model, batch_size)],
    )
    archive.write_out(path, verbose=False)


def export_saved_model(model, output_dir, batch_size=None):
    """Exports the inference graph as a TF SavedModel with a `serve` signature.

    The signature takes the model's input (by its name, e.g. `images`) and returns the
    logits as `output_0`; BatchNormalization uses its moving statistics. Load with
    `tf.saved_model.load(output_dir).signatures["serve"]` (also `serving_default`).

    Args:
        model: a `keras.Model` or the path of a `.keras` file.
        output_dir: str, the SavedModel directory; an existing one is replaced only once the
            new export has been written completely.
        batch_size: int or None (any batch).

    On another backend than TensorFlow (a run trained on JAX), the model is saved as a
    `.keras` file and exported by `keras-dta-export --format saved_model` in a TensorFlow
    process (TensorFlow must be installed).

    Returns:
        The absolute path of the SavedModel.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return _export_in_tensorflow_process(model, output_dir, batch_size)
    model = as_model(model)
    input_spec(model, batch_size)  # validate before writing anything
    path = files.replace_dir(lambda tmp: write_saved_model(model, tmp, batch_size), output_dir)
    logger.info("Wrote the SavedModel %s", path)
    return path


def _export_in_tensorflow_process(model, output_dir, batch_size):
    """`export_saved_model` in a subprocess on the TensorFlow backend."""
    with tempfile.TemporaryDirectory(prefix="keras_dta_export_") as tmp:
        if isinstance(model, (str, os.PathLike)):
            path = os.fspath(model)
        else:
            path = os.path.join(tmp, "model.keras")
            model.save(path)
        command = [
            sys.executable, "-m", "keras_dta.cli.export", "--format", "saved_model",
            "--model", path, "--output", os.fspath(output_dir),
        ]
        if batch_size is not None:
            command += ["--batch_size", str(batch_size)]
        env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
        logger.info("Exporting the SavedModel in a TensorFlow process: %s", " ".join(command))
        done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(
            f"The SavedModel export in a TensorFlow process failed (exit {done.returncode}): "
            f"{tail}"
        )
    return os.path.abspath(output_dir)
