"""Frames from one recording: decoding, integrating into T frames, resizing."""

import numpy as np

from keras_dta._checks import check_int
from keras_dta.data import aedat

#: Number of polarity channels of a frame.
CHANNELS = 2


def input_shape(T=10, image_size=48):
    """The shape of one sample: `(T, image_size, image_size, 2)`.

    Args:
        T: number of frames.
        image_size: height and width of the frames.

    Returns:
        A tuple `(time, height, width, channels)`.
    """
    check_int("T", T)
    check_int("image_size", image_size)
    return (T, image_size, image_size, CHANNELS)



def _bilinear_matrix(in_size, out_size):
    """`(out_size, in_size)` weights of 1-D bilinear resampling.

    Half-pixel centres without antialiasing, the sampling of PyTorch's
    `F.interpolate(mode="bilinear", align_corners=False)` and of
    `tf.image.resize(method="bilinear", antialias=False)`.
    """
    scale = in_size / out_size
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5
    src = np.maximum(src, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = src - lo
    weights = np.zeros((out_size, in_size), np.float64)
    rows = np.arange(out_size)
    np.add.at(weights, (rows, lo), 1.0 - frac)
    np.add.at(weights, (rows, hi), frac)
    return weights


def resize_frames(frames, image_size):
    """Bilinearly resizes count frames `(T, H, W, C)` to `(T, size, size, C)`.

    Sampling as PyTorch's `F.interpolate(mode="bilinear",
    align_corners=False)` (half-pixel centres, no antialiasing), which the
    reference applies to the 128 x 128 frames; equal, up to float rounding,
    to `tf.image.resize(method="bilinear")`. Written as two small matrix
    products, which is faster than a TF call per recording.

    Args:
        frames: array `(T, H, W, C)`.
        image_size: output height and width.

    Returns:
        float32 array `(T, image_size, image_size, C)`.
    """
    check_int("image_size", image_size)
    frames = np.asarray(frames, np.float32)
    _, height, width, _ = frames.shape
    if (height, width) == (image_size, image_size):
        return frames
    rows = _bilinear_matrix(height, image_size).astype(np.float32)
    cols = _bilinear_matrix(width, image_size).astype(np.float32)
    planes = frames.transpose(0, 3, 1, 2)  # (T, C, H, W): batched matmuls
    out = np.matmul(np.matmul(rows, planes), cols.T)
    return np.ascontiguousarray(out.transpose(0, 2, 3, 1))


def recording_to_frames(data, T, image_size, *, name="<bytes>"):
    """Decodes one `.aedat` file's bytes into resized frames.

    Args:
        data: the file's bytes.
        T: number of frames.
        image_size: output height and width.
        name: the file's name, for error messages.

    Returns:
        float32 array `(T, image_size, image_size, 2)`.

    Raises:
        ValueError: for any bad recording (see `aedat.decode_aedat` and
            `aedat.integrate_frames`), naming the file.
    """
    events = aedat.decode_aedat(data, name=name)
    frames = aedat.integrate_frames(events, T, name=name)
    return resize_frames(frames, image_size)

