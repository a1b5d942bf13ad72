r"""Exports a trained DTA-SNN: TFLite (LiteRT) for edge devices, or a TF SavedModel.

    keras-dta-export --model runs/digits/best.keras --output digits.tflite
    keras-dta-export --model runs/digits/best.keras --output digits_dyn.tflite \
        --quantize dynamic --dataset digits
    keras-dta-export --model runs/c10/best.keras --output c10_dyn.tflite --quantize dynamic \
        --dataset image_folder --data_dir cifar10 --snap_to_int8_grid
    keras-dta-export --model best.keras --output m.tflite --quantize int8 \
        --samples x.npy --labels y.npy --num_calibration 200 --int8_io
    keras-dta-export --format saved_model --model runs/digits/best.keras --output export/

(`python export/tflite.py` and `python export/saved_model.py` are the same program with
`--format` preset.)

TFLite: the converted model holds TFLite builtin ops only (the export fails on any Flex op).
It is compared with the Keras model on held-out inputs (the dataset's test split, or the
samples not used for calibration) and the export fails, writing nothing, when the top-1
agreement falls below --min_agreement or fewer than --min_logit_match of the inputs have
logits within --max_abs_diff. Then the file is written atomically, timed at batch 1 with the
LiteRT interpreter (XNNPACK), and a table is printed: the comparison, the XNNPACK partitions
and the ops left outside the delegate, and (--spike_report) the share of spikes equal to the
Keras model's per LIF layer.

SavedModel: a `serve` signature taking the model's input and returning the logits; the output
directory is replaced only once the new export has been written completely.

Export traces the model with TensorFlow, so this program runs on the TensorFlow backend
whatever KERAS_BACKEND says (started on another backend, it runs itself again on TensorFlow):
a `.keras` file trained on JAX exports the same way.
"""

import os
import sys

from absl import app, flags, logging

from keras_dta import cli, export, files

FLAGS = flags.FLAGS
FORMATS = ("tflite", "saved_model")

flags.DEFINE_enum("format", "tflite", list(FORMATS), "What to write: a .tflite file or a SavedModel directory.")
flags.DEFINE_string("model", None, "The trained model, a .keras file.")
flags.DEFINE_string("output", None, "The .tflite file (or, for saved_model, the directory) to write.")
flags.DEFINE_enum(
    "quantize", "none", list(export.QUANTIZE_MODES), "TFLite: none (float32), float16 weights, dynamic (int8 "
    "weights in the convolutions fed by spikes, int8 products exact on spikes; float elsewhere: the fast and "
    "faithful CPU model), or int8 (full integer, needs representative data)."
)
flags.DEFINE_bool("int8_io", False, "With --quantize int8: int8 input and output tensors.")
flags.DEFINE_bool(
    "snap_to_int8_grid", False, "With --quantize dynamic or int8: export a copy of the model whose spike-fed "
    "weights lie on the int8 grid (exact in the dynamic-range model), compare with that copy, report how it "
    "compares with the model given, and save it as <output stem>.int8_grid.keras.")
flags.DEFINE_bool(
    "winograd", False, "With --quantize none: 3x3 convolutions as Winograd F(2x2, 3x3) (faster in XNNPACK; "
    "another float rounding, compared with the Keras model like any export).")
flags.DEFINE_string("samples", None, "A .npy array of model inputs: calibration and held-out data.")
flags.DEFINE_string("labels", None, "A .npy array of class ids (or one-hot) for --samples.")
flags.DEFINE_string("dataset", None, "A registered dataset: calibrate on train, compare on test.")
flags.DEFINE_string("data_dir", None, "The dataset's directory.")
flags.DEFINE_integer("num_calibration", 100, "Calibration examples for --quantize int8.")
flags.DEFINE_integer("num_eval", None, "Held-out examples to compare on (default: all).")
flags.DEFINE_float(
    "min_agreement", None,
    f"Lowest top-1 agreement with Keras accepted (default per mode: {export.DEFAULT_MIN_AGREEMENT}).",
)
flags.DEFINE_float(
    "max_abs_diff", None, "Largest absolute logit difference accepted (default: 1e-4 for none, "
    "unchecked otherwise)."
)
flags.DEFINE_float(
    "min_logit_match", export.DEFAULT_MIN_LOGIT_MATCH, "Share of inputs whose logits must all lie within "
    "--max_abs_diff (a spike flipped at the threshold by float rounding moves one input's logits more)."
)
flags.DEFINE_integer("threads", None, "Interpreter threads (default: the interpreter's).")
flags.DEFINE_integer("runs", 100, "Timed inferences at batch 1 (0: no timing).")
flags.DEFINE_integer("warmup", 10, "Untimed inferences before timing.")
flags.DEFINE_bool(
    "spike_report", True, "Also report, per LIF layer, the share of spikes equal to the Keras model's "
    "(converts a probe model with the spikes as outputs)."
)
flags.DEFINE_string("report_json", None, "Also write the report as JSON to this file.")
flags.DEFINE_integer("batch_size", None, "saved_model: a fixed batch size for the signature (default: any).")


