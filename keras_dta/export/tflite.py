"""TFLite (LiteRT) conversion of DTA-SNNs, and the checked export pipeline.

A DTA-SNN converts to plain TFLite builtin ops because nothing in it is specific to
TensorFlow's runtime: the spike is a `MUL` with a fused `RELU` and a `MINIMUM` (in int8 and
float16 models three `MUL`s with fused clips; `keras_dta.surrogates.exact_gains`; the
surrogate gradient only exists for training and is dropped), and the LIF loop over the time
steps is unrolled in Python for a static T, so the graph holds no `While` and no state. Every
op of it runs in XNNPACK. `convert_to_tflite` converts with `TFLITE_BUILTINS` only (plus
`TFLITE_BUILTINS_INT8` for full-integer models) and `flatbuffer.check_builtin_ops` rejects any
Flex (SELECT_TF_OPS) or custom op that slips in.

The dynamic-range model puts int8 weights only where the input is spikes (`grid`): there the
int8 product is exact, and with the weights on the int8 grid (a model trained with
`int8_grid=True`, or snapped) the model computes what the float model computes.

`export_tflite` is the whole pipeline the CLI runs: convert, check the op list, compare the
TFLite model with the Keras model on held-out inputs (max absolute logit difference, top-1
agreement, accuracy of both), fail below the thresholds, write the file atomically, and time
the model with the LiteRT interpreter at batch 1.
"""

import contextlib
import logging
import os
import tempfile

from keras_dta import files, surrogates
from keras_dta.export import flatbuffer, grid, litert, parity, spikes
from keras_dta.export._common import (
    SERVING_ENDPOINT,
    as_model,
    check_inputs,
    check_quantize,
    require_tensorflow_backend,
)
from keras_dta.export.saved_model import write_saved_model
from keras_dta.export.winograd import winograd_convolutions

logger = logging.getLogger(__name__)


def convert_to_tflite(
    model,
    quantize="none",
    calibration_data=None,
    num_calibration=100,
    int8_io=False,
    batch_size=1,
    winograd=False,
):
    """Converts a Keras model to a TFLite flatbuffer with builtin ops only.

    Args:
        model: a `keras.Model`.
        quantize: `"none"` (float32), `"float16"` (float16 weights), `"dynamic"` (int8
            weights in the layers fed by spikes, run as int8 products on the spikes, which is
            exact for weights on the int8 grid (`keras_dta.export.grid`); float32 weights and
            activations elsewhere) or `"int8"` (full-integer weights and activations,
            calibrated on `calibration_data`).
        calibration_data: array `(num_examples, *input_shape)`, the representative dataset
            for `"int8"`; ignored otherwise.
        num_calibration: int, how many examples of `calibration_data` to calibrate on.
        int8_io: bool, for `"int8"`: int8 input and output tensors instead of float32.
        batch_size: int, the static batch size of the converted model (1 on devices).
        winograd: bool, for `"none"`: 3x3 stride-1 convolutions as Winograd F(2x2, 3x3)
            (`keras_dta.export.winograd`; faster in XNNPACK, another float rounding).

    Returns:
        The model as bytes.
    """
    require_tensorflow_backend()
    import tensorflow as tf

    check_quantize(quantize)
    if int8_io and quantize != "int8":
        raise ValueError(f"`int8_io` needs quantize='int8'. Received: quantize={quantize!r}, int8_io=True")
    if winograd and quantize != "none":
        raise ValueError(
            f"`winograd` is for float32 exports (quantize='none'). Received: quantize={quantize!r}, winograd=True"
        )
    if not isinstance(num_calibration, int) or num_calibration < 1:
        raise ValueError(f"`num_calibration` must be a positive integer. Received: num_calibration={num_calibration}")
    if quantize == "int8":
        if calibration_data is None:
            raise ValueError(
                "Full-integer quantization needs representative data (e.g. `--samples` or "
                "`--dataset`). Received: calibration_data=None"
            )
        calibration_data = check_inputs(model, calibration_data, "calibration_data")[:num_calibration]
        if len(calibration_data) < batch_size:
            raise ValueError(
                f"Calibration needs at least one full batch of {batch_size} examples. "
                f"Received: {len(calibration_data)} calibration examples"
            )

    if winograd:
        model, names = winograd_convolutions(model)
        logger.info("Winograd F(2x2, 3x3) in %d convolutions: %s", len(names), names)
    with tempfile.TemporaryDirectory(prefix="keras_dta_export_") as tmp:
        # Through a SavedModel: the converter then freezes the variables into constants
        # (a concrete function of the live model would keep resource variables).
        saved = os.path.join(tmp, "saved_model")
        # Full-integer graphs take spikes of small gain stages (XNNPACK's int8 limits), and
        # so do float16 ones (XNNPACK may run them in half precision).
        small = quantize in ("int8", "float16")
        stages = surrogates.small_spike_stages() if small else contextlib.nullcontext()
        with stages:
            # Dynamic-range graphs step by step (`stepwise`): faster there, slower in float32.
            write_saved_model(model, saved, batch_size, stepwise=quantize == "dynamic")
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=[SERVING_ENDPOINT])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif quantize == "int8":
            # INT8 first; TFLITE_BUILTINS stays for the ops without an int8 kernel (the
            # spike's bool -> float cast), so the model still runs on builtins only.
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                tf.lite.OpsSet.TFLITE_BUILTINS,
            ]

            def representative_dataset():
                # Batches of the converted model's static batch size; a trailing part
                # batch would not fit its reshapes, so it is dropped.
                for i in range(0, len(calibration_data) - batch_size + 1, batch_size):
                    yield [calibration_data[i : i + batch_size]]

            converter.representative_dataset = representative_dataset
            if int8_io:
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
        content = converter.convert()
        if quantize == "dynamic":
            converter.optimizations = []
            content = _int8_only_where_fed_by_spikes(model, content, converter.convert())
    logger.info("Converted to TFLite (quantize=%s): %d bytes", quantize, len(content))
    return content


