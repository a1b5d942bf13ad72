r"""Exports a trained DTA-SNN as a TF SavedModel with a `serve` signature.

    python export/saved_model.py --model runs/digits/best.keras --output runs/digits/export

Serve it with TF Serving, or in Python:

    served = tf.saved_model.load("runs/digits/export")
    logits = served.signatures["serve"](images=x)["output_0"]

The output directory is replaced only once the new export has been written completely.
"""

import os
import sys

from absl import app, flags, logging

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_dta import export  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_string("model", None, "The trained model, a .keras file.")
flags.DEFINE_string("output", None, "The SavedModel directory to write.")
flags.DEFINE_integer("batch_size", None, "A fixed batch size for the signature (default: any).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        model = export.load_model(FLAGS.model)
        path = export.export_saved_model(model, FLAGS.output, batch_size=FLAGS.batch_size)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    logging.info("SavedModel written to %s (signature %r)", path, export.SERVING_ENDPOINT)


if __name__ == "__main__":
    flags.mark_flags_as_required(["model", "output"])
    app.run(main)
