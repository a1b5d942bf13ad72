r"""Exports a trained DTA-SNN as a TF SavedModel with a `serve` signature.

    python export/saved_model.py --model runs/digits/best.keras --output runs/digits/export

Serve it with TF Serving, or in Python:

    served = tf.saved_model.load("runs/digits/export")
    logits = served.signatures["serve"](images=x)["output_0"]

The same program as `keras-dta-export --format saved_model` (`keras_dta.cli.export`). The
output directory is replaced only once the new export has been written completely.
"""

import os

# A command-line program: TensorFlow's native INFO lines are noise here (set the variable
# yourself to see them).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_dta.cli import export  # noqa: E402

if __name__ == "__main__":
    export.run(default_format="saved_model")
