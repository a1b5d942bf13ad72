"""Reading DVS128 AER-DAT2.0 (`.aedat`) recordings and integrating them into frames.

The CIFAR10-DVS release stores each recording as a jAER AER-DAT2.0 file: ASCII
header lines that begin with `#` (the first one is `#!AER-DAT2.0`), then 8-byte
records, each a big-endian uint32 address followed by a big-endian uint32
timestamp in microseconds. For the DVS128 sensor the address packs
polarity in bit 0, x in bits 1-7 and y in bits 8-14; the other bits are zero.

Everything here is vectorised NumPy: a recording of a few hundred thousand
events is decoded and integrated in milliseconds.

Reference:
    - [CIFAR10-DVS: An Event-Stream Dataset for Object Classification](
      https://doi.org/10.3389/fnins.2017.00309) (Li et al., 2017)
    - [AEDAT file formats](https://gitlab.com/inivation/inivation-docs/)
"""

import os
from typing import NamedTuple

import numpy as np

from keras_dta._checks import check_int

#: The DVS128 sensor is 128 x 128 pixels.
SENSOR_SIZE = 128
#: First header line of an AER-DAT2.0 file.
AEDAT2_MAGIC = b"#!AER-DAT2.0"

_RECORD_BYTES = 8
# DVS128 addresses use bits 0-14 (polarity, 7 bits of x, 7 bits of y). Any
# other bit set means the record is not a pixel event of this sensor (a
# special/external event or a corrupted file), so it cannot be placed on the
# 128 x 128 grid.
_ADDRESS_BITS = 15
_COORD_MASK = 0x7F
_X_SHIFT = 1
_Y_SHIFT = 8


class Events(NamedTuple):
    """Decoded events, in file order, after the usual CIFAR10-DVS axis convention.

    Attributes:
        t: int64 timestamps in microseconds, shape `(num_events,)`.
        x: int16 column in `[0, 128)`, `127 - y_raw`.
        y: int16 row in `[0, 128)`, `127 - x_raw`.
        p: int16 polarity in `{0, 1}`, `1 - p_raw`.
    """

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    p: np.ndarray

    def __len__(self):
        return int(self.t.shape[0])


def _header_length(data, name):
    """Returns the number of header bytes, checking the AER-DAT2.0 magic line."""
    if not data.startswith(AEDAT2_MAGIC):
        first = data[:40].split(b"\n", 1)[0]
        raise ValueError(
            f"{name}: not an AER-DAT2.0 file; the first line must start with "
            f"{AEDAT2_MAGIC.decode()!r}. Received: first_line={first!r}"
        )
    pos = 0
    while data[pos : pos + 1] == b"#":
        end = data.find(b"\n", pos)
        if end < 0:
            raise ValueError(
                f"{name}: truncated file, the header line at byte {pos} has no "
                f"end of line. Received: file_size={len(data)}"
            )
        pos = end + 1
    return pos


def decode_aedat(data, *, name="<bytes>"):
    """Decodes the bytes of a DVS128 AER-DAT2.0 file.

    Applies the axis convention used for CIFAR10-DVS:
    `x' = 127 - y`, `y' = 127 - x`, `p' = 1 - p`.

    Args:
        data: the whole file as `bytes` (or any buffer).
        name: the file's name, used in error messages.

    Returns:
        An `Events` tuple `(t, x, y, p)`.

    Raises:
        ValueError: if the header is not AER-DAT2.0, the file is truncated
            (the bytes after the header are not a whole number of 8-byte
            records), or an address has bits set beyond the DVS128's 15
            address bits (an event outside the 128 x 128 sensor).
    """
    data = bytes(data)
    start = _header_length(data, name)
    body = len(data) - start
    if body % _RECORD_BYTES:
        raise ValueError(
            f"{name}: truncated file, {body} bytes after the header is not a "
            f"multiple of the {_RECORD_BYTES}-byte event record. "
            f"Received: file_size={len(data)}, header_size={start}"
        )
    words = np.frombuffer(data, dtype=">u4", offset=start).reshape(-1, 2)
    # Native uint32 and int16 arrays: several times faster than int64 math on
    # the big-endian view, and a few hundred thousand events stay small.
    address = words[:, 0].astype(np.uint32)
    timestamp = words[:, 1].astype(np.int64)
    if (address >> _ADDRESS_BITS).any():
        outside = np.flatnonzero(address >> _ADDRESS_BITS)
        i = int(outside[0])
        raise ValueError(
            f"{name}: {outside.size} event(s) outside the {SENSOR_SIZE}x"
            f"{SENSOR_SIZE} DVS128 sensor (address bits above bit "
            f"{_ADDRESS_BITS - 1} set). Received: event_index={i}, "
            f"address={int(address[i]):#010x}"
        )
    polarity = (address & 1).astype(np.int16)
    x_raw = ((address >> _X_SHIFT) & _COORD_MASK).astype(np.int16)
    y_raw = ((address >> _Y_SHIFT) & _COORD_MASK).astype(np.int16)
    last = SENSOR_SIZE - 1
    return Events(t=timestamp, x=last - y_raw, y=last - x_raw, p=1 - polarity)


