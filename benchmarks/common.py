"""Helpers shared by the benchmark scripts: timing, memory, machine info, tables, JSON.

Imports nothing heavy at module level (the scripts pick the Keras backend before importing
Keras), and changes nothing in the environment.
"""

import json
import os
import platform
import resource
import statistics
import sys
import time


def process_cpu_s():
    """User + system CPU seconds used by this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_calls(fn, runs, warmup=1):
    """Runs `fn` `warmup` times untimed, then `runs` times.

    Returns:
        `(wall, cpu)`: lists of per-run wall-clock seconds and process CPU seconds. On a
        shared machine the wall time grows with other processes' load; the CPU time much
        less, so both are reported.
    """
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), process_cpu_s()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(process_cpu_s() - start_cpu)
    return wall, cpu


def summarize(times, cpu=None):
    """Median, min and max of a list of seconds (and the median CPU seconds if given)."""
    out = {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "runs": len(times),
    }
    if cpu is not None:
        out["median_cpu_s"] = statistics.median(cpu)
    return out


def peak_rss_mib():
    """High-water resident set size of this process, MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def machine_info():
    """Backend, versions, CPU count and load: enough to tell two runs apart."""
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    try:
        import keras  # noqa: PLC0415

        info["keras"] = keras.__version__
        info["backend"] = keras.backend.backend()
    except ImportError:
        pass
    if info.get("backend") == "tensorflow":
        import tensorflow as tf  # noqa: PLC0415

        info["tensorflow"] = tf.__version__
        info["devices"] = [d.name for d in tf.config.list_logical_devices()]
    elif info.get("backend") == "jax":
        import jax  # noqa: PLC0415

        info["jax"] = jax.__version__
        info["devices"] = [str(d) for d in jax.devices()]
    return info


def format_table(rows, columns):
    """A plain-text table of `rows` (dicts) with the given `columns` [(key, header, fmt)]."""
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        cells.append([
            "-" if row.get(key) is None else (fmt.format(row[key]) if fmt else str(row[key]))
            for key, _, fmt in columns
        ])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path, payload):
    """Writes `payload` as indented JSON, creating the parent directory."""
    if not path:
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, default=float)
        f.write("\n")


def parse_list(text, cast=int):
    """'4,6' -> [4, 6]."""
    return [cast(v) for v in str(text).split(",") if v.strip()]


def parse_bool(text):
    """Strict boolean parsing ('true'/'false', '1'/'0'): 'False' must not read as true."""
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"Expected a boolean. Received: {text!r}")


def write_bytes(path, data):
    """Writes `data` to `path`, creating the parent directory."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def conv_peak_gflops(runs=7):
    """This machine's dense float32 convolution peak, GFLOP/s (TensorFlow, oneDNN).

    The method of `../shared/bench/cpu_peak.py`, which REFERENCE.md's performance anchors
    are stated against: the best of `runs` timings of one 3x3 convolution, 64 x 32 x 32 x
    128 -> 128 channels.
    """
    import tensorflow as tf  # noqa: PLC0415

    x = tf.random.normal((64, 32, 32, 128))
    w = tf.random.normal((3, 3, 128, 128))
    conv = tf.function(lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"), autograph=False)
    conv(x, w).numpy()
    best = min(time_calls(lambda: conv(x, w).numpy(), runs=runs, warmup=0)[0])
    return 2 * 64 * 32 * 32 * 128 * 128 * 9 / best / 1e9
