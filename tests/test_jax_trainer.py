"""The trainer on Keras's JAX backend: a compiled run end to end, data-parallel over two
(virtual CPU) devices, and the same artifacts as on TensorFlow, exported from the JAX run."""

import csv
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jax", reason="the JAX backend needs jax: `pip install -e '.[test]'`")

REPO = pathlib.Path(__file__).resolve().parents[1]
TWO_DEVICES = "--xla_force_host_platform_device_count=2"


def jax_env(**extra):
    return {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "XLA_FLAGS": TWO_DEVICES,
            "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def run(cmd, env, cwd):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def test_data_parallel_step_equals_one_device_step_without_tensorflow(tmp_path):
    run([sys.executable, str(REPO / "tests" / "jax_parallel_check.py"), str(tmp_path)], jax_env(), REPO)
    check = json.loads((tmp_path / "check.json").read_text())
    assert check["devices"] == 2 and check["replicas"] == 2
    assert set(check["devices_per_variable"]) == {2}  # every variable replicated on both devices
    assert not check["tensorflow_imported"]
    step = np.load(tmp_path / "step.npz")
    moved = 0
    for key in step.files:
        if key.startswith("single_"):
            other = "parallel_" + key[len("single_"):]
            # One XLA program over the global batch either way (BatchNorm statistics too);
            # only the order of the reductions differs.
            np.testing.assert_allclose(step[other], step[key], rtol=1e-5, atol=1e-6, err_msg=key)
        if key.startswith("single_w"):
            moved += not np.allclose(step[key], step["initial_w" + key[len("single_w"):]])
    assert moved > 10  # the step did train
    # benchmarks/gpu_jax.py times the trainer's step, here data-parallel.
    assert check["bench_devices"] == 2 and check["bench_images_per_s"] > 0
    assert "KERAS_DISTRIBUTION_JOB_ADDRESSES" in check["multi_worker_error"]


def _history(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def test_jax_run_on_two_devices_ends_with_the_tensorflow_artifacts(tmp_path):
    """`KERAS_BACKEND=jax trainers/fit.py --distribute mirrored`: compiled, data-parallel, it
    trains and ends with the SavedModel, statistics and a TFLite export of its `.keras` file,
    all made on TensorFlow from the JAX run. (The step checkpoint a resume reads is tested on
    JAX in test_jax_backend.py.)"""
    import keras

    run_dir = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "trainers" / "fit.py"), f"--model_dir={run_dir}", "--epochs=3",
           "--steps_per_epoch=15", "--batch_size=16", "--distribute=mirrored", "--seed=1"]
    proc = run(cmd, jax_env(), tmp_path)
    assert "jit_compile=True" in proc.stderr and "on 2 replica(s)" in proc.stderr

    results = json.loads((run_dir / "results.json").read_text())
    assert results["num_replicas"] == 2 and results["optimizer_iterations"] == 45
    rows = _history(run_dir)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert results["test_accuracy"] > 0.2  # 10 classes, chance 0.1; 45 small steps reach about 0.3
    assert (run_dir / "spike_stats.json").exists()

    # The SavedModel of the JAX run (exported in a TensorFlow process) serves the best model.
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        from keras_dta import export

        best = export.load_model(str(run_dir / "best.keras"))
        x = np.random.default_rng(0).uniform(0, 1, (4, *best.input_shape[1:])).astype("float32")
        serve = tf.saved_model.load(str(run_dir / "saved_model")).signatures["serve"]
        got = list(serve(tf.constant(x)).values())[0].numpy()
        np.testing.assert_allclose(got, keras.ops.convert_to_numpy(best(x, training=False)), atol=1e-4)

    # The export CLI runs on TensorFlow whatever KERAS_BACKEND says.
    out = run([sys.executable, str(REPO / "export" / "tflite.py"), f"--model={run_dir / 'best.keras'}",
               f"--output={tmp_path / 'jax_run.tflite'}", "--dataset=digits", "--num_eval=64", "--runs=0",
               "--nospike_report"], jax_env(), tmp_path)
    assert (tmp_path / "jax_run.tflite").stat().st_size > 0
    assert "top-1 agree" in out.stdout
