"""Inference latency (batch 1) and throughput (larger batches) of MS-ResNet-18 with DTA.

Modes:

- `eager`: `model(x, training=False)` op by op (TensorFlow eager, or un-jitted JAX).
- `predict`: `model.predict_on_batch` (Keras's compiled predict function, jitted on JAX).
- `graph`, `xla`: the call wrapped in `tf.function`, without and with `jit_compile`
  (TensorFlow backend only).
- `graph_folded`: `graph` on `keras_dta.export.fold_batchnorm(model)`, BatchNorm folded into
  the convolutions (the same logits up to rounding; 1-6% faster here).
- `graph_frozen`: `keras_dta.export.inference_function(model)`, BatchNorm folded and the
  weights frozen into constants of the graph (oneDNN then prepares each kernel once).
- `tflite_fp32`, `tflite_fp32_winograd`, `tflite_dynamic`, `tflite_int8`: converted with
  `keras_dta.export.convert_to_tflite` at a static batch size (float32, its 3x3 convolutions
  direct or as Winograd F(2x2, 3x3) (`winograd=True`); dynamic-range: int8
  weights in the convolutions fed by spikes, which XNNPACK runs as int8 matrix products on
  the spikes, float32 elsewhere, the graph evaluated step by step; full integer with float
  input and output, calibrated on
  `--calibration_steps` random images) and run with `keras_dta.export.make_interpreter` (LiteRT, XNNPACK,
  `--num_threads` threads). Each row also gives the XNNPACK partitions and the ops left
  outside the delegate (`keras_dta.export.delegate_summary`).

The modes are timed in `--rounds` interleaved rounds (every mode once per round, `--runs`
calls each), so a change in the machine's load falls on all of them alike; the figure is the
median of all timed calls, after `--warmup` untimed ones per mode.

Against the authors' implementation: the machine's float32 convolution peak `P` is measured
first (the method of `../shared/bench/cpu_peak.py`), and the authors' PyTorch latency on this
machine is estimated from the anchors of `REFERENCE.md` ("Performance anchors": 79.8 ms for
their eager model, T = 6, batch 1, 2 threads, on a machine with P = 408 GFLOP/s, and 26.6-30.1
ms for it through ONNX Runtime static int8), scaled by 408 / P. These are estimates, printed
as such; a side-by-side measurement needs the authors' code, which stays out of this
repository.

The weights are random: dense kernels take the same time whatever the values, so latency
does not depend on training. But an untrained network barely fires past its first layers, and
int8 calibration then gives those spike tensors an empty range, which XNNPACK refuses (190
partitions): `--adapt_bn_steps` training-mode passes on random images first set the
BatchNorm statistics (no weight changes), so the layers fire as in a trained network.

Experiments, with their figures (this 2-core machine):
- The spike as `cast(greater(v, 0))`: GREATER and the bool CAST have no XNNPACK kernel, so
  each of the 108 spikes of MS-ResNet-18 at T = 6 split the XNNPACK graph (143 partitions in
  int8; 78 ms int8, 150 ms float32 at 2 threads). `ceil(clip(v, 0, 1))` (identical in
  float32): CEIL is not delegated in int8 either (161 partitions), ~10% on int8, nothing on
  float32. `min(relu(G v), 1)` with one large power-of-two G (what float32 models use now):
  exact and one partition in float32 and dynamic-range models, but in int8 its MUL by G
  falls outside XNNPACK's scale limits (190 partitions), hence int8's three clipped stages.
  A chain of RELU6 stages ending in a multiplication by 1/6 was exact in float32 but, as
  XNNPACK runs float16 models in half precision, gave spikes of 0.99976 there; and with four
  ops per spike instead of two, dynamic-range ran about 10% slower (47.6 against 40-42 ms).
- Running the stem once on the image and repeating its output T times: exact, but the stem
  is 0.08% of the MACs; nothing measurable.
- Dynamic-range depthwise convolutions (DTA's 5x5) have no XNNPACK kernel: 2.0 ms in the
  hybrid reference kernel against 0.6 ms with float weights, and an extra partition; the
  export keeps those weights in float.
- int8 weights only in the layers fed by spikes (float32 for the stem, the shortcuts, DTA and
  the classifier, 4.5% of the MACs): exact on the int8 grid, and 42.0 ms against 40.5 ms for
  int8 weights everywhere (interleaved, 2 threads; 0.34 against 0.33 of the authors' model
  measured beside them). Kept: the 1.5 ms buy answers equal to the Keras model's.
- Where the dynamic-range model's time goes: with every LIF replaced by the identity it
  took 30.0 ms against 40.8 ms (float32: 141.9 against 152.8 ms), so the LIF layers cost
  about 11 ms. Much of that is copying: XNNPACK runs a slice or a concatenation on one thread
  (a 512 KB slice of a (6, 32, 32, 128) tensor: about 42 us, against 12 us for an ADD of the
  same size on two threads), and at T = 6 every LIF layer slices its input into steps and
  joins its spikes again for the next convolution (113 slices, 38 concatenations).
- The dynamic-range graph evaluated step by step (`keras_dta.export.stepwise`: the spikes of
  step t go straight into the convolution of step t, which runs once per step on one shared
  weight tensor; 21 slices and 6 concatenations left): 40.7 against 43.1 ms in an
  interleaved run beside the authors' model (0.32 against 0.34 of its 126.3 ms; README),
  44.5 against 46.6 ms in another (beside 143.1 ms, a slow spell of the machine), 38.8
  against 40.0 ms in a third (int8 weights everywhere). Kept for dynamic. In float32
  it is slower (159.6 against 153.3 ms: XNNPACK's float32 convolutions lose more on a batch
  of one than the copies cost), so float32 keeps time folded into the batch.
- The LIF's spike gain folded into its input (`x G` once per layer, then
  `min(relu(u - G V_th), 1)`: one op less per step, the same values): 39.1 against 39.2 ms,
  no measurable change.
- Why float32 TFLite is slower than the authors' model: on this CPU (AVX-512) XNNPACK's
  float32 convolutions reach 193-218 GFLOP/s on the model's own shapes (3x3, (6, 32, 32, 128),
  (6, 16, 16, 256), (6, 8, 8, 512)) against 278-318 GFLOP/s for TensorFlow's oneDNN, and with
  the LIF replaced by the identity the float32 TFLite model still takes 142 ms, more than the
  authors' whole model (122-124 ms beside ours).
- BatchNorm folded into the convolutions for the TensorFlow graph (`graph_folded`): 1-6%
  faster than `graph` (120.4 against 124.8 ms in the run below, 124.0 against 125.5 ms in an
  interleaved run beside the authors' 121.9 ms).
- Float32 3x3 convolutions as Winograd F(2x2, 3x3) (`tflite_fp32_winograd`,
  `keras_dta.export.winograd`): XNNPACK runs its sixteen matrix products as dense GEMMs,
  much faster than its float32 convolution here. One convolution, direct against Winograd
  (ms, batch 6, 2 threads): 32x32x16 0.19 / 0.71, 32x32x32 0.53 / 0.91, 32x32x64 2.17 / 2.28,
  16x16x64 0.57 / 0.62, 16x16x128 2.21 / 1.31, 32x32x128 8.70 / 5.27, 16x16x256 8.61 / 3.74,
  8x8x256 2.61 / 1.13, 8x8x512 10.08 / 3.50: it pays from 128 channels (`min_channels`). The
  whole model: 94.0 against 151.2 ms; beside the authors' model 93.7 against their 122.3 ms
  (0.77; README). Kept as the float32 export's `winograd=True` option (not the default: its
  rounding differs more from TensorFlow's than the direct convolution's; README, Export).
  Under `tf.function` (oneDNN) it did not pay (194 against 201 ms, measured while the machine
  was busy).
- The TensorFlow graph with its weights frozen into constants (`graph_frozen`,
  `keras_dta.export.inference_function`): 118.7 ms against 127.5 ms for `graph`, and 113.5 ms
  with BatchNorm folded as well (121.7 ms folded alone; interleaved, in one process); beside
  the authors' model (README), 116.2 ms against their 122.9 ms (0.95; plain `tf.function`
  129.0 ms, 1.05). Kept as `inference_function`.
- TFLite float32 without XNNPACK (the interpreter's own kernels): 618 ms against 152 ms.
- XNNPACK's latest features (`experimental_default_delegate_latest_features=True` in the
  LiteRT interpreter): the same outputs and no change in latency (41.2 against 40.9 ms
  dynamic-range, 150.9 against 150.7 ms float32).
- The spike as `greater`/`cast` and the reset as `where` in the TensorFlow graph (5 ops a
  step instead of 8): no faster (129.3 against 125.7 ms); the graph is bound by its
  convolutions, not by the LIF's element-wise ops.
- UNPACK/PACK (the LIF's time steps), TILE (repeating the image) and the 1x1 max pool of
  the strided shortcut also fell outside XNNPACK; inference now slices and concatenates,
  RepeatTime concatenates and `Subsample2D` reshapes and slices.

Usage:

    python benchmarks/inference.py --T 6 --batch_sizes 1 --num_threads 2 \
        --modes graph,graph_frozen,tflite_fp32,tflite_fp32_winograd,tflite_dynamic,tflite_int8 \
        --rounds 3 --runs 5
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

KERAS_MODES = ("eager", "predict", "graph", "graph_folded", "graph_frozen", "xla")
TFLITE_MODES = {
    "tflite_fp32": "none", "tflite_fp32_winograd": "none", "tflite_dynamic": "dynamic", "tflite_int8": "int8",
}

# REFERENCE.md, "Performance anchors": measured side by side on one 2-core machine whose
# float32 convolution peak was 408 GFLOP/s (T = 6, batch 1, 32x32, 100 classes, 2 threads).
ANCHOR_PEAK_GFLOPS = 408.0
ANCHOR_AUTHORS_MS = 79.8
ANCHOR_ONNX_INT8_MS = (26.6, 30.1)


def _keras_runner(model, mode, backend):
    import numpy as np  # noqa: PLC0415

    if mode == "eager":
        return lambda x: np.asarray(model(x, training=False))
    if mode == "predict":
        return lambda x: np.asarray(model.predict_on_batch(x))
    if backend != "tensorflow":
        raise ValueError(f"Mode {mode!r} needs the TensorFlow backend. Received: backend={backend}")
    import tensorflow as tf  # noqa: PLC0415

    if mode == "graph_frozen":
        from keras_dta import export  # noqa: PLC0415

        frozen = export.inference_function(model, batch_size=None)
        return lambda x: frozen(x).numpy()
    if mode == "graph_folded":
        from keras_dta import export  # noqa: PLC0415

        model = export.fold_batchnorm(model)
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

    return run, delegate, export.delegate_summary(interpreter)


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--T", type=int, default=6, help="time steps")
    parser.add_argument("--attn", default="dta", choices=("dta", "txa", "tna", "none"))
    parser.add_argument("--num_classes", type=int, default=100)
    parser.add_argument("--batch_sizes", default="1", help="comma list; 1 gives latency")
    parser.add_argument("--modes", default="graph,tflite_fp32,tflite_dynamic,tflite_int8", help="comma list of modes")
    parser.add_argument("--num_threads", type=int, default=2, help="TFLite interpreter threads")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5, help="timed calls per mode and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the modes")
    parser.add_argument("--calibration_steps", type=int, default=8, help="int8 calibration images")
    parser.add_argument("--adapt_bn_steps", type=int, default=10,
                        help="training-mode passes setting the BatchNorm statistics (see the docstring)")
    parser.add_argument("--tflite_dir", default=None, help="keep the .tflite files here")
    parser.add_argument("--no_peak", action="store_true", help="skip measuring the float32 peak")
    parser.add_argument("--output", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in args.modes:
        if m not in KERAS_MODES + tuple(TFLITE_MODES):
            parser.error(f"Unknown mode. Received: {m}; expected one of {KERAS_MODES + tuple(TFLITE_MODES)}")
    args.batch_sizes = common.parse_list(args.batch_sizes)
    if min(args.T, args.runs, args.rounds, args.num_threads, *args.batch_sizes or [0]) < 1 or args.warmup < 0:
        parser.error("--T, --runs, --rounds, --num_threads and --batch_sizes must be positive, --warmup >= 0.")
    return args


def _build_runners(args, model, backend, rng):
    """`[(row, run, x)]` for every mode and batch size; conversions happen here."""
    from keras_dta import export  # noqa: PLC0415

    input_shape = tuple(model.inputs[0].shape[1:])
    calibration = rng.normal(size=(args.calibration_steps, *input_shape)).astype("float32")
    runners = []
    for mode in args.modes:
        for batch_size in args.batch_sizes:
            x = rng.normal(size=(batch_size, *input_shape)).astype("float32")
            row = {"backend": backend, "mode": mode, "T": args.T, "batch_size": batch_size}
            if mode in TFLITE_MODES:
                start = time.perf_counter()
                flatbuffer = export.convert_to_tflite(
                    model, quantize=TFLITE_MODES[mode], calibration_data=calibration,
                    num_calibration=args.calibration_steps, batch_size=batch_size,
                    winograd=mode.endswith("_winograd"))
                row["convert_s"] = time.perf_counter() - start
                if args.tflite_dir:
                    name = f"ms_resnet18_{args.attn}_T{args.T}_{mode}_b{batch_size}.tflite"
                    common.write_bytes(os.path.join(args.tflite_dir, name), flatbuffer)
                run, row["delegate"], summary = _tflite_runner(flatbuffer, args.num_threads)
                row.update(num_threads=args.num_threads, tflite_mb=len(flatbuffer) / 1e6, **summary)
                print(f"{mode} batch={batch_size}: converted in {row['convert_s']:.0f} s; XNNPACK "
                      f"{summary['partitions']} partition(s), outside: {summary['ops_outside'] or 'nothing'}", flush=True)
            else:
                run = _keras_runner(model, mode, backend)
            runners.append((row, run, x))
    return runners


def _time_interleaved(args, runners):
    """Every runner `--runs` times per round, for `--rounds` rounds; returns the rows."""
    for row, run, x in runners:
        common.time_calls(lambda: run(x), runs=1, warmup=args.warmup)
        row["times_s"], row["cpu_s"] = [], []
    for _ in range(args.rounds):
        for row, run, x in runners:
            wall, cpu = common.time_calls(lambda: run(x), runs=args.runs, warmup=0)
            row["times_s"] += wall
            row["cpu_s"] += cpu
    rows = []
    for row, _, _ in runners:
        row.update(common.summarize(row["times_s"], row["cpu_s"]))
        row["latency_ms"] = row["median_s"] * 1e3
        row["images_per_s"] = row["batch_size"] / row["median_s"]
        rows.append(row)
    return rows


def main(argv=None):
    args = _parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    import keras_dta  # noqa: PLC0415

    backend = keras.backend.backend()
    if any(m in TFLITE_MODES for m in args.modes) and backend != "tensorflow":
        sys.exit(f"TFLite modes need KERAS_BACKEND=tensorflow. Received: backend={backend}")
    peak = None if args.no_peak or backend != "tensorflow" else common.conv_peak_gflops()
    authors_ms = None if peak is None else ANCHOR_AUTHORS_MS * ANCHOR_PEAK_GFLOPS / peak
    if peak is not None:
        onnx = [ms * ANCHOR_PEAK_GFLOPS / peak for ms in ANCHOR_ONNX_INT8_MS]
        print(f"float32 conv peak P = {peak:.0f} GFLOP/s; estimated from REFERENCE.md's anchors (scaled by "
              f"408 / P, not measured here): authors' PyTorch {authors_ms:.1f} ms, its ONNX Runtime int8 "
              f"{onnx[0]:.1f}-{onnx[1]:.1f} ms; the 1/3 target {authors_ms / 3:.1f} ms", flush=True)
    keras.utils.set_random_seed(0)
    model = keras_dta.models.ms_resnet18(attn=args.attn, T=args.T, num_classes=args.num_classes)
    rng = np.random.default_rng(0)
    for _ in range(args.adapt_bn_steps):
        model(rng.normal(size=(4, *model.inputs[0].shape[1:])).astype("float32"), training=True)
    rows = _time_interleaved(args, _build_runners(args, model, backend, rng))
    for row in rows:
        row["vs_authors_scaled"] = None if authors_ms is None or row["batch_size"] != 1 else row["latency_ms"] / authors_ms
        row["load_average"] = os.getloadavg()
    columns = [
        ("mode", "mode", None), ("T", "T", None), ("batch_size", "batch", None),
        ("latency_ms", "ms/batch", "{:.1f}"), ("min_s", "min s", "{:.4f}"),
        ("images_per_s", "images/s", "{:.2f}"), ("median_cpu_s", "CPU s/batch", "{:.3f}"),
        ("partitions", "partitions", None), ("vs_authors_scaled", "x authors (scaled)", "{:.2f}"),
        ("tflite_mb", "MB", "{:.1f}"),
    ]
    print(common.format_table(rows, columns))
    common.write_json(args.output, {
        "benchmark": "inference", "model": "ms_resnet18", "attn": args.attn, "T": args.T,
        "num_classes": args.num_classes, "conv_peak_gflops": peak, "authors_ms_scaled": authors_ms,
        "peak_rss_mib": common.peak_rss_mib(), "machine": common.machine_info(), "results": rows,
    })


if __name__ == "__main__":
    main()