def read_aedat(path):
    """Reads a DVS128 AER-DAT2.0 file from disk.

    Args:
        path: path to the `.aedat` file.

    Returns:
        An `Events` tuple, see `decode_aedat`.
    """
    with open(path, "rb") as f:
        data = f.read()
    return decode_aedat(data, name=os.fspath(path))


def encode_aedat(events, *, header_lines=()):
    """Encodes events into AER-DAT2.0 bytes; the inverse of `decode_aedat`.

    Useful to write synthetic recordings for tests and benchmarks.

    Args:
        events: an `Events` tuple (or any `(t, x, y, p)` sequence of arrays)
            in the convention returned by `decode_aedat`.
        header_lines: extra header lines (str, without `#` or newline) written
            after the `#!AER-DAT2.0` line.

    Returns:
        The file content as `bytes`.
    """
    t, x, y, p = (np.asarray(a, dtype=np.int64) for a in events)
    last = SENSOR_SIZE - 1
    for arg, values in (("x", x), ("y", y)):
        if values.size and (values.min() < 0 or values.max() > last):
            raise ValueError(
                f"`{arg}` must be in [0, {last}]. Received: {arg} range="
                f"[{values.min()}, {values.max()}]"
            )
    if p.size and not np.isin(p, (0, 1)).all():
        raise ValueError(f"`p` must be 0 or 1. Received: p values={np.unique(p)}")
    address = ((last - y) << _X_SHIFT) | ((last - x) << _Y_SHIFT) | (1 - p)
    words = np.stack([address, t], axis=1).astype(">u4")
    header = AEDAT2_MAGIC + b"\r\n"
    header += b"".join(b"# " + line.encode("ascii") + b"\r\n" for line in header_lines)
    return header + words.tobytes()


def integrate_frames(events, num_frames, *, name="<events>"):
    """Integrates events into `num_frames` count images, "split by number".

    With `N` events and `T = num_frames`, `d = N // T`; frame `j` takes events
    `[j * d, (j + 1) * d)` and the last frame runs to `N`. Each frame counts
    the events at every pixel, one channel per polarity, with no
    normalisation.

    The frames are channels-last, as Keras expects: `(T, 128, 128, 2)` with
    `frames[j, y, x, p]`. (The PyTorch reference keeps `(T, 2, 128, 128)`.)

    Args:
        events: an `Events` tuple (for example from `read_aedat`).
        num_frames: `T`, the number of frames, >= 1.
        name: the recording's name, used in error messages.

    Returns:
        float32 array `(num_frames, 128, 128, 2)`.

    Raises:
        ValueError: if there are fewer events than frames (including none).
    """
    check_int("num_frames", num_frames)
    n = len(events.t)
    if n < num_frames:
        raise ValueError(
            f"{name}: empty or too short recording, {n} event(s) cannot fill "
            f"{num_frames} frames. Received: num_events={n}, num_frames={num_frames}"
        )
    size = SENSOR_SIZE
    d = n // num_frames
    # One pixel index per event, then one bincount per frame (a loop over T,
    # not over events): fewer and smaller temporaries than a single bincount
    # over (frame, pixel) indices, which matters at 10,000 recordings.
    pixel = (np.asarray(events.y, np.int32) * size + np.asarray(events.x, np.int32)) * 2
    pixel += np.asarray(events.p, np.int32)
    frames = np.empty((num_frames, size * size * 2), np.float32)
    for j in range(num_frames):
        stop = n if j == num_frames - 1 else (j + 1) * d
        frames[j] = np.bincount(pixel[j * d : stop], minlength=size * size * 2)
    return frames.reshape(num_frames, size, size, 2)
