"""The run directory survives a kill at any moment (issue 10, items 1-4).

Each crash test kills a real `trainers/fit.py` at a named point
(`KERAS_DTA_TEST_KILL_AT`, see `keras_dta.files.crash_test_point`), checks that the run
directory is consistent, reruns the same command and checks the run ends right.
"""

import csv
import glob
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_dta import files
from keras_dta.training import checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS, STEPS = 2, 3


def run_fit(run, kill_at=None, *flags):
    cmd = [
        sys.executable, os.path.join(REPO, "trainers", "fit.py"), f"--model_dir={run}",
        f"--epochs={EPOCHS}", f"--steps_per_epoch={STEPS}", "--eval_steps=1", "--batch_size=8",
        "--firing_rate_freq=0", "--jit_compile=false", *flags,
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("KERAS_DTA_TEST_KILL_AT", None)
    if kill_at:
        env["KERAS_DTA_TEST_KILL_AT"] = kill_at
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    expected = files.KILLED_EXIT_CODE if kill_at else 0
    assert proc.returncode == expected, proc.stderr[-3000:]
    return proc.stderr


def history_epochs(run):
    path = os.path.join(run, "history.csv")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def assert_consistent(run, epochs_done, leftovers_allowed=False):
    """history.csv, best.json/best.keras and last.keras describe `epochs_done` epochs."""
    assert history_epochs(run) == list(range(epochs_done))
    if epochs_done:
        with open(os.path.join(run, "history.csv")) as f:
            accuracies = [float(row["val_accuracy"]) for row in csv.DictReader(f)]
        with open(os.path.join(run, "best.json")) as f:
            best = json.load(f)
        assert best["epoch"] == int(np.argmax(accuracies)) + 1
        assert best["val_accuracy"] == pytest.approx(max(accuracies))
        assert os.path.isfile(os.path.join(run, "best.keras"))
        last = keras.saving.load_model(os.path.join(run, "last.keras"))
        assert int(last.optimizer.iterations) == epochs_done * STEPS
    else:
        for name in ("best.json", "best.keras", "last.keras"):
            assert not os.path.exists(os.path.join(run, name)), name
    if not leftovers_allowed:
        assert not glob.glob(os.path.join(run, "pending-*")) + glob.glob(os.path.join(run, "**", ".tmp*"), recursive=True)


def assert_finished(run):
    assert_consistent(run, EPOCHS)
    with open(os.path.join(run, "results.json")) as f:
        results = json.load(f)
    with open(os.path.join(run, "best.json")) as f:
        best = json.load(f)
    assert results["optimizer_iterations"] == EPOCHS * STEPS
    assert (results["best_epoch"], results["test_accuracy"]) == (best["epoch"], best["val_accuracy"])
    assert not os.path.exists(os.path.join(run, "backup"))
    return results


def test_kill_while_writing_the_first_backup(tmp_path):
    run = tmp_path / "run"
    run_fit(run, "checkpoint_write:1")
    # The backup was being written under a temporary name: nothing describes epoch 1 yet.
    assert not os.path.exists(run / "backup" / checkpoint.LATEST)
    assert glob.glob(str(run / "backup" / ".tmp*"))
    assert_consistent(run, 0, leftovers_allowed=True)
    run_fit(run)
    assert_finished(run)


def test_kill_after_an_epoch_before_its_backup(tmp_path):
    run = tmp_path / "run"
    run_fit(run, "before_commit:2")
    # Epoch 2's models were staged, its backup not written: the directory says epoch 1.
    assert_consistent(run, 1, leftovers_allowed=True)
    stderr = run_fit(run)
    assert "Resuming after epoch 1 of 2: epoch 2 is next." in stderr
    assert_finished(run)  # one history row per epoch: epoch 2 ran again, once


def test_kill_after_the_backup_before_the_files_are_in_place(tmp_path):
    run = tmp_path / "run"
    run_fit(run, "after_commit:2")
    stderr = run_fit(run)
    assert "All 2 epochs of this run are trained" in stderr and "Resuming" not in stderr
    assert_finished(run)


def test_kill_during_the_final_export(tmp_path):
    run = tmp_path / "run"
    run_fit(run, "replace_dir", "--export")
    assert glob.glob(str(run / ".tmp-saved_model*"))
    assert not (run / "results.json").exists()
    stderr = run_fit(run, None, "--export")
    assert "All 2 epochs of this run are trained" in stderr
    assert_finished(run)  # results.json says what best.json and best.keras say
    assert (run / "saved_model" / "saved_model.pb").exists()


def test_truncated_backup_falls_back_to_the_previous_one(tmp_path):
    run = tmp_path / "run"
    # Backups after steps 1, 2, 3 (epoch 1), 4 and 5; killed at the end of epoch 2.
    run_fit(run, "before_commit:2", "--backup_freq=1")
    latest = run / "backup" / checkpoint.LATEST
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 3])
    stderr = run_fit(run, None, "--backup_freq=1")
    assert f"The backup {latest} is unreadable" in stderr
    # The previous backup is step 4: the first step of epoch 2 is done.
    assert "Resuming epoch 2 of 2 at step 1 of 3." in stderr
    assert_finished(run)


def _tiny_model():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    model.fit(np.ones((4, 3), "float32"), np.zeros((4, 2), "float32"), verbose=0)
    return model


def test_unreadable_backups_start_over_with_a_warning(tmp_path, caplog):
    model = _tiny_model()
    store = checkpoint.StepCheckpoint(str(tmp_path / "backup"))
    progress = {**checkpoint.new_progress(), "step": 1}
    store.save(model, progress)
    store.save(model, {**progress, "step": 2})
    saved = [w.copy() for w in model.get_weights()]
    fresh = _tiny_model()
    fresh.optimizer.build(fresh.trainable_variables)
    assert store.restore(fresh)["step"] == 2
    for a, b in zip(fresh.get_weights(), saved):
        np.testing.assert_array_equal(a, b)
    assert int(fresh.optimizer.iterations) == int(model.optimizer.iterations)
    # The momentum too (each model was fitted from its own random weights, so it differed).
    momentum = [v for v in model.optimizer.variables if "momentum" in v.path]
    assert momentum
    for a, b in zip(fresh.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)

    (tmp_path / "backup" / checkpoint.LATEST).write_bytes(b"")
    with caplog.at_level("WARNING"):
        assert store.restore(fresh)["step"] == 1
    assert str(tmp_path / "backup" / checkpoint.LATEST) in caplog.text
    (tmp_path / "backup" / checkpoint.PREVIOUS).write_text("not a checkpoint")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert store.restore(fresh) is None
    assert "starting over" in caplog.text and checkpoint.PREVIOUS in caplog.text
