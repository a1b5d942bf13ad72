"""Training throughput and peak memory of MS-ResNet-18 with DTA.

Every configuration (backend x T x batch size x XLA x dtype) runs in a fresh subprocess, so
that the peak-memory figure (the process's RSS high-water mark on CPU; the accelerator's peak
on GPU) belongs to that configuration alone. Each child builds the model, compiles it with
SGD (momentum 0.9) and cross-entropy on the time-averaged logits, does `--warmup` steps
(the first one traces and compiles), then times `--runs` steps of `train_on_batch` on random
32x32 images and reports the median.

Usage:

    python benchmarks/train_throughput.py --T 4,6 --batch_size 8 --jit false,true \
        --backends tensorflow,jax --output results/train.json
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

_MARKER = "TRAIN_RESULT_JSON "


def _child(args):
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    import keras_dta  # noqa: PLC0415

    if args.dtype != "float32":
        keras.mixed_precision.set_dtype_policy(args.dtype)
    keras.utils.set_random_seed(0)
    model = keras_dta.models.ms_resnet18(attn=args.attn, T=args.T, num_classes=10, input_shape=(32, 32, 3))
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=args.jit if args.backend == "tensorflow" else True,
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch_size, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=(args.batch_size,))

    def step():
        loss = model.train_on_batch(x, y)
        float(np.asarray(loss))  # wait for the step to finish (JAX dispatches asynchronously)

    first = common.time_calls(step, runs=1, warmup=0)[0][0]
    times, cpu = common.time_calls(step, runs=args.runs, warmup=max(args.warmup - 1, 0))
    result = {
        "backend": args.backend,
        "attn": args.attn,
        "T": args.T,
        "batch_size": args.batch_size,
        "jit_compile": args.jit if args.backend == "tensorflow" else True,
        "dtype": args.dtype,
        "first_step_s": first,
        **common.summarize(times, cpu),
        "step_times_s": times,
        "step_cpu_s": cpu,
        "images_per_s": args.batch_size / common.summarize(times)["median_s"],
        "cpu_s_per_image": common.summarize(times, cpu)["median_cpu_s"] / args.batch_size,
        "peak_rss_mib": common.peak_rss_mib(),
        "peak_device_mib": _peak_device_mib(args.backend),
        "machine": common.machine_info(),
    }
    print(_MARKER + json.dumps(result, default=float), flush=True)


def _peak_device_mib(backend):
    """Peak accelerator memory, MiB, or None on CPU."""
    if backend == "tensorflow":
        import tensorflow as tf  # noqa: PLC0415

        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            return tf.config.experimental.get_memory_info(gpus[0].name)["peak"] / 2**20
    elif backend == "jax":
        import jax  # noqa: PLC0415

        device = jax.devices()[0]
        if device.platform != "cpu":
            stats = device.memory_stats() or {}
            if "peak_bytes_in_use" in stats:
                return stats["peak_bytes_in_use"] / 2**20
    return None


def _run_isolated(args, backend, T, batch_size, jit):
    cmd = [
        sys.executable, os.path.abspath(__file__), "--child",
        "--backend", backend, "--T", str(T), "--batch_size", str(batch_size),
        "--jit", str(jit).lower(), "--dtype", args.dtype, "--attn", args.attn,
        "--warmup", str(args.warmup), "--runs", str(args.runs),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(_MARKER):
            return json.loads(line[len(_MARKER):])
    sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
    return {"backend": backend, "T": T, "batch_size": batch_size, "jit_compile": jit,
            "dtype": args.dtype, "error": f"exit code {proc.returncode}"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="tensorflow", help="comma list of tensorflow, jax")
    parser.add_argument("--T", default="4,6", help="comma list of time steps")
    parser.add_argument("--batch_size", default="8", help="comma list of batch sizes")
    parser.add_argument("--jit", default="false,true", help="comma list; XLA jit_compile on TensorFlow")
    parser.add_argument("--dtype", default="float32", help="float32, mixed_bfloat16 or mixed_float16")
    parser.add_argument("--attn", default="dta", choices=("dta", "txa", "tna", "none"))
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps, the first compiles")
    parser.add_argument("--runs", type=int, default=3, help="timed steps; the median is reported")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per configuration")
    parser.add_argument("--output", default=None, help="JSON file for the results")
    # Internal: one configuration in this process.
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="tensorflow", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dtype not in ("float32", "mixed_bfloat16", "mixed_float16", "bfloat16"):
        parser.error(f"--dtype must be float32, mixed_bfloat16, mixed_float16 or bfloat16. Received: {args.dtype}")
    if args.warmup < 1 or args.runs < 1:
        parser.error(f"--warmup and --runs must be >= 1. Received: {args.warmup}, {args.runs}")

    if args.child:
        args.T, args.batch_size = int(args.T), int(args.batch_size)
        args.jit = common.parse_bool(args.jit)
        _child(args)
        return

    backends = parse_names(args.backends, ("tensorflow", "jax"), parser)
    results = []
    for backend in backends:
        jits = [common.parse_bool(j) for j in args.jit.split(",")] if backend == "tensorflow" else [True]
        for T in common.parse_list(args.T):
            for batch_size in common.parse_list(args.batch_size):
                for jit in jits:
                    result = _run_isolated(args, backend, T, batch_size, jit)
                    results.append(result)
                    print(_describe(result), flush=True)
    columns = [
        ("backend", "backend", None), ("T", "T", None), ("batch_size", "batch", None),
        ("jit_compile", "xla", None), ("dtype", "dtype", None),
        ("images_per_s", "images/s", "{:.2f}"), ("median_s", "step s", "{:.2f}"),
        ("first_step_s", "first s", "{:.1f}"), ("cpu_s_per_image", "CPU s/image", "{:.2f}"), ("peak_rss_mib", "peak RSS MiB", "{:.0f}"),
        ("peak_device_mib", "peak dev MiB", "{:.0f}"), ("error", "error", None),
    ]
    print(common.format_table(results, columns))
    common.write_json(args.output, {"benchmark": "train_throughput", "model": "ms_resnet18",
                                    "attn": args.attn, "input": [32, 32, 3], "results": results})


def parse_names(text, allowed, parser):
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        if n not in allowed:
            parser.error(f"Unknown backend. Received: {n}; expected one of {allowed}")
    return names


def _describe(r):
    if "error" in r:
        return f"{r['backend']} T={r['T']} batch={r['batch_size']} xla={r['jit_compile']}: {r['error']}"
    return (f"{r['backend']} T={r['T']} batch={r['batch_size']} xla={r['jit_compile']} {r['dtype']}: "
            f"{r['images_per_s']:.2f} images/s, steps {['%.2f' % t for t in r['step_times_s']]} s, "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
