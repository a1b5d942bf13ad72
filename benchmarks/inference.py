"""Inference latency (batch 1) and throughput (larger batches) of MS-ResNet-18 with DTA.

Modes:

- `eager`: `model(x, training=False)` op by op (TensorFlow eager, or un-jitted JAX).
- `predict`: `model.predict_on_batch` (Keras's compiled predict function, jitted on JAX).
- `graph`, `xla`: the call wrapped in `tf.function`, without and with `jit_compile`
  (TensorFlow backend only).
- `tflite_fp32`, `tflite_int8`: the model exported to a TensorFlow SavedModel and converted
  with `tf.lite.TFLiteConverter` (float32, or full-integer int8 with float input and output,
  calibrated on `--calibration_steps` random batches), run with
  `ai_edge_litert.interpreter.Interpreter(num_threads=...)` (XNNPACK delegate). This script
  converts the model itself (`keras_dta.export` was not available when it was written).

The weights are random: dense kernels take the same time whatever the values, so latency
does not depend on training. Each figure is the median of `--runs` timed calls after
`--warmup` untimed ones.

Usage:

    python benchmarks/inference.py --T 6 --batch_sizes 1,16 \
        --modes eager,graph,xla,tflite_fp32,tflite_int8 --output results/inference.json
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

KERAS_MODES = ("eager", "predict", "graph", "xla")
TFLITE_MODES = ("tflite_fp32", "tflite_int8")


def _keras_runner(model, mode, backend):
    import numpy as np  # noqa: PLC0415

    if mode == "eager":
        return lambda x: np.asarray(model(x, training=False))
    if mode == "predict":
        return lambda x: np.asarray(model.predict_on_batch(x))
    if backend != "tensorflow":
        raise ValueError(f"Mode {mode!r} needs the TensorFlow backend. Received: backend={backend}")
    import tensorflow as tf  # noqa: PLC0415

    fn = tf.function(lambda x: model(x, training=False), jit_compile=mode == "xla", reduce_retracing=True)
    return lambda x: fn(tf.constant(x)).numpy()


def convert_tflite(model, saved_model_dir, quantize, input_shape, calibration_steps=8, seed=0):
    """Converts a Keras model to a TFLite flatbuffer through a SavedModel.

    Args:
        model: the Keras model (TensorFlow backend).
        saved_model_dir: str, where to write the SavedModel (reused for both precisions).
        quantize: `"fp32"` or `"int8"` (full-integer weights and activations; float32
            input and output tensors).
        input_shape: tuple `(height, width, channels)`; the batch is left dynamic.
        calibration_steps: int, random batches for the int8 ranges.
        seed: int, seed of the calibration data.

    Returns:
        The flatbuffer as bytes.
    """
    import keras  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    if not os.path.exists(os.path.join(saved_model_dir, "saved_model.pb")):
        model.export(saved_model_dir, format="tf_saved_model", verbose=False,
                     input_signature=[keras.InputSpec(shape=(1, *input_shape), dtype="float32")])
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    if quantize == "int8":
        rng = np.random.default_rng(seed)

        def representative():
            for _ in range(calibration_steps):
                yield [rng.normal(size=(1, *input_shape)).astype("float32")]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif quantize != "fp32":
        raise ValueError(f"`quantize` must be 'fp32' or 'int8'. Received: quantize={quantize}")
    return converter.convert()


def _tflite_runner(flatbuffer, batch_size, num_threads):
    import numpy as np  # noqa: PLC0415
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    interpreter = Interpreter(model_content=flatbuffer, num_threads=num_threads)
    index = interpreter.get_input_details()[0]["index"]
    if batch_size != 1:
        interpreter.resize_tensor_input(index, (batch_size, *interpreter.get_input_details()[0]["shape"][1:]))
    interpreter.allocate_tensors()
    out = interpreter.get_output_details()[0]["index"]

    def run(x):
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        return np.array(interpreter.get_tensor(out))

    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--T", type=int, default=6, help="time steps")
    parser.add_argument("--attn", default="dta", choices=("dta", "txa", "tna", "none"))
    parser.add_argument("--batch_sizes", default="1,16", help="comma list; 1 gives latency")
    parser.add_argument("--modes", default="eager,graph,xla,tflite_fp32,tflite_int8", help="comma list of modes")
    parser.add_argument("--num_threads", type=int, default=os.cpu_count(), help="TFLite interpreter threads")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calibration_steps", type=int, default=8)
    parser.add_argument("--tflite_dir", default=None, help="keep the .tflite files here")
    parser.add_argument("--output", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in KERAS_MODES + TFLITE_MODES:
            parser.error(f"Unknown mode. Received: {m}; expected one of {KERAS_MODES + TFLITE_MODES}")
    batch_sizes = common.parse_list(args.batch_sizes)
    if args.T < 1 or args.runs < 1 or args.warmup < 0 or not batch_sizes or min(batch_sizes) < 1:
        parser.error("--T, --runs and --batch_sizes must be positive, --warmup >= 0.")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    import keras_dta  # noqa: PLC0415

    backend = keras.backend.backend()
    if any(m in TFLITE_MODES for m in modes) and backend != "tensorflow":
        parser.error(f"TFLite modes need KERAS_BACKEND=tensorflow. Received: backend={backend}")
    keras.utils.set_random_seed(0)
    input_shape = (32, 32, 3)
    model = keras_dta.models.ms_resnet18(attn=args.attn, T=args.T, input_shape=input_shape)
    rng = np.random.default_rng(0)
    results = []
    tmp = tempfile.TemporaryDirectory(prefix="keras_dta_inference_")
    for mode in modes:
        flatbuffer, convert_s = None, None
        if mode in TFLITE_MODES:
            start = time.perf_counter()
            flatbuffer = convert_tflite(model, os.path.join(tmp.name, "saved_model"), mode.split("_")[1],
                                        input_shape, args.calibration_steps)
            convert_s = time.perf_counter() - start
            if args.tflite_dir:
                os.makedirs(args.tflite_dir, exist_ok=True)
                with open(os.path.join(args.tflite_dir, f"ms_resnet18_{args.attn}_T{args.T}_{mode}.tflite"), "wb") as f:
                    f.write(flatbuffer)
        for batch_size in batch_sizes:
            x = rng.normal(size=(batch_size, *input_shape)).astype("float32")
            if flatbuffer is not None:
                run = _tflite_runner(flatbuffer, batch_size, args.num_threads)
            else:
                run = _keras_runner(model, mode, backend)
            times, cpu = common.time_calls(lambda: run(x), runs=args.runs, warmup=args.warmup)
            summary = common.summarize(times, cpu)
            row = {
                "backend": backend, "mode": mode, "T": args.T, "batch_size": batch_size,
                "latency_ms": summary["median_s"] * 1e3,
                "images_per_s": batch_size / summary["median_s"],
                **summary, "times_s": times, "cpu_s": cpu,
                "load_average": os.getloadavg(),
                "num_threads": args.num_threads if flatbuffer is not None else None,
                "tflite_mb": len(flatbuffer) / 1e6 if flatbuffer is not None else None,
                "convert_s": convert_s,
            }
            results.append(row)
            print(f"{mode} batch={batch_size}: {row['latency_ms']:.1f} ms/batch, "
                  f"{row['images_per_s']:.2f} images/s", flush=True)
    tmp.cleanup()
    columns = [
        ("backend", "backend", None), ("mode", "mode", None), ("T", "T", None),
        ("batch_size", "batch", None), ("latency_ms", "ms/batch", "{:.1f}"),
        ("images_per_s", "images/s", "{:.2f}"), ("median_cpu_s", "CPU s/batch", "{:.3f}"),
        ("num_threads", "threads", None),
        ("tflite_mb", "MB", "{:.1f}"),
    ]
    print(common.format_table(results, columns))
    common.write_json(args.output, {
        "benchmark": "inference", "model": "ms_resnet18", "attn": args.attn, "T": args.T,
        "input": list(input_shape), "peak_rss_mib": common.peak_rss_mib(),
        "machine": common.machine_info(), "results": results,
    })


if __name__ == "__main__":
    main()
