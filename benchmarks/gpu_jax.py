"""Training throughput and peak accelerator memory of MS-ResNet-18 + DTA on JAX (for a GPU).

A self-contained script for a GPU session: KERAS_BACKEND=jax, bfloat16 compute through the
Keras `mixed_bfloat16` policy (float32 variables), T = 6, batch 64, 32x32 inputs. The training
step is the standard Keras 3 stateless JAX step (`model.stateless_call`, `jax.value_and_grad`,
`optimizer.stateless_apply`) under one `jax.jit` with the state buffers donated, on inputs
already on the device, so it measures the model and not the input pipeline.

Reports images/s (median over `--runs` timed runs of `--steps` steps each, after the
compiling warm-up) and the peak device memory (`device.memory_stats()["peak_bytes_in_use"]`,
which counts the bytes the allocator actually handed out, with or without pre-allocation).

Targets on one H200: >= 3500 images/s with < 7 GiB (the authors' PyTorch code: 680 images/s,
13.9 GiB).

Usage (GPU):

    python benchmarks/gpu_jax.py --output gpu_jax.json

CPU smoke test (tiny widths, a few seconds):

    python benchmarks/gpu_jax.py --tiny --T 2 --batch_size 2 --steps 2 --runs 2 --warmup 1
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


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--T", type=int, default=6)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--dtype", default="mixed_bfloat16", choices=("mixed_bfloat16", "float32"))
    parser.add_argument("--attn", default="dta", choices=("dta", "txa", "tna", "none"))
    parser.add_argument("--num_classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed run")
    parser.add_argument("--runs", type=int, default=5, help="timed runs; the median is reported")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (the first compiles)")
    parser.add_argument("--tiny", action="store_true", help="small widths, for a CPU smoke test")
    parser.add_argument("--output", default=None, help="JSON file for the result")
    args = parser.parse_args(argv)
    for name in ("T", "batch_size", "steps", "runs", "warmup"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1. Received: {getattr(args, name)}")
    return args


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

    import keras_dta  # noqa: PLC0415

    device = jax.devices()[0]
    keras.mixed_precision.set_dtype_policy(args.dtype)
    keras.utils.set_random_seed(0)
    widths = dict(stem_filters=16, stage_filters=(16, 32, 64)) if args.tiny else {}
    model = keras_dta.models.ms_resnet18(attn=args.attn, T=args.T, num_classes=args.num_classes,
                                         input_shape=(32, 32, 3), **widths)
    optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)
    loss_object = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def loss_fn(trainable, non_trainable, x, y):
        logits, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return loss_object(y, logits), non_trainable

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def train_step(state, x, y):
        trainable, non_trainable, opt_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, y)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return (trainable, non_trainable, opt_vars), loss

    train_step = jax.jit(train_step, donate_argnums=0)
    # Committed to the device like the step's outputs, so the second call does not retrace.
    state = jax.device_put((
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    ), device)
    rng = np.random.default_rng(0)
    x = jax.device_put(rng.normal(size=(args.batch_size, 32, 32, 3)).astype("float32"), device)
    y = jax.device_put(rng.integers(0, args.num_classes, size=(args.batch_size,)).astype("int32"), device)

    start = time.perf_counter()
    state, loss = train_step(state, x, y)
    loss.block_until_ready()
    compile_s = time.perf_counter() - start
    for _ in range(args.warmup - 1):
        state, loss = train_step(state, x, y)
    loss.block_until_ready()

    compiles = train_step._cache_size() if hasattr(train_step, "_cache_size") else None
    run_s = []
    for _ in range(args.runs):
        start = time.perf_counter()
        for _ in range(args.steps):
            state, loss = train_step(state, x, y)
        loss.block_until_ready()
        run_s.append(time.perf_counter() - start)
    median_s = statistics.median(run_s)
    if compiles is not None and train_step._cache_size() != compiles:
        print(f"warning: the step was compiled again while timing ({train_step._cache_size()} versions)")
    images_per_s = args.batch_size * args.steps / median_s
    loss_value = float(loss)
    if not np.isfinite(loss_value):
        raise SystemExit(f"Non-finite loss after training: {loss_value}")

    stats = device.memory_stats() or {} if device.platform != "cpu" else {}
    peak = stats.get("peak_bytes_in_use")
    peak_gib = None if peak is None else peak / 2**30
    result = {
        "benchmark": "gpu_jax_train", "model": "ms_resnet18", "attn": args.attn, "tiny": args.tiny,
        "T": args.T, "batch_size": args.batch_size, "dtype": args.dtype,
        "device": f"{device.platform}:{getattr(device, 'device_kind', '')}",
        "jax": jax.__version__, "keras": keras.__version__,
        "compile_s": compile_s, "compiled_versions": compiles, "steps_per_run": args.steps, "run_s": run_s,
        "images_per_s": images_per_s, "peak_gib": peak_gib, "final_loss": loss_value,
        "targets": {"images_per_s": TARGET_IMAGES_PER_S, "peak_gib": TARGET_PEAK_GIB},
        "reference_pytorch": REFERENCE,
        "meets_throughput_target": images_per_s >= TARGET_IMAGES_PER_S,
        "meets_memory_target": None if peak_gib is None else peak_gib < TARGET_PEAK_GIB,
    }
    print(f"device {result['device']}  T={args.T} batch={args.batch_size} {args.dtype} "
          f"attn={args.attn}{' (tiny)' if args.tiny else ''}")
    print(f"compile {compile_s:.1f} s; runs of {args.steps} steps: {[round(t, 3) for t in run_s]} s")
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
