r"""Exports a trained DTA-SNN to TFLite, checks it against Keras and times it.

    python export/tflite.py --model runs/digits/best.keras --output digits.tflite
    python export/tflite.py --model runs/digits/best.keras --output digits_dyn.tflite \
        --quantize dynamic --dataset digits

The same program as `keras-dta-export` (`keras_dta.cli.export`) with `--format tflite`;
`--help` lists the flags.
"""

import os

# A command-line program: TensorFlow's native INFO lines are noise here (set the variable
# yourself to see them).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_dta.cli import export  # noqa: E402

if __name__ == "__main__":
    export.run(default_format="tflite")
