"""The layers run on Keras's JAX backend and give TensorFlow's numbers."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import train_step_check

pytest.importorskip("jax", reason="the JAX backend needs jax: `pip install -e '.[test]'`")

TESTS = pathlib.Path(__file__).resolve().parent


def run_jax(*args):
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, *args], env=env, cwd=TESTS.parent, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def assert_pass_on_jax(*test_ids):
    out = run_jax("-m", "pytest", "-q", "-p", "no:cacheprovider", *test_ids)
    # Every test ran and passed: a test that skipped in the subprocess (fixtures not found
    # there) must not count as a pass.
    assert " passed" in out and " failed" not in out, out[-2000:]
    assert "skipped" not in out, out[-2000:]


def test_fixture_tests_pass_on_jax():
    from helpers import FIXTURES

    if not FIXTURES.exists():
        pytest.skip(f"reference fixtures {FIXTURES} are absent (they live in ../shared/fixtures)")
    assert_pass_on_jax("tests/test_dta.py::test_dta_matches_reference_fixture",
                       "tests/test_lif.py::test_lif_matches_reference_fixture",
                       "tests/test_lif.py::test_stateful_chunks_equal_whole_sequence_and_reset",
                       "tests/test_surrogates.py")


def test_layer_harness_and_step_checkpoint_on_jax():
    """The shared layer harness (TimeFold passing `training` included), the trainer's
    backend-neutral step checkpoint and training on the int8 grid run on JAX too."""
    assert_pass_on_jax("tests/test_lif.py::test_lif_layer_harness",
                       "tests/test_dta.py::test_dta_layer_harness",
                       "tests/test_time.py",
                       "tests/test_checkpoint.py::test_unreadable_backups_start_over_with_a_warning",
                       "tests/test_grid.py::test_grid_conv_convolves_with_the_rounded_kernel_and_passes_the_gradient_through",
                       "tests/test_grid.py::test_a_grid_model_trains_and_stays_on_the_grid")


def test_training_step_matches_tensorflow(tmp_path):
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("compares against the TensorFlow backend")
    model = train_step_check.build()
    model.save_weights(tmp_path / "init.weights.h5")
    expected = train_step_check.step(tmp_path / "init.weights.h5")
    run_jax(str(TESTS / "train_step_check.py"), str(tmp_path / "init.weights.h5"), str(tmp_path / "jax.npz"))
    got = np.load(tmp_path / "jax.npz")
    np.testing.assert_allclose(got["logits"], expected["logits"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-5)
    changed = 0
    for key in expected:
        if key.startswith("w"):
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-4, atol=1e-5, err_msg=key)
            changed += not np.array_equal(expected[key], np.asarray(model.get_weights()[int(key[1:])]))
    assert changed > 10  # the step did move the weights
