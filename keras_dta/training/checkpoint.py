"""The run's step checkpoint and the files that describe its progress.

One HDF5 file, `backup/latest.weights.h5`, holds the model's variables, the optimizer's
variables (its step count among them) and the run's progress as JSON: the step, the
epochs done, the best record so far, the wall time so far and the rows of `history.csv`
(each with `elapsed_s`, the run's wall time at that epoch's end). It is written to a
temporary name and renamed; the one it replaces is kept as `backup/previous.weights.h5`.
Only public Keras APIs are used (`model.weights`, `optimizer.variables`, `Variable.assign`),
so it works on every backend.

The checkpoint is the commit point of an epoch. What an epoch writes goes, in order:
its models staged under pending names (`pending-best-epoch3.keras`, ...), the checkpoint,
then the pending models renamed into place, `best.json` and `history.csv` rewritten from
the checkpoint's progress. A kill anywhere leaves files a rerun can repair: `publish`
does it again from the checkpoint it restored, and `remove_leftovers` deletes what a kill
left half written.
"""

import csv
import glob
import io
import json
import logging
import os
import shutil

import h5py
import numpy as np

from keras_dta import files

logger = logging.getLogger(__name__)

LATEST = "latest.weights.h5"
PREVIOUS = "previous.weights.h5"
_FORMAT = 1


def new_progress():
    """The progress of a run that has not started."""
    return {"step": 0, "epochs_done": 0, "best": None, "history": [], "seconds": 0.0}


def _numpy(variable):
    # Variable.numpy() also reads a MirroredVariable inside a strategy's scope.
    return np.asarray(variable.numpy())


def _write(path, model, progress):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = _FORMAT
        f.attrs["progress"] = json.dumps(progress)
        for group, variables in (("model", model.weights), ("optimizer", model.optimizer.variables)):
            g = f.create_group(group)
            for i, variable in enumerate(variables):
                g.create_dataset(f"{i:05d}", data=_numpy(variable))


def _read(path, model):
    """Reads and checks every array before any variable is assigned; returns the progress."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != _FORMAT:
            raise ValueError(f"unknown checkpoint format {f.attrs.get('format')!r}")
        progress = json.loads(f.attrs["progress"])
        values = {}
        for group, variables in (("model", model.weights), ("optimizer", model.optimizer.variables)):
            g = f[group]
            if len(g) != len(variables):
                raise ValueError(
                    f"{len(g)} {group} variables saved, the model has {len(variables)}"
                )
            arrays = [g[f"{i:05d}"][()] for i in range(len(variables))]
            for variable, array in zip(variables, arrays):
                if tuple(array.shape) != tuple(variable.shape):
                    raise ValueError(
                        f"{variable.path} has shape {tuple(variable.shape)}, saved {array.shape}"
                    )
            values[group] = list(zip(variables, arrays))
    for pairs in values.values():
        for variable, array in pairs:
            variable.assign(array)
    return progress


class StepCheckpoint:
    """The model, its optimizer and the run's progress in one file, with a fallback.

    Args:
        directory: the backup directory.
    """

    def __init__(self, directory):
        self.directory = directory
        self.latest = os.path.join(directory, LATEST)
        self.previous = os.path.join(directory, PREVIOUS)
        self.restored_from = None

    def save(self, model, progress, epoch=None):
        """Writes the checkpoint atomically; the one it replaces becomes the previous one.

        `epoch` (1-based, the epoch being trained) only names the moment for crash tests.
        """
        os.makedirs(self.directory, exist_ok=True)
        with files.atomic_path(self.latest) as tmp:
            _write(tmp, model, progress)
            files.crash_test_point("checkpoint_write", epoch)
            if os.path.exists(self.latest):
                os.replace(self.latest, self.previous)

    def restore(self, model):
        """Restores the newest readable checkpoint into `model`; returns its progress or None.

        An unreadable checkpoint never blocks a run: the previous one is tried, and if none
        is readable the run starts over, each time with a warning naming the file.
        """
        for path in (self.latest, self.previous):
            if not os.path.exists(path):
                continue
            try:
                progress = _read(path, model)
            except Exception as error:  # noqa: BLE001 - any damage means "not this one"
                fallback = "the previous one" if path == self.latest else "none: starting over"
                logger.warning(
                    "The backup %s is unreadable (%s: %s); using %s.",
                    path, type(error).__name__, error, fallback,
                )
                continue
            if path == self.previous:
                logger.warning("Resuming from the previous backup %s.", path)
            self.restored_from = path
            return progress
        return None

    def remove(self):
        if os.path.isdir(self.directory):
            shutil.rmtree(self.directory)


def pending_model(model_dir, kind, epoch):
    """Where an epoch's `best` or `last` model waits for its checkpoint."""
    return os.path.join(model_dir, f"pending-{kind}-epoch{epoch}.keras")


