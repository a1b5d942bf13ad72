"""Export of trained DTA-SNNs: TF SavedModel for serving, TFLite (LiteRT) for edge devices.

A DTA-SNN converts to plain TFLite builtin ops because nothing in it is specific to
TensorFlow's runtime: the spike is `cast(greater(u - V_th, 0))` (the surrogate gradient only
exists for training and is dropped), and the LIF loop over the time steps is unrolled in
Python for a static T, so the graph holds no `While` and no state. `convert_to_tflite`
converts with `TFLITE_BUILTINS` only (plus `TFLITE_BUILTINS_INT8` for full-integer models)
and `check_builtin_ops` rejects any Flex (SELECT_TF_OPS) or custom op that slips in.

`export_tflite` is the whole pipeline the CLI runs: convert, check the op list, compare the
TFLite model with the Keras model on held-out inputs (max absolute logit difference, top-1
agreement, accuracy of both), fail below the thresholds, write the file atomically, and time
the model with the LiteRT interpreter at batch 1.

Example:

>>> model = keras.saving.load_model("runs/digits/best.keras")
>>> report = keras_dta.export.export_tflite(
...     model, "digits_int8.tflite", quantize="int8",
...     calibration_data=x_train[:100], eval_data=x_test, eval_labels=y_test)
>>> print(keras_dta.export.format_report([report]))
"""

import collections
import logging
import os
import tempfile
import time

import numpy as np

from keras_dta import files

logger = logging.getLogger(__name__)

QUANTIZE_MODES = ("none", "float16", "dynamic", "int8")

# Top-1 agreement with the Keras model below which an export fails. A spiking network turns
# small rounding errors into flipped spikes, so quantized modes cannot promise identity; these
# floors catch a broken conversion, not a slightly worse one.
DEFAULT_MIN_AGREEMENT = {"none": 1.0, "float16": 0.98, "dynamic": 0.95, "int8": 0.9}
# Largest absolute logit difference allowed; only float32 has a default.
DEFAULT_MAX_ABS_DIFF = {"none": 1e-4, "float16": None, "dynamic": None, "int8": None}
# The share of inputs whose logits must all lie within `max_abs_diff`. A spiking network
# amplifies rounding: when a membrane potential sits within float32 rounding of the threshold,
# TFLite's kernels (another summation order) can flip that spike, which moves that input's
# logits by far more than 1e-4. Such inputs are counted and reported, not hidden.
DEFAULT_MIN_LOGIT_MATCH = 0.99

SERVING_ENDPOINT = "serve"


class ExportCheckError(RuntimeError):
    """A converted model failed a check: non-builtin ops, or too far from the Keras model."""


def _require_tensorflow_backend():
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "Export traces the model with TensorFlow; set KERAS_BACKEND=tensorflow. "
            f"Received: backend={keras.backend.backend()!r}"
        )


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
    # Inference only: the optimizer and metrics of a trainer's checkpoint are not needed.
    return keras.saving.load_model(path, compile=False)


def _check_quantize(quantize):
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"`quantize` must be one of {QUANTIZE_MODES}. Received: quantize={quantize!r}")


def _input_spec(model, batch_size):
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
    return array.astype("float32")


def write_atomic(path, data):
    """Writes bytes to `path` atomically (see `keras_dta.files.write_bytes`)."""
    files.write_bytes(path, data)


def _write_saved_model(model, path, batch_size):
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SERVING_ENDPOINT,
        lambda inputs: model(inputs, training=False),
        input_signature=[_input_spec(model, batch_size)],
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
    _require_tensorflow_backend()
    if isinstance(model, (str, os.PathLike)):
        model = load_model(os.fspath(model))
    _input_spec(model, batch_size)  # validate before writing anything
    path = files.replace_dir(lambda tmp: _write_saved_model(model, tmp, batch_size), output_dir)
    logger.info("Wrote the SavedModel %s", path)
    return path