def _int8_only_where_fed_by_spikes(model, content, float_content):
    """The dynamic-range model with int8 weights only in the ops fed by spikes.

    On spikes (0 and 1) XNNPACK's int8 product is exact up to the weights' rounding
    (`keras_dta.export.grid`); on real values it also quantizes the input on the fly. Every
    other weighted op (the stem, the membrane shortcuts, DTA, the classifier, and the
    depthwise convolutions XNNPACK has no dynamic-range kernel for) gets its float32 weights
    back from the float conversion of the same SavedModel. The ops fed by spikes are found in
    the converted graph (`flatbuffer.spike_fed_ops`).
    """
    keep = flatbuffer.spike_fed_ops(content)
    content, restored = flatbuffer.restore_float_weights(content, float_content, keep)
    logger.info("Weights kept in float32 (not fed by spikes): %s", restored)
    try:
        spike_fed = grid.spike_fed_layers(model)
    except ValueError:
        return content
    off = grid.off_grid_layers(model)
    if not off:
        logger.info("All %d spike-fed layers are on the int8 grid: their int8 products are exact", len(spike_fed))
    else:
        logger.warning(
            "%d of %d spike-fed layers have weights off the int8 grid; the export rounds them, "
            "which changes some answers. `keras_dta.export.snap_to_int8_grid` (CLI: "
            "--snap_to_int8_grid) puts them on it first: %s", len(off), len(spike_fed), off,
        )
    return content


