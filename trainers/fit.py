r"""Trains a DTA-SNN with the paper's recipe.

With no flags it trains a small MS-ResNet with DTA on scikit-learn's 8x8
digits (offline, a few minutes on a laptop CPU):

    python trainers/fit.py        # installed, also: keras-dta-fit

The paper's settings (Table 4) are each dataset's preset; every flag
overrides one of them:

    python trainers/fit.py --dataset cifar100 --T 6 --model_dir runs/c100
    python trainers/fit.py --dataset imagenet2012 --data_dir /data/tfds

Rerunning the same command resumes an interrupted run from its last backup.
"""

# A thin shim over keras_dta.cli.fit that starts quietly: TensorFlow's native start-up
# lines (oneDNN, CUDA stubs, CPU features) are held back, so the run's own lines come first.

import contextlib
import os
import re
import sys
import tempfile

# Native INFO and WARNING lines (`I0000 00:00:...`), and absl's notice before them.
_NATIVE_NOISE = re.compile(
    rb"^([IW]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl::InitializeLog"
    rb"|To enable the following instructions: )"
)


@contextlib.contextmanager
def _quiet_native_start_up(enabled):
    """Holds back what is written to stderr while TensorFlow loads; replays all but the
    native INFO/WARNING lines. A user who sets TF_CPP_MIN_LOG_LEVEL sees everything."""
    if not enabled or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().splitlines(True) if not _NATIVE_NOISE.match(line)]
            os.write(2, b"".join(kept))


# Imported, not run, by tests; run as a program, quietly. Importing keras_dta loads
# TensorFlow but does not start its runtime (MultiWorkerMirroredStrategy must come first).
with _quiet_native_start_up(enabled=__name__ == "__main__"):
    from keras_dta.cli.fit import FLAGS, config_from_flags, main, run  # noqa: F401

if __name__ == "__main__":
    run()