def remove_leftovers(*directories):
    """Deletes what a kill left half written: `.tmp*` files and folders.

    Pending models are not leftovers: `publish` puts the committed ones in place.
    """
    for directory in directories:
        for path in glob.glob(os.path.join(directory, ".tmp*")):
            logger.info("Removing %s, left over from an interrupted run.", path)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)


def _history_csv(rows):
    keys = sorted({k for row in rows for k in row if k != "epoch"})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["epoch", *keys], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def publish(model_dir, progress):
    """Brings the run's files in line with `progress` (the checkpoint just written or restored).

    Pending models of the committed epoch are renamed into place, `best.json` and
    `history.csv` are rewritten from the progress, other pending models are removed.
    """
    epoch, best = progress["epochs_done"], progress["best"]
    last_pending = pending_model(model_dir, "last", epoch)
    if os.path.exists(last_pending):
        os.replace(last_pending, os.path.join(model_dir, "last.keras"))
    best_json = os.path.join(model_dir, "best.json")
    if best is not None:
        best_pending = pending_model(model_dir, "best", best["epoch"])
        if os.path.exists(best_pending):
            os.replace(best_pending, os.path.join(model_dir, "best.keras"))
        files.write_json(best_json, best)
    elif os.path.exists(best_json):
        os.remove(best_json)
    history = os.path.join(model_dir, "history.csv")
    if progress["history"]:
        files.write_text(history, _history_csv(progress["history"]))
    elif os.path.exists(history):
        os.remove(history)
    for path in glob.glob(os.path.join(model_dir, "pending-*.keras")):
        os.remove(path)


def repair(model_dir, progress, from_previous=False):
    """Makes the run's files describe `progress`, the checkpoint a rerun restored.

    Args:
        model_dir: the run directory.
        progress: the restored progress (`new_progress()` when starting over).
        from_previous: the progress comes from the previous checkpoint (the latest was
            unreadable), so `best.keras` may be an epoch ahead of it.

    Returns:
        The progress to continue from (its best record dropped when no file backs it).
    """
    if from_previous:
        progress = _check_best_model(model_dir, progress)
    for name, needed in (("best.keras", progress["best"]), ("last.keras", progress["epochs_done"])):
        path = os.path.join(model_dir, name)
        if not needed and os.path.exists(path):
            os.remove(path)
    publish(model_dir, progress)
    return progress


def _check_best_model(model_dir, progress):
    """Drops a best record whose model file is not the one on disk.

    `best.keras` is renamed into place only after its checkpoint, so it matches the newest
    checkpoint; restored from the previous one, it may be an epoch ahead. Then the record
    cannot be backed by a file: the best is chosen anew from the epochs still to run.
    """
    best, best_json = progress["best"], os.path.join(model_dir, "best.json")
    if best is None or os.path.exists(pending_model(model_dir, "best", best["epoch"])):
        return progress
    on_disk = None
    if os.path.exists(best_json):
        with open(best_json) as f:
            on_disk = json.load(f).get("epoch")
    if on_disk == best["epoch"]:
        return progress
    logger.warning(
        "%s holds epoch %s but the restored backup's best is epoch %d; the best model is "
        "chosen again from the epochs still to run.",
        os.path.join(model_dir, "best.keras"), on_disk, best["epoch"],
    )
    return {**progress, "best": None}
