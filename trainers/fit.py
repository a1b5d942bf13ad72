r"""Trains a DTA-SNN with the paper's recipe: `python trainers/fit.py --help`.

A thin shim over `keras_dta.cli.fit` (also installed as `keras-dta-fit`) that starts
quietly: TensorFlow's native start-up lines (oneDNN, CUDA stubs, CPU features) are held
back, so the run's own lines come first.
"""

import contextlib
import os
import re
import sys
import tempfile

# Native INFO and WARNING lines (`I0000 00:00:...`), and absl's notice before them.
_NATIVE_NOISE = re.compile(rb"^([IW]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl::InitializeLog)")


@contextlib.contextmanager
def _quiet_native_start_up():
    """Holds back what is written to stderr while TensorFlow loads; replays all but the
    native INFO/WARNING lines. A user who sets TF_CPP_MIN_LOG_LEVEL sees everything."""
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
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


if __name__ == "__main__":
    with _quiet_native_start_up():
        # Not the runtime: MultiWorkerMirroredStrategy must be created before it starts.
        import tensorflow  # noqa: F401

from keras_dta.cli.fit import FLAGS, config_from_flags, main, run  # noqa: E402,F401

if __name__ == "__main__":
    run()
