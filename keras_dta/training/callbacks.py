"""The trainer's callbacks: stop on a non-finite loss; commit each epoch to the step
checkpoint and keep the best and the last model."""

import logging
import math
import os
import time

import keras

from keras_dta import files
from keras_dta.training import checkpoint

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def iterations(optimizer):
    """The optimizer's step count as an int (also for a mirrored variable)."""
    # Variable.numpy(), not convert_to_numpy(variable.value): the latter fails on a
    # MirroredVariable read inside MultiWorkerMirroredStrategy's scope (as in fit).
    return int(optimizer.iterations.numpy())


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


class RunCheckpoint(keras.callbacks.Callback):
    """Commits each epoch (and every `backup_freq` steps) to the run's step checkpoint.

    At an epoch's end: `last.keras`, and `best.keras` on a new best `monitor`, are saved
    under pending names; the checkpoint (model, optimizer, progress) is written, which
    commits the epoch; then the pending models are renamed into place and `best.json` and
    `history.csv` rewritten from the progress (`keras_dta.training.checkpoint.publish`).
    Between epochs, every `backup_freq` steps, only the checkpoint is written, never on an
    epoch's last step (that epoch's end is still to come).

    Args:
        model_dir: the directory of the run's files.
        store: a `StepCheckpoint`.
        steps_per_epoch: steps of a full epoch.
        backup_freq: `"epoch"` or a number of steps.
        progress: the progress to continue from (see `checkpoint.new_progress`).
        monitor: the metric whose highest value is the best model.
    """

    def __init__(self, model_dir, store, steps_per_epoch, backup_freq="epoch", progress=None,
                 monitor="val_accuracy"):
        super().__init__()
        self.model_dir = model_dir
        self.store = store
        self.steps_per_epoch = steps_per_epoch
        self.backup_freq = backup_freq
        self.progress = progress or checkpoint.new_progress()
        self.monitor = monitor
        self.best_path = os.path.join(model_dir, "best.keras")
        self.last_path = os.path.join(model_dir, "last.keras")
        self.ran = False  # whether an epoch ended in this process
        self._epoch = 0

    def on_train_begin(self, logs=None):
        # Wall time of the run so far (training and evaluation, over every resume).
        self._started = time.monotonic()
        self._seconds_before = self.progress.get("seconds", 0.0)

    def _seconds(self):
        return round(self._seconds_before + time.monotonic() - self._started, 1)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    @property
    def best(self):
        return self.progress["best"]

    def on_train_batch_end(self, batch, logs=None):
        if self.backup_freq == "epoch":
            return
        step = iterations(self.model.optimizer)
        if step % self.backup_freq == 0 and step % self.steps_per_epoch:
            self.progress = {**self.progress, "step": step, "seconds": self._seconds()}
            self.store.save(self.model, self.progress, epoch=self._epoch + 1)

    def on_epoch_end(self, epoch, logs=None):
        values = {k: float(v) for k, v in (logs or {}).items()}
        seconds = self._seconds()
        record = {"epoch": epoch + 1, **values}
        best = self.progress["best"]
        value = values.get(self.monitor)
        new_best = value is not None and (best is None or value > best[self.monitor])
        files.save_model(self.model, checkpoint.pending_model(self.model_dir, "last", epoch + 1))
        if new_best:
            files.save_model(self.model, checkpoint.pending_model(self.model_dir, "best", epoch + 1))
            best = record
        progress = {
            "step": iterations(self.model.optimizer),
            "epochs_done": epoch + 1,
            "best": best,
            "history": [
                *self.progress["history"], {"epoch": epoch, **values, "elapsed_s": seconds}
            ],
            "seconds": seconds,
        }
        files.crash_test_point("before_commit", epoch + 1)
        self.store.save(self.model, progress, epoch=epoch + 1)  # the commit point
        files.crash_test_point("after_commit", epoch + 1)
        self.progress = progress
        self.ran = True
        checkpoint.publish(self.model_dir, progress)
        if new_best:
            logger.info(
                "Epoch %d: new best %s %.4f, saved %s", epoch + 1, self.monitor, value,
                self.best_path,
            )
