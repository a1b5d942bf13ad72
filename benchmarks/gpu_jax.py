"""Training throughput and peak accelerator memory of the trainer's own step on JAX (for a GPU).

What is timed is what `KERAS_BACKEND=jax python trainers/fit.py` runs: the model, optimizer
(`CoupledSGD`, cosine schedule), loss and metric built by `keras_dta.training.compile_model`
from the CIFAR recipe, compiled with XLA as the trainer compiles it on JAX, trained by
`model.fit` (Keras's jitted JAX step, state donated between steps). Only the input differs:
random images and one-hot labels held in memory, so the figure is the model's and not the
JPEG decoder's. Defaults: T = 6, batch 64, 32x32, `mixed_bfloat16` (float32 variables).

Reports images/s (median over `--runs` epochs of `--steps` steps each, after a first epoch
that compiles) and the peak device memory (`device.memory_stats()["peak_bytes_in_use"]`,
the bytes the allocator handed out, with or without pre-allocation). With
`--distribute mirrored` the step is data-parallel over all local devices, as the trainer's.

Targets on one H200: >= 3500 images/s with < 7 GiB (the authors' PyTorch code: 680 images/s,
13.9 GiB).

Usage (GPU):

    python benchmarks/gpu_jax.py --output gpu_jax.json

CPU smoke test (tiny widths, a few seconds):

    python benchmarks/gpu_jax.py --tiny --T 2 --batch_size 2 --steps 2 --runs 2

TensorFlow is not needed: nothing here reads a dataset.
"""

import argparse
import json
import os
import statistics
import sys
import time

TARGET_IMAGES_PER_S = 3500.0
TARGET_PEAK_GIB = 7.0
REFERENCE = {"images_per_s": 680.0, "peak_gib": 13.9}
TINY_WIDTHS = {"stem_filters": 16, "stage_filters": [16, 32, 64]}


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--T", type=int, default=6)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--dtype", default="mixed_bfloat16", choices=("mixed_bfloat16", "float32"))
    parser.add_argument("--attn", default="dta", choices=("dta", "txa", "tna", "none"))
    parser.add_argument("--dataset", default="cifar10", choices=("cifar10", "cifar100"),
                        help="whose recipe and class count (no data is read)")
    parser.add_argument("--distribute", default="none", choices=("none", "auto", "mirrored"))
    parser.add_argument("--steps", type=int, default=20, help="steps per timed epoch")
    parser.add_argument("--runs", type=int, default=5, help="timed epochs; the median is reported")
    parser.add_argument("--tiny", action="store_true", help="small widths, for a CPU smoke test")
    parser.add_argument("--output", default=None, help="JSON file for the result")
    args = parser.parse_args(argv)
    for name in ("T", "batch_size", "steps", "runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1. Received: {getattr(args, name)}")
    return args


def _epoch_timer():
    import keras  # noqa: PLC0415

    class EpochTimer(keras.callbacks.Callback):
        """Wall seconds of each epoch (Keras reads the epoch's logs at its end, so the
        device work is done when `on_epoch_end` runs)."""

        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)
            self.last_logs = dict(logs or {})

    return EpochTimer()


def main(argv=None):
    args = _parse_args(argv)
    if "keras" in sys.modules and os.environ.get("KERAS_BACKEND", "jax") != "jax":
        raise SystemExit("Keras was already imported with another backend; run this as a script.")
    os.environ["KERAS_BACKEND"] = "jax"
    # Allocate on demand, so the process does not hold 75% of a shared GPU; the peak figure
    # comes from the allocator's bytes in use either way.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import jax  # noqa: PLC0415
    import keras  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from keras_dta import training  # noqa: PLC0415

    config = training.make_config(
        args.dataset, T=args.T, batch_size=args.batch_size, attn=args.attn,
        mixed_precision=args.dtype, distribute=args.distribute,
        model_kwargs=TINY_WIDTHS if args.tiny else None,
    ).validate()
    spec = training.loop.dataset_spec(config)
    strategy = training.make_strategy(config.distribute)
    jit_compile = training.distribute.resolve_jit_compile(config.jit_compile, strategy)
    keras.utils.set_random_seed(0)
    with training.dtype_policy(config.mixed_precision), strategy.scope():
        model = training.compile_model(config, args.steps, spec, jit_compile=jit_compile)

    rng = np.random.default_rng(0)
    n = args.batch_size * args.steps
    x = rng.normal(size=(n, *spec.input_shape(config.T))).astype("float32")
    y = np.eye(spec.num_classes, dtype="float32")[rng.integers(0, spec.num_classes, size=n)]
    timer = _epoch_timer()
    with strategy.scope():
        model.fit(x, y, batch_size=args.batch_size, epochs=1 + args.runs, shuffle=False,
                  callbacks=[timer], verbose=0)
    compile_s, run_s = timer.seconds[0], timer.seconds[1:]
    median_s = statistics.median(run_s)
    images_per_s = n / median_s
    loss_value = float(timer.last_logs["loss"])
    if not np.isfinite(loss_value):
        raise SystemExit(f"Non-finite loss after training: {loss_value}")

    device = jax.devices()[0]
    stats = (device.memory_stats() or {}) if device.platform != "cpu" else {}
    peak = stats.get("peak_bytes_in_use")
    peak_gib = None if peak is None else peak / 2**30
    result = {
        "benchmark": "gpu_jax_train", "model": config.model, "attn": args.attn, "tiny": args.tiny,
        "T": args.T, "batch_size": args.batch_size, "dtype": args.dtype,
        "devices": strategy.num_replicas_in_sync, "jit_compile": jit_compile,
        "device": f"{device.platform}:{getattr(device, 'device_kind', '')}",
        "jax": jax.__version__, "keras": keras.__version__,
        "first_epoch_s": compile_s, "steps_per_run": args.steps, "run_s": run_s,
        "images_per_s": images_per_s, "peak_gib": peak_gib, "final_loss": loss_value,
        "targets": {"images_per_s": TARGET_IMAGES_PER_S, "peak_gib": TARGET_PEAK_GIB},
        "reference_pytorch": REFERENCE,
        "meets_throughput_target": images_per_s >= TARGET_IMAGES_PER_S,
        "meets_memory_target": None if peak_gib is None else peak_gib < TARGET_PEAK_GIB,
    }
    print(f"device {result['device']} x{result['devices']}  T={args.T} batch={args.batch_size} "
          f"{args.dtype} attn={args.attn}{' (tiny)' if args.tiny else ''} jit_compile={jit_compile}")
    print(f"first epoch (compiles) {compile_s:.1f} s; epochs of {args.steps} steps: "
          f"{[round(t, 3) for t in run_s]} s")
    print(f"throughput {images_per_s:.1f} images/s (target {TARGET_IMAGES_PER_S:.0f}; "
          f"authors' code {REFERENCE['images_per_s']:.0f})")
    print("peak device memory " + ("n/a on CPU" if peak_gib is None else f"{peak_gib:.2f} GiB")
          + f" (target < {TARGET_PEAK_GIB} GiB; authors' code {REFERENCE['peak_gib']} GiB)")
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return result


if __name__ == "__main__":
    main()