def convert_to_tflite(
    model,
    quantize="none",
    calibration_data=None,
    num_calibration=100,
    int8_io=False,
    batch_size=1,
):
    """Converts a Keras model to a TFLite flatbuffer with builtin ops only.

    Args:
        model: a `keras.Model`.
        quantize: `"none"` (float32), `"float16"` (float16 weights), `"dynamic"` (int8
            weights, float activations) or `"int8"` (full-integer weights and activations,
            calibrated on `calibration_data`).
        calibration_data: array `(num_examples, *input_shape)`, the representative dataset
            for `"int8"`; ignored otherwise.
        num_calibration: int, how many examples of `calibration_data` to calibrate on.
        int8_io: bool, for `"int8"`: int8 input and output tensors instead of float32.
        batch_size: int, the static batch size of the converted model (1 on devices).

    Returns:
        The model as bytes.
    """
    _require_tensorflow_backend()
    import tensorflow as tf

    _check_quantize(quantize)
    if int8_io and quantize != "int8":
        raise ValueError(f"`int8_io` needs quantize='int8'. Received: quantize={quantize!r}, int8_io=True")
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

    with tempfile.TemporaryDirectory(prefix="keras_dta_export_") as tmp:
        # Through a SavedModel: the converter then freezes the variables into constants
        # (a concrete function of the live model would keep resource variables).
        saved = os.path.join(tmp, "saved_model")
        _write_saved_model(model, saved, batch_size)
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
    logger.info("Converted to TFLite (quantize=%s): %d bytes", quantize, len(content))
    return content


def _builtin_names():
    from ai_edge_litert import schema_py_generated as schema

    return {
        value: name
        for name, value in vars(schema.BuiltinOperator).items()
        if not name.startswith("_") and isinstance(value, int)
    }


def list_ops(model_content):
    """Counts the operators of a TFLite model by name, over all subgraphs.

    Builtin ops by their builtin name (`CONV_2D`, `GREATER`); custom ops, including Flex
    ops, by their custom code (`FlexErf`). Read from the flatbuffer, so it works for models
    the interpreter could not load.

    Args:
        model_content: bytes of a `.tflite` model.

    Returns:
        A `collections.Counter` of op names.
    """
    from ai_edge_litert import schema_py_generated as schema

    names = _builtin_names()
    tfl = schema.Model.GetRootAsModel(model_content, 0)
    codes = []
    for i in range(tfl.OperatorCodesLength()):
        code = tfl.OperatorCodes(i)
        # Old models keep the code in the deprecated int8 field; the larger one is right.
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            codes.append((code.CustomCode() or b"<unnamed custom>").decode())
        else:
            codes.append(names.get(builtin, f"BUILTIN_{builtin}"))
    counts = collections.Counter()
    for g in range(tfl.SubgraphsLength()):
        subgraph = tfl.Subgraphs(g)
        for o in range(subgraph.OperatorsLength()):
            counts[codes[subgraph.Operators(o).OpcodeIndex()]] += 1
    return counts