def export_tflite(
    model,
    output,
    quantize="none",
    int8_io=False,
    calibration_data=None,
    num_calibration=100,
    eval_data=None,
    eval_labels=None,
    min_agreement=None,
    max_abs_diff=None,
    min_logit_match=parity.DEFAULT_MIN_LOGIT_MATCH,
    threads=None,
    benchmark_runs=100,
    warmup_runs=10,
    spike_report=True,
    snap_to_int8_grid=False,
    winograd=False,
):
    """Converts, checks, writes and times a TFLite model of a Keras DTA-SNN.

    The steps: convert with builtin ops only; reject Flex/custom ops and loops
    (`check_builtin_ops`); compare with the Keras model on `eval_data`; if the comparison is
    below `min_agreement` or above `max_abs_diff`, raise `ExportCheckError` and write nothing;
    else write `output` atomically and time it at batch 1.

    Args:
        model: a `keras.Model` or the path of a `.keras` file.
        output: str, the `.tflite` path; an existing file is replaced only on success.
        quantize: one of `QUANTIZE_MODES`.
        int8_io: bool, int8 input/output tensors (quantize="int8" only).
        calibration_data: array `(num_examples, *input_shape)`, for quantize="int8". Keep it
            apart from `eval_data` so the comparison is on held-out inputs.
        num_calibration: int, calibration examples used.
        eval_data: array `(num_examples, *input_shape)`, the held-out comparison inputs.
        eval_labels: optional class ids or one-hot labels for `eval_data`.
        min_agreement: float in [0, 1], the lowest top-1 agreement accepted; None for the
            mode's default in `DEFAULT_MIN_AGREEMENT`.
        max_abs_diff: float, the largest absolute logit difference accepted; None for the
            mode's default in `DEFAULT_MAX_ABS_DIFF` (float32 only: 1e-4).
        min_logit_match: float in [0, 1], the share of inputs whose logits must all lie within
            `max_abs_diff` (see `DEFAULT_MIN_LOGIT_MATCH`: a spike flipped at the threshold
            by rounding moves one input's logits far more); 1.0 demands every input.
        threads: int or None, interpreter threads for the comparison and timing.
        benchmark_runs: int, timed invocations; 0 skips timing.
        warmup_runs: int, untimed invocations before timing.
        spike_report: bool, also measure the share of equal spikes per LIF layer on
            `eval_data` (`keras_dta.export.spikes`; one more conversion, of a probe with the
            spikes as outputs and float input and output).
        snap_to_int8_grid: bool, for "dynamic" and "int8": export a copy of the model whose
            spike-fed weights are rounded onto the int8 grid (`grid.snap_to_int8_grid`), compare
            the TFLite model with that copy, report how the copy compares with the model given
            (`snap`: the snapped layers, their top-1 agreement and both accuracies), and save
            the copy next to `output` as `<output stem>.int8_grid.keras`: the float model the
            TFLite file matches.
        winograd: bool, for "none": 3x3 convolutions as Winograd F(2x2, 3x3) (see
            `convert_to_tflite`); compared with the Keras model like any export.

    Returns:
        A report dict: `mode`, `output`, `size_bytes`, `ops` (counts), `float_ops` (counts,
        int8 only), comparison figures (`compare_logits`), thresholds, `delegate`, the
        XNNPACK partitions (`litert.delegate_summary`), `spike_agreement` (`{LIF layer:
        share of equal spikes}`, or None), `snap` (or None), `median_ms`, `p90_ms`.
    """
    require_tensorflow_backend()
    check_quantize(quantize)
    model = as_model(model)
    if not output:
        raise ValueError(f"`output` must be a file path. Received: output={output!r}")
    if os.path.isdir(output):
        raise ValueError(f"`output` is a directory; pass a .tflite file path. Received: output={output!r}")
    thresholds = parity.resolve_thresholds(quantize, min_agreement, max_abs_diff, min_logit_match)
    if not isinstance(benchmark_runs, int) or benchmark_runs < 0:
        raise ValueError(f"`benchmark_runs` must be a non-negative integer. Received: benchmark_runs={benchmark_runs}")
    if eval_data is None:
        raise ValueError("The export is checked against the Keras model on held-out inputs. Received: eval_data=None")
    eval_data = check_inputs(model, eval_data, "eval_data")
    original = None
    if snap_to_int8_grid:
        if quantize not in ("dynamic", "int8"):
            raise ValueError(
                "`snap_to_int8_grid` rounds weights for an int8 export; use quantize='dynamic' or "
                f"'int8'. Received: quantize={quantize!r}, snap_to_int8_grid=True"
            )
        original, (model, snapped_layers) = model, _snapped_copy(model)

    content = convert_to_tflite(
        model,
        quantize=quantize,
        calibration_data=calibration_data,
        num_calibration=num_calibration,
        int8_io=int8_io,
        winograd=winograd,
    )
    report = {
        "mode": quantize + ("+int8_io" if int8_io else ""),
        "output": os.path.abspath(output),
        "size_bytes": len(content),
        "ops": dict(flatbuffer.check_builtin_ops(content)),
        "float_ops": dict(flatbuffer.float_ops(content)) if quantize == "int8" else None,
        **thresholds,
    }
    if quantize == "int8":
        spikes_q = flatbuffer.spike_tensors(content)
        report["spike_tensors"] = len(spikes_q)
        report["inexact_spike_tensors"] = [t["name"] for t in spikes_q if not t["exact"]]
        if report["inexact_spike_tensors"]:
            logger.warning(
                "%d of %d int8 spike tensors cannot hold both 0 and 1 exactly (a layer that never "
                "fired on the calibration data?): %s", len(report["inexact_spike_tensors"]),
                len(spikes_q), report["inexact_spike_tensors"][:5],
            )
    interpreter, report["delegate"] = litert.make_interpreter(content, threads)
    report.update(litert.delegate_summary(interpreter))
    reference = model.predict(eval_data, batch_size=32, verbose=0)
    candidate = litert.tflite_predict(content, eval_data, interpreter=interpreter)
    report.update(parity.compare_logits(reference, candidate, eval_labels, atol=report["max_abs_diff_allowed"]))
    logger.info(
        "TFLite (%s) vs Keras on %d inputs: max |logit diff| %.3g, top-1 agreement %.4f",
        report["mode"], report["num_examples"], report["max_abs_diff"], report["top1_agreement"],
    )
    report["snap"] = None
    if original is not None:
        report["snap"] = _compare_snapped(original, snapped_layers, reference, eval_data, eval_labels)
    parity.check_report(report, output)
    report["spike_agreement"] = None
    if spike_report:
        report["spike_agreement"] = _spike_agreement(
            model, quantize, calibration_data, num_calibration, eval_data, threads, winograd
        )

    if original is not None:
        report["snap"]["model"] = os.path.abspath(_snapped_path(output))
        files.save_model(model, report["snap"]["model"])
        logger.info("Wrote the snapped Keras model the TFLite file matches: %s", report["snap"]["model"])
    files.write_bytes(output, content)
    logger.info("Wrote %s (%d bytes)", output, len(content))
    report["median_ms"] = report["p90_ms"] = None
    if benchmark_runs:
        report.update(litert.benchmark_tflite(content, runs=benchmark_runs, warmup=warmup_runs, interpreter=interpreter))
    return report


