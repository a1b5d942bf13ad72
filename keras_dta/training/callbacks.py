"""The trainer's callbacks: stop on a non-finite loss, back up for preemption, keep the
best and the last model."""

import json
import logging
import math
import os

import keras
from keras import ops

from keras_dta import files

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def iterations(optimizer):
    """The optimizer's step count as an int (also for a mirrored variable)."""
    return int(ops.convert_to_numpy(optimizer.iterations.value))


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises `NonFiniteLossError` at the first batch whose loss is NaN or inf.

    Raising (rather than `stop_training`, as `keras.callbacks.TerminateOnNaN`
    does) skips the end-of-training hooks, so no callback writes the broken
    weights and the backup and the best and last models stay as they were.
    It must come before the checkpointing callbacks.
    """

    def __init__(self, model_dir=None):
        super().__init__()
        self.model_dir = model_dir
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if not math.isfinite(loss):
            step = iterations(self.model.optimizer)
            raise NonFiniteLossError(
                f"The training loss became {loss} at step {step} (epoch {self._epoch + 1}, "
                f"batch {batch + 1}). Training stopped; the last good backup and "
                f"models in {self.model_dir} are kept. Try a lower --learning_rate "
                "or check the data."
            )


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that also resumes in the middle of an epoch.

    Keras restarts an interrupted epoch from its first batch, so with a step
    `save_freq` the optimizer would run more steps than an uninterrupted run.
    Here the epoch to resume is derived from the restored optimizer iterations
    (`iterations // steps_per_epoch`), and `train` runs the rest of a partial
    epoch first. The state at every epoch end is saved too, so the backup is
    never older than the last finished epoch. The backup is kept when training
    ends (`train` deletes it once the run is complete).
    """

    def __init__(self, backup_dir, steps_per_epoch, save_freq="epoch"):
        super().__init__(
            backup_dir, save_freq=save_freq, double_checkpoint=True, delete_checkpoint=False
        )
        self.steps_per_epoch = steps_per_epoch

    @property
    def exists(self):
        return os.path.exists(self._weights_path)

    def _load_model(self):
        super()._load_model()
        if self.exists:
            done = iterations(self.model.optimizer)
            self.model._initial_epoch = done // self.steps_per_epoch

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            self._save_model()


class RunCheckpoint(keras.callbacks.Callback):
    """Saves `last.keras` every epoch and `best.keras` on a new best test accuracy.

    Writes go through temporary files (a kill never leaves a half-written
    model). The best score so far is kept in `best.json`, so it survives a
    restart.
    """

    def __init__(self, model_dir, monitor="val_accuracy"):
        super().__init__()
        self.model_dir = model_dir
        self.monitor = monitor
        self.best_path = os.path.join(model_dir, "best.keras")
        self.last_path = os.path.join(model_dir, "last.keras")
        self.best_json = os.path.join(model_dir, "best.json")
        self.best = None
        self.last = None

    def on_train_begin(self, logs=None):
        if os.path.exists(self.best_json):
            with open(self.best_json) as f:
                self.best = json.load(f)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.last = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}}
        files.save_model(self.model, self.last_path)
        value = logs.get(self.monitor)
        if value is None:
            return
        if self.best is None or float(value) > self.best[self.monitor]:
            files.save_model(self.model, self.best_path)
            self.best = dict(self.last)
            files.write_json(self.best_json, self.best)
            logger.info(
                "Epoch %d: new best %s %.4f, saved %s",
                epoch + 1,
                self.monitor,
                float(value),
                self.best_path,
            )
