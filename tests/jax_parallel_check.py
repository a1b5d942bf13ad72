"""The trainer's step on JAX, on one device and data-parallel over two, without TensorFlow.

`python tests/jax_parallel_check.py OUT_DIR`, with KERAS_BACKEND=jax and
XLA_FLAGS=--xla_force_host_platform_device_count=2, blocks `import tensorflow`, then:

1. builds the trainer's compiled model (`keras_dta.training.compile_model`, the digits recipe,
   small widths) and takes one seeded training step on one device;
2. builds it again under the trainer's `--distribute mirrored` distribution (both devices),
   loads the same initial weights and takes the same step;
3. runs `benchmarks/gpu_jax.py` (the trainer's step timed by `model.fit`) data-parallel;
4. asks for `--distribute multi_worker` without its environment variables.

It writes `OUT_DIR/step.npz` (both steps' weights and optimizer variables, the device count of
every parallel variable) and `OUT_DIR/check.json`; the test compares them.
"""

import json
import os
import pathlib
import sys

sys.modules["tensorflow"] = None  # the trainer's step must not need TensorFlow

import numpy as np  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def one_step(model, x, y):
    model.train_on_batch(x, y)
    return [np.asarray(v) for v in model.get_weights()], [np.asarray(v.value) for v in model.optimizer.variables]


def main(out_dir):
    import jax
    import keras

    from keras_dta import training
    from keras_dta.training import jax_parallel

    out_dir = pathlib.Path(out_dir)
    config = training.make_config(
        "digits", T=2, batch_size=8, jit_compile=True,
        model_kwargs={"stem_filters": 8, "stage_filters": [8, 16], "stage_blocks": [1, 1],
                      "stage_strides": [1, 2]},
    ).validate()
    spec = training.loop.dataset_spec(config)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 2, (8, *spec.input_shape(config.T))).astype("float32")
    y = np.eye(spec.num_classes, dtype="float32")[rng.integers(0, spec.num_classes, 8)]

    keras.utils.set_random_seed(0)
    single = training.compile_model(config, 10, spec, jit_compile=True)
    initial = single.get_weights()
    single_weights, single_opt = one_step(single, x, y)

    strategy = training.make_strategy("mirrored")
    with strategy.scope():
        parallel = training.compile_model(config, 10, spec, jit_compile=True)
        parallel.set_weights(initial)
        parallel_weights, parallel_opt = one_step(parallel, x, y)
    devices_per_variable = [len(v.value.sharding.device_set) for v in parallel.weights]

    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_jax

    bench = gpu_jax.main(["--tiny", "--T", "2", "--batch_size", "4", "--steps", "2", "--runs", "1",
                          "--distribute", "mirrored", "--output", str(out_dir / "bench.json")])
    try:
        jax_parallel.make_distribution("multi_worker")
        multi_worker_error = None
    except ValueError as error:
        multi_worker_error = str(error)

    np.savez(
        out_dir / "step.npz",
        **{f"single_w{i}": w for i, w in enumerate(single_weights)},
        **{f"parallel_w{i}": w for i, w in enumerate(parallel_weights)},
        **{f"single_o{i}": w for i, w in enumerate(single_opt)},
        **{f"parallel_o{i}": w for i, w in enumerate(parallel_opt)},
        **{f"initial_w{i}": w for i, w in enumerate(initial)},
    )
    check = {
        "devices": len(jax.devices()),
        "replicas": strategy.num_replicas_in_sync,
        "devices_per_variable": devices_per_variable,
        "tensorflow_imported": "tensorflow" in sys.modules and sys.modules["tensorflow"] is not None,
        "bench_devices": bench["devices"],
        "bench_images_per_s": bench["images_per_s"],
        "multi_worker_error": multi_worker_error,
    }
    (out_dir / "check.json").write_text(json.dumps(check))


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "jax")
    main(sys.argv[1])
