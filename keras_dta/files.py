"""Atomic writes: a reader sees the old file or the new one, never a partial one.

Every file keras_dta writes for a user (checkpoints, configs, caches, exported models) goes
through these helpers, so a crash or preemption mid-write keeps what was there before.
"""

import contextlib
import json
import os
import shutil
import tempfile

# Crash tests set this to a point name (or `name:epoch`) to end the process there.
_KILL_ENV = "KERAS_DTA_TEST_KILL_AT"
#: The exit status of a process ended by `crash_test_point`.
KILLED_EXIT_CODE = 75


def crash_test_point(name, epoch=None):
    """For crash tests only: ends the process at once, as a kill would, at a named point.

    Does nothing unless the environment variable `KERAS_DTA_TEST_KILL_AT` is `name` or
    `name:epoch`. `os._exit` skips every `finally` block and `atexit` handler, so whatever a
    write left half done stays as a real kill would leave it. The points: `checkpoint_write`
    (a checkpoint written to its temporary name, not yet renamed), `before_commit` (an
    epoch's models staged, its checkpoint not written), `after_commit` (the checkpoint
    written, the staged files not yet in place), `replace_dir` (a directory built under its
    temporary name, e.g. the trainer's final SavedModel export).
    """
    wanted = os.environ.get(_KILL_ENV)
    if wanted and (wanted == name or (epoch is not None and wanted == f"{name}:{epoch}")):
        os._exit(KILLED_EXIT_CODE)


def _default_file_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`, moved onto `path` when the block succeeds.

    If the block raises, the temporary file is removed and `path` is left as it was.

    Args:
        path: str, the destination file.

    Yields:
        str, the temporary path to write (it exists, empty, and ends with `path`'s name, so
        writers that look at the suffix, like `model.save(".keras")`, accept it).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(fd)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_bytes(path, data):
    """Writes bytes to `path` atomically (flushed to disk before the rename)."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"`data` must be bytes. Received: type(data)={type(data).__name__}")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(path, text):
    """Writes a string (UTF-8) to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path, value):
    """Writes `value` as indented, key-sorted JSON to `path` atomically."""
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def save_model(model, path):
    """`model.save(path)` atomically."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def replace_dir(build, output_dir):
    """Calls `build(tmp_dir)`, then moves `tmp_dir` onto `output_dir`, replacing it.

    A failing `build` leaves `output_dir` as it was; the swap itself is two renames.

    Args:
        build: callable taking the path of a directory to create.
        output_dir: str, the destination directory.

    Returns:
        The absolute path of `output_dir`.
    """
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"The output must be a directory. Received: output_dir={output_dir!r}")
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".tmp-" + os.path.basename(output_dir))
    target = os.path.join(staging, "new")
    try:
        build(target)
        crash_test_point("replace_dir")
        if os.path.exists(output_dir):
            os.replace(output_dir, os.path.join(staging, "previous"))
        os.replace(target, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir
