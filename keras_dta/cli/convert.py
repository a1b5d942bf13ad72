r"""Converts a checkpoint of the authors' PyTorch DTA-SNN to a `.keras` model.

    python -m keras_dta.convert CHECKPOINT --arch ms_resnet18 --T 6 --num_classes 100 \
        --output model.keras

(also installed as `keras-dta-convert`).
"""

import logging

from absl import app, flags

from keras_dta import cli, files
from keras_dta.models import ATTENTION_KINDS, MODEL_NAMES

logger = logging.getLogger(__name__)



def define_flags(flag_values=flags.FLAGS):
    """Defines the converter's flags in `flag_values`.

    Called by `run`, not at import: the converter's `--T` and `--attn` would otherwise clash
    with the trainer's in a process that imports both CLI modules.
    """
    flags.DEFINE_enum("arch", "ms_resnet18", list(MODEL_NAMES), "The model function.",
                      flag_values=flag_values)
    flags.DEFINE_enum("attn", "dta", list(ATTENTION_KINDS), "Attention after the stem.",
                      flag_values=flag_values)
    flags.DEFINE_integer("T", 6, "Time steps.", flag_values=flag_values)
    flags.DEFINE_integer(
        "num_classes", None, "Classes (default: 10 for ms_resnet18, 1000 for ms_resnet34).",
        flag_values=flag_values,
    )
    flags.DEFINE_list(
        "input_shape",
        None,
        "H,W,C for images or T,H,W,C for event frames (default 32,32,3 / 224,224,3).",
        flag_values=flag_values,
    )
    flags.DEFINE_string("output", None, "The .keras file to write.", flag_values=flag_values)
    flags.mark_flag_as_required("output", flag_values=flag_values)


def _input_shape(values):
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise app.UsageError(
            f"--input_shape: expected comma-separated integers. Received: "
            f"input_shape={','.join(values)!r}"
        ) from None


def main(argv, flag_values=flags.FLAGS):
    """Converts the checkpoint named in `argv` as the (parsed) `flag_values` say."""
    FLAGS = flag_values  # noqa: N806 - absl's usual name
    if len(argv) != 2:
        raise app.UsageError(
            f"Expected one positional argument, the checkpoint (.pth or .pth.tar). "
            f"Received: {argv[1:]}"
        )
    checkpoint = argv[1]
    if not FLAGS.output.endswith(".keras"):
        raise app.UsageError(f"--output must end with .keras. Received: --output={FLAGS.output}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from keras_dta import convert, models  # noqa: PLC0415

    build = getattr(models, FLAGS.arch)
    kwargs = {"attn": FLAGS.attn, "T": FLAGS.T}
    if FLAGS.num_classes is not None:
        kwargs["num_classes"] = FLAGS.num_classes
    if FLAGS.input_shape is not None:
        kwargs["input_shape"] = _input_shape(FLAGS.input_shape)
    try:
        state_dict = convert.read_checkpoint(checkpoint)
        model = build(**kwargs)
        convert.load_reference_weights(model, state_dict)
    except (ImportError, FileNotFoundError, ValueError) as error:
        logger.error("Error: %s", error)
        return 1
    files.save_model(model, FLAGS.output)
    logger.info("Wrote %s", FLAGS.output)
    return 0


def run():
    """The `keras-dta-convert` entry point."""
    define_flags()
    cli.run_main(main, __name__)


if __name__ == "__main__":
    run()
