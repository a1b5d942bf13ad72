"""TF SavedModel export for serving."""

import logging

from keras_dta import files
from keras_dta.export._common import SERVING_ENDPOINT, as_model, input_spec, require_tensorflow_backend

logger = logging.getLogger(__name__)


def write_saved_model(model, path, batch_size):
    """Writes the inference graph of `model` to `path` (not atomic: see `export_saved_model`)."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SERVING_ENDPOINT,
        lambda inputs: model(inputs, training=False),
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

    Returns:
        The absolute path of the SavedModel.
    """
    require_tensorflow_backend()
    model = as_model(model)
    input_spec(model, batch_size)  # validate before writing anything
    path = files.replace_dir(lambda tmp: write_saved_model(model, tmp, batch_size), output_dir)
    logger.info("Wrote the SavedModel %s", path)
    return path