def _export_tflite(model):
    data = export.prepare_export_data(
        model,
        quantize=FLAGS.quantize,
        samples=FLAGS.samples,
        labels=FLAGS.labels,
        dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir,
        num_calibration=FLAGS.num_calibration,
        num_eval=FLAGS.num_eval,
    )
    report = export.export_tflite(
        model,
        FLAGS.output,
        quantize=FLAGS.quantize,
        int8_io=FLAGS.int8_io,
        calibration_data=data["calibration_data"],
        num_calibration=FLAGS.num_calibration,
        eval_data=data["eval_data"],
        eval_labels=data["eval_labels"],
        min_agreement=FLAGS.min_agreement,
        max_abs_diff=FLAGS.max_abs_diff,
        min_logit_match=FLAGS.min_logit_match,
        threads=FLAGS.threads,
        benchmark_runs=FLAGS.runs,
        warmup_runs=FLAGS.warmup,
        spike_report=FLAGS.spike_report,
        snap_to_int8_grid=FLAGS.snap_to_int8_grid,
        winograd=FLAGS.winograd,
    )
    report["held_out"] = data["source"]
    return report


def _print_report(report):
    print(f"{FLAGS.model} -> {FLAGS.output}; compared on {report['num_examples']} held-out inputs ({report['held_out']})")
    print(export.format_report([report]))
    print(
        f"XNNPACK runs {report['delegated_ops']} of {report['total_ops']} ops in {report['partitions']} "
        f"partition(s); outside it: {report['ops_outside'] or 'nothing'}"
    )
    if report["spike_agreement"]:
        print(export.format_spike_agreement(report))
    snap = report.get("snap")
    if snap:
        print(
            f"Snapped {len(snap['layers'])} spike-fed layers to the int8 grid: top-1 agreement with "
            f"{FLAGS.model} {100 * snap['top1_agreement_with_original']:.2f}%"
            + (f", accuracy {100 * snap['original_accuracy']:.2f}% -> {100 * snap['snapped_accuracy']:.2f}%"
               if snap["original_accuracy"] is not None else "")
            + f"; the snapped model (the one compared above): {snap['model']}"
        )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        model = export.load_model(FLAGS.model)
        if FLAGS.format == "saved_model":
            path = export.export_saved_model(model, FLAGS.output, batch_size=FLAGS.batch_size)
            logging.info("SavedModel written to %s (signature %r)", path, export.SERVING_ENDPOINT)
            return 0
        report = _export_tflite(model)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    except export.ExportCheckError as error:
        raise SystemExit(f"export FAILED: {error}") from None
    if FLAGS.report_json:
        files.write_json(FLAGS.report_json, report)
    _print_report(report)
    return 0


def _rerun_on_tensorflow(default_format):
    """Replaces this process by the same command on the TensorFlow backend."""
    argv = [sys.executable, "-m", "keras_dta.cli.export"]
    if default_format is not None and not any(a.startswith("--format") for a in sys.argv[1:]):
        argv.append(f"--format={default_format}")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    os.execve(sys.executable, [*argv, *sys.argv[1:]], env)


def run(default_format=None):
    """The `keras-dta-export` entry point; `default_format` presets `--format`."""
    import keras

    if keras.backend.backend() != "tensorflow":
        _rerun_on_tensorflow(default_format)
    if default_format is not None:
        FLAGS.set_default("format", default_format)
    flags.mark_flags_as_required(["model", "output"])
    cli.run_main(main, __name__)


if __name__ == "__main__":
    run()
