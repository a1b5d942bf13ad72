"""Inference latency (batch 1) and throughput (larger batches) of MS-ResNet-18 with DTA.

Modes:

- `eager`: `model(x, training=False)` op by op (TensorFlow eager, or un-jitted JAX).
- `predict`: `model.predict_on_batch` (Keras's compiled predict function, jitted on JAX).
- `graph`, `xla`: the call wrapped in `tf.function`, without and with `jit_compile`
  (TensorFlow backend only).
- `tflite_fp32`, `tflite_int8`: converted with `keras_dta.export.convert_to_tflite` at a
  static batch size (float32, or full-integer int8 with float input and output, calibrated
  on `--calibration_steps` random images) and run with `keras_dta.export.make_interpreter`
  (`ai_edge_litert` Interpreter, XNNPACK delegate, `--num_threads` threads).

`--experimental_ceil_spike` swaps, in this process only, the spike's `cast(greater(v, 0))`
for `ceil(clip(v, 0, 1))` (identical in float32), an experiment on XNNPACK delegation of the
LIF layers: GREATER and the bool CAST are not delegated, so each of the 108 spikes of
MS-ResNet-18 at T = 6 splits the XNNPACK graph (143 partitions in int8). CEIL is not
delegated in int8 either (161 partitions); interleaved runs gave ~10% on int8, nothing on
float32, so the library keeps `greater`.

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


def _tflite_runner(flatbuffer, num_threads):
    import numpy as np  # noqa: PLC0415

    from keras_dta import export  # noqa: PLC0415

    interpreter, delegate = export.make_interpreter(flatbuffer, threads=num_threads)
    index = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]

    def run(x):
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        return np.array(interpreter.get_tensor(out))

    return run, delegate


def _ceil_heaviside(v):
    """`v > 0` as ceil(clip(v, 0, 1)): equal for every finite float, but XNNPACK-delegable."""
    from keras import ops  # noqa: PLC0415

    return ops.ceil(ops.clip(v, 0.0, 1.0))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--T", type=int, default=6, help="time steps")
    parser.add_argument("--attn", default="dta", choices=("dta", "txa", "tna", "none"))
    parser.add_argument("--batch_sizes", default="1,16", help="comma list; 1 gives latency")
    parser.add_argument("--modes", default="eager,graph,xla,tflite_fp32,tflite_int8", help="comma list of modes")
    parser.add_argument("--num_threads", type=int, default=os.cpu_count(), help="TFLite interpreter threads")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calibration_steps", type=int, default=8, help="int8 calibration images")
    parser.add_argument("--experimental_ceil_spike", action="store_true",
                        help="spike as ceil(clip(v, 0, 1)) in this process (see the docstring)")
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

    if args.experimental_ceil_spike:
        keras_dta.surrogates.heaviside = _ceil_heaviside
    backend = keras.backend.backend()
    if any(m in TFLITE_MODES for m in modes) and backend != "tensorflow":
        parser.error(f"TFLite modes need KERAS_BACKEND=tensorflow. Received: backend={backend}")
    keras.utils.set_random_seed(0)
    input_shape = (32, 32, 3)
    model = keras_dta.models.ms_resnet18(attn=args.attn, T=args.T, input_shape=input_shape)
    rng = np.random.default_rng(0)
    results = []
    calibration = rng.normal(size=(args.calibration_steps, *input_shape)).astype("float32")
    for mode in modes:
        for batch_size in batch_sizes:
            x = rng.normal(size=(batch_size, *input_shape)).astype("float32")
            flatbuffer, convert_s, delegate = None, None, None
            if mode in TFLITE_MODES:
                from keras_dta import export  # noqa: PLC0415

                start = time.perf_counter()
                try:
                    flatbuffer = export.convert_to_tflite(
                        model, quantize="int8" if mode == "tflite_int8" else "none",
                        calibration_data=calibration, num_calibration=args.calibration_steps,
                        batch_size=batch_size)
                except (RuntimeError, ValueError) as error:
                    # convert_to_tflite calibrates int8 on one-image batches, which a model
                    # converted with a static batch > 1 cannot take.
                    message = str(error).splitlines()[0][:200]
                    print(f"{mode} batch={batch_size}: conversion failed: {message}", flush=True)
                    results.append({"backend": backend, "mode": mode, "T": args.T,
                                    "batch_size": batch_size, "error": message})
                    continue
                convert_s = time.perf_counter() - start
                if args.tflite_dir:
                    os.makedirs(args.tflite_dir, exist_ok=True)
                    name = f"ms_resnet18_{args.attn}_T{args.T}_{mode}_b{batch_size}.tflite"
                    with open(os.path.join(args.tflite_dir, name), "wb") as f:
                        f.write(flatbuffer)
                run, delegate = _tflite_runner(flatbuffer, args.num_threads)
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
                "convert_s": convert_s, "delegate": delegate,
                "ceil_spike": args.experimental_ceil_spike,
            }
            results.append(row)
            print(f"{mode} batch={batch_size}: {row['latency_ms']:.1f} ms/batch (min {row['min_s'] * 1e3:.1f}), "
                  f"{row['images_per_s']:.2f} images/s", flush=True)
    columns = [
        ("backend", "backend", None), ("mode", "mode", None), ("T", "T", None),
        ("batch_size", "batch", None), ("latency_ms", "ms/batch", "{:.1f}"),
        ("images_per_s", "images/s", "{:.2f}"), ("median_cpu_s", "CPU s/batch", "{:.3f}"),
        ("num_threads", "threads", None),
        ("tflite_mb", "MB", "{:.1f}"), ("error", "error", None),
    ]
    print(common.format_table(results, columns))
    common.write_json(args.output, {
        "benchmark": "inference", "model": "ms_resnet18", "attn": args.attn, "T": args.T,
        "input": list(input_shape), "peak_rss_mib": common.peak_rss_mib(),
        "machine": common.machine_info(), "results": results,
    })


if __name__ == "__main__":
    main()
