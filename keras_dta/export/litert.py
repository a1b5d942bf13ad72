"""Running TFLite models with the LiteRT interpreter: XNNPACK, prediction, timing."""

import collections
import logging
import time

import numpy as np

logger = logging.getLogger(__name__)


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


def delegate_summary(interpreter):
    """How much of an allocated model XNNPACK runs: partitions and the ops left outside.

    Every op XNNPACK cannot run splits its graph: each partition is one delegate node, and
    the ops between partitions run in TFLite's builtin kernels, with a hand-over of
    tensors at every border. The interpreter lists the original ops and the delegate nodes
    (`DELEGATE`); an original op belongs to a partition when it lies on a path from the
    partition's outputs back to its inputs.

    The op listing is the interpreter's `_get_ops_details()`, which LiteRT keeps private;
    this is its only use here, and `tests/test_export_litert.py` fails if it changes.

    Args:
        interpreter: an allocated LiteRT `Interpreter`.

    Returns:
        Dict with `partitions` (delegate nodes), `delegated_ops`, `total_ops` and
        `ops_outside` (`{op name: count}` of the ops the delegate does not run).
    """
    ops = interpreter._get_ops_details()
    by_index = {op["index"]: op for op in ops}
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    originals = [op for op in ops if op["op_name"] != "DELEGATE"]
    producer = {int(t): op["index"] for op in originals for t in op["outputs"]}
    covered = set()
    for node in delegates:
        borders = {int(t) for t in node["inputs"]}
        pending = [int(t) for t in node["outputs"]]
        while pending:
            tensor = pending.pop()
            index = producer.get(tensor)
            if tensor in borders or index is None or index in covered:
                continue
            covered.add(index)
            pending.extend(int(t) for t in by_index[index]["inputs"])
    outside = collections.Counter(op["op_name"] for op in originals if op["index"] not in covered)
    return {
        "partitions": len(delegates),
        "delegated_ops": len(covered),
        "total_ops": len(originals),
        "ops_outside": dict(outside),
    }


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
