"""The run directory: where each file lives, preparing, comparing and clearing a run.

```
model_dir/
  config.json       the configuration (refuses a different one without overwrite)
  history.csv       per-epoch metrics
  logs/             TensorBoard
  best.keras        the model with the best test accuracy so far (best.json: which)
  last.keras        the model after the last finished epoch
  saved_model/      a TF SavedModel of the best model (mean-over-time logits)
  results.json      written when the run is complete
  spike_stats.json  firing rate per LIF layer and the energy estimate of the best model
  firing_rates.png  the firing rates, plotted
  backup/           the step checkpoint while the run is in progress
```
"""

import dataclasses
import json
import logging
import os
import shutil

from keras_dta import files
from keras_dta.training.config import EXECUTION_KEYS

logger = logging.getLogger(__name__)

_RUN_FILES = (
    "results.json",
    "best.keras",
    "best.json",
    "last.keras",
    "history.csv",
    "spike_stats.json",
    "firing_rates.png",
)
_RUN_DIRS = ("logs", "backup", "saved_model")


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """The files of one run directory (`root`), as absolute paths."""

    root: str

    @classmethod
    def of(cls, model_dir):
        return cls(os.path.abspath(model_dir))

    def _join(self, name):
        return os.path.join(self.root, name)

    config = property(lambda self: self._join("config.json"))
    results = property(lambda self: self._join("results.json"))
    best_model = property(lambda self: self._join("best.keras"))
    best_json = property(lambda self: self._join("best.json"))
    last_model = property(lambda self: self._join("last.keras"))
    history = property(lambda self: self._join("history.csv"))
    logs = property(lambda self: self._join("logs"))
    backup = property(lambda self: self._join("backup"))
    saved_model = property(lambda self: self._join("saved_model"))
    spike_stats = property(lambda self: self._join("spike_stats.json"))
    firing_rates_plot = property(lambda self: self._join("firing_rates.png"))

    def describe(self, export=True):
        """The paths a finished run reports in `results.json` (`saved_model` None if not exported)."""
        return {
            "model_dir": self.root,
            "config": self.config,
            "best_model": self.best_model,
            "last_model": self.last_model,
            "saved_model": self.saved_model if export else None,
            "logs": self.logs,
            "history": self.history,
            "spike_stats": self.spike_stats,
            "firing_rates_plot": self.firing_rates_plot,
        }


def _comparable(config_dict):
    return {k: v for k, v in config_dict.items() if k not in EXECUTION_KEYS}


def config_diff(old, new):
    """`{key: (old, new)}` for the keys that change what a run computes."""
    return {
        k: (old.get(k), new.get(k))
        for k in sorted(set(_comparable(old)) | set(_comparable(new)))
        if old.get(k) != new.get(k)
    }


def prepare_run_dir(config):
    """Creates `config.model_dir`, checks it against an earlier run, writes config.json.

    - Empty or new directory: a new run.
    - The same configuration (up to `model_dir`, `data_dir`, `jit_compile`,
      `distribute`, `export`, `overwrite`): resumes; if that run finished, returns
      `"complete"` unless `overwrite`, which retrains it from scratch.
    - Another configuration: `ValueError` unless `overwrite`, which deletes
      that run's files (only the files a run writes) and starts anew.

    Returns:
        `"new"`, `"resume"` or `"complete"`.
    """
    model_dir = config.model_dir
    paths = RunPaths.of(model_dir)
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise ValueError(f"`model_dir` names a file, not a directory. Received: model_dir={model_dir!r}")
    try:
        os.makedirs(model_dir, exist_ok=True)
        # Written early, so that a run directory that cannot be written fails here, plainly.
        with open(os.path.join(model_dir, ".keras_dta_write_test"), "w"):
            pass
        os.remove(os.path.join(model_dir, ".keras_dta_write_test"))
    except OSError as error:
        raise ValueError(
            f"Cannot write the run directory ({error.strerror or error}). Received: model_dir={model_dir!r}"
        ) from None
    status = "new"
    if os.path.exists(paths.config):
        with open(paths.config) as f:
            old = json.load(f)
        diff = config_diff(old, json.loads(json.dumps(config.to_dict())))  # tuples -> lists
        finished = os.path.exists(paths.results)
        if diff and not config.overwrite:
            details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise ValueError(
                f"{model_dir} holds a run with another configuration ({details}). "
                "Pass --overwrite to replace it, or choose another --model_dir. "
                f"Received: model_dir={model_dir!r}"
            )
        if diff or (finished and config.overwrite):
            logger.warning("Overwriting the run in %s.", model_dir)
            clear_run_dir(model_dir)
        elif finished:
            status = "complete"
        else:
            status = "resume"
    files.write_json(paths.config, config.to_dict())
    return status


def clear_run_dir(model_dir):
    """Deletes the files and folders a run writes (and nothing else) from `model_dir`."""
    for name in _RUN_FILES:
        p = os.path.join(model_dir, name)
        if os.path.exists(p):
            os.remove(p)
    for name in _RUN_DIRS:
        p = os.path.join(model_dir, name)
        if os.path.isdir(p):
            shutil.rmtree(p)