def float_ops(model_content):
    """Counts the ops of a TFLite model whose output is float32, by name.

    For a full-integer model these are the ops left in float (around the spike's
    bool -> float cast), with the QUANTIZE/DEQUANTIZE ops at their borders.
    """
    from ai_edge_litert import schema_py_generated as schema

    names = _builtin_names()
    tfl = schema.Model.GetRootAsModel(model_content, 0)
    counts = collections.Counter()
    for g in range(tfl.SubgraphsLength()):
        subgraph = tfl.Subgraphs(g)
        for o in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(o)
            if op.OutputsLength() and subgraph.Tensors(op.Outputs(0)).Type() == schema.TensorType.FLOAT32:
                code = tfl.OperatorCodes(op.OpcodeIndex())
                counts[names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")] += 1
    return counts


def check_builtin_ops(model_content):
    """Raises `ExportCheckError` unless the model holds TFLite builtin ops only.

    A Flex op (from `SELECT_TF_OPS`) needs the TensorFlow runtime on the device; any custom
    op needs a kernel the device does not have; a `WHILE` means the LIF loop was not unrolled.

    Args:
        model_content: bytes of a `.tflite` model.

    Returns:
        The op counts, as `list_ops`.
    """
    ops = list_ops(model_content)
    names = set(_builtin_names().values())
    flex = sorted(op for op in ops if op.startswith("Flex"))
    custom = sorted(op for op in ops if op not in names and op not in flex)
    if flex or custom:
        raise ExportCheckError(
            f"The TFLite model needs ops outside the builtin set: Flex ops {flex}, custom ops "
            f"{custom}. Every layer of a DTA-SNN should lower to builtins."
        )
    if "WHILE" in ops:
        raise ExportCheckError(
            "The TFLite model holds a WHILE loop: the LIF time loop was not unrolled. "
            "Export models with a static number of time steps T."
        )
    return ops


def make_interpreter(model_content, threads=None):
    """A LiteRT interpreter with XNNPACK (its default delegate), tensors allocated.

    XNNPACK refuses some quantized graphs at preparation (e.g. when the scales of an int8
    op's inputs and output are too far apart). Those fall back, with a warning, to the
    builtin reference kernels, and the returned delegate name says so.

    Args:
        model_content: bytes of a `.tflite` model.
        threads: int or None, the interpreter's thread count.

    Returns:
        `(interpreter, delegate)` with `delegate` `"xnnpack"` or `"none"`.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"`threads` must be a positive integer or None. Received: threads={threads}")
    interpreter = Interpreter(model_content=model_content, num_threads=threads)
    try:
        interpreter.allocate_tensors()
        return interpreter, "xnnpack"
    except RuntimeError as error:
        if "XNNPACK" not in str(error) and "Delegate" not in str(error):
            raise
        logger.warning("XNNPACK rejected the model (%s); timing the builtin kernels instead.", error)
    interpreter = Interpreter(
        model_content=model_content,
        num_threads=threads,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    return interpreter, "none"


def _quantize(x, detail):
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(detail["dtype"])


def _dequantize(y, detail):
    scale, zero_point = detail["quantization"]
    return (y.astype("float32") - zero_point) * scale


def tflite_predict(model_content, inputs, threads=None, interpreter=None):
    """Runs a TFLite model one example at a time and returns float32 logits.

    Integer input and output tensors (`int8_io`) are quantized and dequantized with the
    model's own scales, so results compare directly with the Keras model's.

    Args:
        model_content: bytes of a `.tflite` model with batch size 1.
        inputs: float array `(num_examples, *input_shape)`.
        threads: int or None.
        interpreter: an allocated interpreter to reuse instead of `model_content`.

    Returns:
        Array `(num_examples, num_classes)`.
    """
    if interpreter is None:
        interpreter, _ = make_interpreter(model_content, threads)
    in_detail = interpreter.get_input_details()[0]
    out_detail = interpreter.get_output_details()[0]
    outputs = []
    for x in np.asarray(inputs, "float32"):
        x = x[None]
        if np.issubdtype(in_detail["dtype"], np.integer):
            x = _quantize(x, in_detail)
        interpreter.set_tensor(in_detail["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(out_detail["index"])
        if np.issubdtype(out_detail["dtype"], np.integer):
            y = _dequantize(y, out_detail)
        outputs.append(np.asarray(y[0], "float32"))
    return np.stack(outputs)


def compare_logits(reference, candidate, labels=None, atol=None):
    """Agreement between two models' logits, and their accuracies where labels exist.

    Args:
        reference: array `(num_examples, num_classes)`, the Keras model's logits.
        candidate: array like `reference`, the exported model's logits.
        labels: optional class ids `(num_examples,)` or one-hot `(num_examples, classes)`.
        atol: optional float; `logit_match` is then the share of inputs whose logits all
            differ by at most `atol`.

    Returns:
        Dict with `num_examples`, `max_abs_diff`, `top1_agreement`, `logit_match` (None
        without `atol`), and `keras_accuracy`, `tflite_accuracy` (None without labels).
    """
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    if reference.shape != candidate.shape:
        raise ValueError(
            f"Logits must have the same shape. Received: reference.shape={reference.shape}, "
            f"candidate.shape={candidate.shape}"
        )
    per_input = np.abs(reference - candidate).reshape(len(reference), -1).max(axis=1)
    result = {
        "num_examples": int(len(reference)),
        "max_abs_diff": float(per_input.max()),
        "logit_match": None if atol is None else float(np.mean(per_input <= atol)),
        "top1_agreement": float(np.mean(reference.argmax(-1) == candidate.argmax(-1))),
        "keras_accuracy": None,
        "tflite_accuracy": None,
    }
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim == 2:
            labels = labels.argmax(-1)
        if labels.shape != (len(reference),):
            raise ValueError(
                f"`labels` must hold one class per example ({len(reference)}). "
                f"Received: labels.shape={labels.shape}"
            )
        result["keras_accuracy"] = float(np.mean(reference.argmax(-1) == labels))
        result["tflite_accuracy"] = float(np.mean(candidate.argmax(-1) == labels))
    return result


def benchmark_tflite(model_content, threads=None, runs=100, warmup=10, interpreter=None):
    """Times single inferences at batch 1 with the LiteRT interpreter.

    Args:
        model_content: bytes of a `.tflite` model.
        threads: int or None.
        runs: int, timed invocations.
        warmup: int, untimed invocations first (XNNPACK packs weights on the first).
        interpreter: an allocated interpreter to reuse instead of `model_content`.

    Returns:
        Dict with `median_ms`, `p90_ms`, `runs`, `threads`.
    """
    if not isinstance(runs, int) or runs < 1:
        raise ValueError(f"`runs` must be a positive integer. Received: runs={runs}")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"`warmup` must be a non-negative integer. Received: warmup={warmup}")
    if interpreter is None:
        interpreter, _ = make_interpreter(model_content, threads)
    detail = interpreter.get_input_details()[0]
    rng = np.random.default_rng(0)
    if np.issubdtype(detail["dtype"], np.integer):
        x = rng.integers(-128, 128, size=detail["shape"]).astype(detail["dtype"])
    else:
        x = rng.uniform(0.0, 1.0, size=detail["shape"]).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], x)
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    times = np.asarray(times) * 1e3
    return {
        "median_ms": float(np.median(times)),
        "p90_ms": float(np.percentile(times, 90)),
        "runs": runs,
        "threads": threads,
    }


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
    min_logit_match=DEFAULT_MIN_LOGIT_MATCH,
    threads=None,
    benchmark_runs=100,
    warmup_runs=10,
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

    Returns:
        A report dict: `mode`, `output`, `size_bytes`, `ops` (counts), `float_ops` (counts,
        int8 only), comparison figures (`compare_logits`), thresholds, `delegate`,
        `median_ms`, `p90_ms`.
    """
    _require_tensorflow_backend()
    _check_quantize(quantize)
    if isinstance(model, (str, os.PathLike)):
        model = load_model(os.fspath(model))
    if not output:
        raise ValueError(f"`output` must be a file path. Received: output={output!r}")
    if os.path.isdir(output):
        raise ValueError(f"`output` is a directory; pass a .tflite file path. Received: output={output!r}")
    if min_agreement is None:
        min_agreement = DEFAULT_MIN_AGREEMENT[quantize]
    if not 0.0 <= min_agreement <= 1.0:
        raise ValueError(f"`min_agreement` must be in [0, 1]. Received: min_agreement={min_agreement}")
    if max_abs_diff is None:
        max_abs_diff = DEFAULT_MAX_ABS_DIFF[quantize]
    if max_abs_diff is not None and max_abs_diff < 0:
        raise ValueError(f"`max_abs_diff` must be non-negative. Received: max_abs_diff={max_abs_diff}")
    if not 0.0 <= min_logit_match <= 1.0:
        raise ValueError(f"`min_logit_match` must be in [0, 1]. Received: min_logit_match={min_logit_match}")
    if not isinstance(benchmark_runs, int) or benchmark_runs < 0:
        raise ValueError(f"`benchmark_runs` must be a non-negative integer. Received: benchmark_runs={benchmark_runs}")
    if eval_data is None:
        raise ValueError("The export is checked against the Keras model on held-out inputs. Received: eval_data=None")
    eval_data = check_inputs(model, eval_data, "eval_data")

    content = convert_to_tflite(
        model,
        quantize=quantize,
        calibration_data=calibration_data,
        num_calibration=num_calibration,
        int8_io=int8_io,
    )
    report = {
        "mode": quantize + ("+int8_io" if int8_io else ""),
        "output": os.path.abspath(output),
        "size_bytes": len(content),
        "ops": dict(check_builtin_ops(content)),
        "float_ops": dict(float_ops(content)) if quantize == "int8" else None,
        "min_agreement": min_agreement,
        "max_abs_diff_allowed": max_abs_diff,
        "min_logit_match": min_logit_match if max_abs_diff is not None else None,
    }
    interpreter, report["delegate"] = make_interpreter(content, threads)
    reference = model.predict(eval_data, batch_size=32, verbose=0)
    candidate = tflite_predict(content, eval_data, interpreter=interpreter)
    report.update(compare_logits(reference, candidate, eval_labels, atol=max_abs_diff))
    logger.info(
        "TFLite (%s) vs Keras on %d inputs: max |logit diff| %.3g, top-1 agreement %.4f",
        report["mode"], report["num_examples"], report["max_abs_diff"], report["top1_agreement"],
    )
    failures = []
    if report["top1_agreement"] < min_agreement:
        failures.append(f"top-1 agreement {report['top1_agreement']:.4f} < min_agreement={min_agreement}")
    if max_abs_diff is not None and report["logit_match"] < min_logit_match:
        failures.append(
            f"logits within max_abs_diff={max_abs_diff} on {report['logit_match']:.2%} of the inputs "
            f"< min_logit_match={min_logit_match} (max |logit diff| {report['max_abs_diff']:.3g})"
        )
    elif max_abs_diff is not None and report["logit_match"] < 1.0:
        logger.warning(
            "%d of %d inputs differ by more than %g in their logits (max %.3g): spikes that sit "
            "at the threshold within float rounding flipped; top-1 agreement %.4f.",
            round((1 - report["logit_match"]) * report["num_examples"]), report["num_examples"],
            max_abs_diff, report["max_abs_diff"], report["top1_agreement"],
        )
    if failures:
        raise ExportCheckError(
            f"The {report['mode']} TFLite model disagrees with the Keras model on "
            f"{report['num_examples']} held-out inputs: {'; '.join(failures)}. "
            f"Nothing was written to {output!r}."
        )

    write_atomic(output, content)
    logger.info("Wrote %s (%d bytes)", output, len(content))
    report["median_ms"] = report["p90_ms"] = None
    if benchmark_runs:
        report.update(benchmark_tflite(content, runs=benchmark_runs, warmup=warmup_runs, interpreter=interpreter))
    return report


def format_report(reports):
    """A compact text table of `export_tflite` reports, one row per export."""
    header = ("mode", "size KiB", "median ms", "p90 ms", "max|dlogit|", "within tol", "top-1 agree", "acc keras",
              "acc tflite", "delegate")

    def pct(value):
        return "-" if value is None else f"{100 * value:.2f}%"

    def ms(value):
        return "-" if value is None else f"{value:.3f}"

    rows = [header]
    for r in reports:
        rows.append((
            r["mode"],
            f"{r['size_bytes'] / 1024:.1f}",
            ms(r.get("median_ms")),
            ms(r.get("p90_ms")),
            f"{r['max_abs_diff']:.2e}",
            pct(r.get("logit_match")),
            pct(r["top1_agreement"]),
            pct(r["keras_accuracy"]),
            pct(r["tflite_accuracy"]),
            r["delegate"],
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _load_npy(path, name):
    if not os.path.isfile(path):
        raise ValueError(f"The `{name}` file does not exist. Received: {name}={path!r}")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"`{name}` must be a .npy array file ({error}). Received: {name}={path!r}") from None


def prepare_export_data(
    model,
    quantize="none",
    samples=None,
    labels=None,
    dataset=None,
    data_dir=None,
    num_calibration=100,
    num_eval=None,
    seed=0,
):
    """Finds the calibration and held-out comparison data of an export.

    - `samples` (a `.npy` file or array) with optional `labels`: for `int8` the first
      `num_calibration` samples calibrate and the rest are held out for the comparison;
      otherwise all are compared.
    - `dataset`: calibration on its train split, comparison on its evaluation split.
    - neither: the comparison uses uniform random inputs in [0, 1) (float32 parity still
      means something; accuracy does not), and `int8` is refused for want of calibration data.

    Args:
        model: the `keras.Model` being exported.
        quantize: one of `QUANTIZE_MODES`.
        samples: str path of a `.npy` file, or an array `(num_examples, *input_shape)`.
        labels: str path or array of class ids (or one-hot) for `samples`.
        dataset: str, a name from `keras_dta.data.datasets`.
        data_dir: str or None, the dataset's directory.
        num_calibration: int, calibration examples for `int8`.
        num_eval: int or None, the most held-out examples to compare on (random inputs: 100
            when None).
        seed: int, the seed of the random inputs.

    Returns:
        Dict with `calibration_data` (None unless `int8`), `eval_data`, `eval_labels` and
        `source` (a description for the report).
    """
    _check_quantize(quantize)
    for name, value in (("num_calibration", num_calibration), ("num_eval", num_eval)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value}")
    if samples is not None and dataset:
        raise ValueError(
            "Pass representative data either as `samples` or as `dataset`, not both. "
            f"Received: samples={samples!r}, dataset={dataset!r}"
        )
    if labels is not None and samples is None:
        raise ValueError(f"`labels` needs `samples`. Received: labels={labels!r}, samples=None")
    int8 = quantize == "int8"
    calibration = eval_labels = None
    if samples is not None:
        source = samples if isinstance(samples, str) else "samples"
        if isinstance(samples, str):
            samples = _load_npy(samples, "samples")
        samples = check_inputs(model, samples, "samples")
        if labels is not None:
            if isinstance(labels, str):
                labels = _load_npy(labels, "labels")
            labels = np.asarray(labels)
            if len(labels) != len(samples):
                raise ValueError(
                    f"`labels` must hold one entry per sample ({len(samples)}). "
                    f"Received: labels.shape={labels.shape}"
                )
        start = num_calibration if int8 else 0
        if int8:
            calibration = samples[:num_calibration]
            if len(samples) <= num_calibration:
                raise ValueError(
                    f"int8 calibrates on the first {num_calibration} samples and compares on the "
                    f"rest, but there are only {len(samples)}. Pass more samples or a smaller "
                    f"num_calibration. Received: num_calibration={num_calibration}"
                )
        stop = None if num_eval is None else start + num_eval
        eval_data = samples[start:stop]
        eval_labels = None if labels is None else labels[start:stop]
        source = f"{source} [{start}:{start + len(eval_data)}]"
    elif dataset:
        shape = tuple(model.inputs[0].shape[1:])
        T = shape[0] if len(shape) == 4 else None
        if int8:
            calibration, _ = load_dataset_arrays(dataset, "train", data_dir, num_calibration, T)
            calibration = check_inputs(model, calibration, "dataset")
        from keras_dta.data import datasets

        split = datasets.get_dataset(dataset).eval_split
        eval_data, eval_labels = load_dataset_arrays(dataset, split, data_dir, num_eval, T)
        eval_data = check_inputs(model, eval_data, "dataset")
        source = f"{dataset}/{split}"
    else:
        if int8:
            raise ValueError(
                "quantize='int8' needs representative data: pass `samples` or `dataset`. "
                "Received: samples=None, dataset=None"
            )
        count = num_eval or 100
        shape = tuple(model.inputs[0].shape[1:])
        eval_data = np.random.default_rng(seed).uniform(0.0, 1.0, (count, *shape)).astype("float32")
        source = f"{count} uniform random inputs"
        logger.warning("No samples or dataset given: comparing on %s (no accuracy).", source)
    return {
        "calibration_data": calibration,
        "eval_data": eval_data,
        "eval_labels": eval_labels,
        "source": source,
    }


def load_dataset_arrays(name, split, data_dir=None, limit=None, T=None):
    """Reads up to `limit` examples of a registered dataset's split as numpy arrays.

    Uses the evaluation pipeline (no augmentation) of `keras_dta.data.datasets`.

    Args:
        name: str, a registered dataset name (e.g. `"digits"`, `"cifar10"`).
        split: str, e.g. `"train"` or `"test"`.
        data_dir: str or None, passed to the dataset.
        limit: int or None, the most examples to read.
        T: int or None, time steps for event datasets.

    Returns:
        `(inputs, class_ids)` as numpy arrays.
    """
    from keras_dta.data import datasets

    dataset = datasets.get_dataset(name)
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"`limit` must be a positive integer or None. Received: limit={limit}")
    ds = dataset.load(split, batch_size=64, training=False, data_dir=data_dir, T=T)
    xs, ys, count = [], [], 0
    for x, y in ds.as_numpy_iterator():
        xs.append(x)
        ys.append(np.asarray(y).argmax(-1))
        count += len(x)
        if limit is not None and count >= limit:
            break
    if not xs:
        raise ValueError(f"The dataset split is empty. Received: dataset={name!r}, split={split!r}")
    x, y = np.concatenate(xs), np.concatenate(ys)
    return (x[:limit], y[:limit]) if limit is not None else (x, y)