def _snapped_copy(model):
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    names = grid.snap_to_int8_grid(copy)
    if not names:
        raise ValueError(
            f"`snap_to_int8_grid` found no convolution or dense layer fed by spikes in the model. "
            f"Received: model={model.name!r}"
        )
    return copy, names


def _snapped_path(output):
    stem = output[: -len(".tflite")] if output.endswith(".tflite") else output
    return stem + ".int8_grid.keras"


def _compare_snapped(original, snapped_layers, snapped_logits, eval_data, eval_labels):
    """How the snapped copy answers against the model given, on the held-out inputs."""
    before = original.predict(eval_data, batch_size=32, verbose=0)
    figures = parity.compare_logits(before, snapped_logits, eval_labels)
    logger.info(
        "Snapped to the int8 grid: top-1 agreement with the original %.4f; accuracy %s -> %s",
        figures["top1_agreement"], figures["keras_accuracy"], figures["tflite_accuracy"],
    )
    return {
        "layers": snapped_layers,
        "top1_agreement_with_original": figures["top1_agreement"],
        "original_accuracy": figures["keras_accuracy"],
        "snapped_accuracy": figures["tflite_accuracy"],
    }


def _spike_agreement(model, quantize, calibration_data, num_calibration, eval_data, threads, winograd):
    probe, names = spikes.lif_probe(model)
    content = convert_to_tflite(
        probe, quantize=quantize, calibration_data=calibration_data, num_calibration=num_calibration,
        winograd=winograd,
    )
    agreement = spikes.spike_agreement(probe, content, eval_data, names, threads=threads)
    logger.info(
        "Spikes equal to the Keras model's, per LIF layer: lowest %.4f (%s)",
        min(agreement.values()), min(agreement, key=agreement.get),
    )
    return agreement
