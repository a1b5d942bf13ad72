"""Times reading and integrating one synthetic CIFAR10-DVS-sized recording.

Writes a DVS128 AER-DAT2.0 file of `--events` random events, then times
`read_aedat` + `integrate_frames` (and the resize to `--image_size`, as the
cache builder does) and logs the median over `--repeats` runs.

    python benchmarks/aedat_integrate.py --events 300000 --T 10
"""

import os
import statistics
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from keras_dta.data import aedat
from keras_dta.data import cifar10_dvs

FLAGS = flags.FLAGS
flags.DEFINE_integer("events", 300_000, "Events in the synthetic recording.")
flags.DEFINE_integer("T", 10, "Frames per recording.")
flags.DEFINE_integer("image_size", 48, "Size of the resized frames.")
flags.DEFINE_integer("repeats", 20, "Timed runs; the median is reported.")
flags.DEFINE_integer("seed", 0, "Seed of the synthetic events.")


def synthetic_events(num_events, seed):
    """Random events over a 1.3 s recording, denser near the centre like an object."""
    rng = np.random.default_rng(seed)
    last = aedat.SENSOR_SIZE - 1
    t = np.sort(rng.integers(0, 1_300_000, num_events))
    x = np.clip(rng.normal(64, 25, num_events), 0, last).astype(np.int64)
    y = np.clip(rng.normal(64, 25, num_events), 0, last).astype(np.int64)
    p = rng.integers(0, 2, num_events)
    return aedat.Events(t=t, x=x, y=y, p=p)


def _median_ms(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv):
    del argv
    data = aedat.encode_aedat(
        synthetic_events(FLAGS.events, FLAGS.seed), header_lines=["synthetic"]
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cifar10_airplane_0.aedat")
        with open(path, "wb") as f:
            f.write(data)

        def read():
            return aedat.read_aedat(path)

        events = read()

        def integrate():
            return aedat.integrate_frames(events, FLAGS.T)

        frames = integrate()

        def resize():
            return cifar10_dvs.resize_frames(frames, FLAGS.image_size)

        def everything():
            return resize_all(read())

        def resize_all(ev):
            return cifar10_dvs.resize_frames(
                aedat.integrate_frames(ev, FLAGS.T), FLAGS.image_size
            )

        read_ms = _median_ms(read, FLAGS.repeats)
        integrate_ms = _median_ms(integrate, FLAGS.repeats)
        resize_ms = _median_ms(resize, FLAGS.repeats)
        total_ms = _median_ms(everything, FLAGS.repeats)
    logging.info(
        "%d events (%.1f MB), T=%d, image_size=%d, median of %d runs: "
        "read %.1f ms, integrate %.1f ms, resize %.1f ms; read+integrate+resize "
        "%.1f ms per recording (%.0f s for the 10,000 recordings, one core).",
        FLAGS.events,
        len(data) / 1e6,
        FLAGS.T,
        FLAGS.image_size,
        FLAGS.repeats,
        read_ms,
        integrate_ms,
        resize_ms,
        total_ms,
        total_ms * 10,
    )


if __name__ == "__main__":
    app.run(main)
