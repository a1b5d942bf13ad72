r"""Exports a trained DTA-SNN to TFLite (LiteRT), checks it against Keras and times it.

    python export/tflite.py --model runs/digits/best.keras --output digits.tflite
    python export/tflite.py --model runs/digits/best.keras --output digits_int8.tflite \
        --quantize int8 --dataset digits
    python export/tflite.py --model best.keras --output m.tflite --quantize int8 \
        --samples x.npy --labels y.npy --num_calibration 200 --int8_io

The converted model holds TFLite builtin ops only (the export fails on any Flex op). It is
compared with the Keras model on held-out inputs (the dataset's test split, or the samples
not used for calibration) and the export fails, writing nothing, when the top-1 agreement
falls below --min_agreement or fewer than --min_logit_match of the inputs have logits within
--max_abs_diff. Then the file is written atomically, timed at batch 1 with the LiteRT
interpreter (XNNPACK), and a table is printed.
"""

import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_dta import export, files  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_string("model", None, "The trained model, a .keras file.")
flags.DEFINE_string("output", None, "The .tflite file to write.")
flags.DEFINE_enum(
    "quantize", "none", list(export.QUANTIZE_MODES), f"One of {list(export.QUANTIZE_MODES)}: float32, float16 weights, "
    "int8 weights (dynamic range), or full integer (int8, needs representative data)."
)
flags.DEFINE_bool("int8_io", False, "With --quantize int8: int8 input and output tensors.")
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
    "min_logit_match", 0.99, "Share of inputs whose logits must all lie within --max_abs_diff "
    "(a spike flipped at the threshold by float rounding moves one input's logits more)."
)
flags.DEFINE_integer("threads", None, "Interpreter threads (default: the interpreter's).")
flags.DEFINE_integer("runs", 100, "Timed inferences at batch 1 (0: no timing).")
flags.DEFINE_integer("warmup", 10, "Untimed inferences before timing.")
flags.DEFINE_bool(
    "spike_report", True, "Also report, per LIF layer, the share of spikes equal to the Keras model's "
    "(converts a probe model with the spikes as outputs)."
)
flags.DEFINE_string("report_json", None, "Also write the report as JSON to this file.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        model = export.load_model(FLAGS.model)
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
        )
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    except export.ExportCheckError as error:
        raise SystemExit(f"tflite.py: export FAILED: {error}") from None
    report["held_out"] = data["source"]
    if FLAGS.report_json:
        files.write_json(FLAGS.report_json, report)
    print(f"{FLAGS.model} -> {FLAGS.output}; compared on {report['num_examples']} held-out inputs ({data['source']})")
    print(export.format_report([report]))
    print(
        f"XNNPACK runs {report['delegated_ops']} of {report['total_ops']} ops in {report['partitions']} "
        f"partition(s); outside it: {report['ops_outside'] or 'nothing'}"
    )
    if report["spike_agreement"]:
        print(export.format_spike_agreement(report))


if __name__ == "__main__":
    flags.mark_flags_as_required(["model", "output"])
    app.run(main)
