"""CIFAR10-DVS from the raw event recordings, as a `tf.data` pipeline.

The dataset is read from the raw release: ten zips, one per class, of files
`cifar10_<class>_<i>.aedat` (`i` = 0..999). `DIR` may hold either the zips
(`DIR/airplane.zip`, ...) or the extracted class folders
(`DIR/airplane/cifar10_airplane_0.aedat`, ...); nothing is downloaded.

The first call integrates every recording into `T` frames ("split by
number", see `keras_dta.data.aedat.integrate_frames`), resizes them and caches
them under `DIR/keras_dta_cache/T{T}_{image_size}/` as ZLIB-compressed
TFRecord files, one per split. Later calls only stream the cache. Each cache
file is written to a temporary name and moved into place with `os.replace`,
and `meta.json`, written last, marks the cache complete; delete the folder to
rebuild it.

Split: there is no official one. As is usual, per class the first
`ceil(0.9 n)` recordings in file order (by their integer index `i`) are the
train split and the rest the test split.

Example:

```python
from keras_dta.data import cifar10_dvs

train = cifar10_dvs.load("/data/cifar10_dvs", "train", T=10, seed=0)
test = cifar10_dvs.load("/data/cifar10_dvs", "test", T=10)
steps = math.ceil(cifar10_dvs.num_examples("/data/cifar10_dvs", "train") / 64)
```

Reference:
    - [CIFAR10-DVS: An Event-Stream Dataset for Object Classification](
      https://doi.org/10.3389/fnins.2017.00309) (Li et al., 2017)
    - [Neuromorphic Data Augmentation for Training Spiking Neural Networks](
      https://arxiv.org/abs/2203.06145) (Li et al., 2022): the event
      augmentation policy.
"""

import json
import logging
import math
import os
import re
import time
import zipfile
import zlib

import numpy as np
import tensorflow as tf

from keras_dta import files
from keras_dta.data import aedat
from keras_dta.data import mixing

logger = logging.getLogger(__name__)

CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
NUM_CLASSES = len(CLASSES)
SPLITS = ("train", "test")
#: Number of polarity channels of a frame.
CHANNELS = 2
#: Name of the cache folder created inside the data directory.
CACHE_DIRNAME = "keras_dta_cache"

# The 9:1 split, as the integer fraction 9/10 so that ceil() is exact.
_TRAIN_PARTS, _ALL_PARTS = 9, 10
# Bump when the cache's content or layout changes, so old caches are rebuilt.
_CACHE_VERSION = 1
_COMPRESSION = "ZLIB"
# Level 1: about 8x faster to write than the default level for some 25% more
# disk (frames of mostly empty pixels compress well either way).
_COMPRESSION_LEVEL = 1
# The train split is written in one fixed random order, so that a shuffle
# buffer much smaller than the split still sees every class (in file order a
# buffer of 2048 would hold only two or three classes).
_WRITE_ORDER_SEED = 0
_LOG_EVERY = 500

# Event augmentation (NDA-style policy, paper's CIFAR10-DVS recipe): one op of
# these per sample, after a random horizontal flip. Translate-x and
# translate-y are two ops, one axis each.
AUGMENT_OPS = ("identity", "shear_x", "translate_x", "translate_y", "rotate", "cutout")
SHEAR_MAX = 0.3  # shear factor
TRANSLATE_MAX = 5.0  # pixels
ROTATE_MAX_DEGREES = 30.0
CUTOUT_AREA = (0.001, 0.11)  # fraction of the image, square
MIXUP_ALPHA = 0.5
CUTMIX_ALPHA = 1.0
MIX_PROB = 0.5
MIX_SWITCH_PROB = 0.5


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------


def _check_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}. Received: {name}={value!r}")


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}. Received: split={split!r}")


def _check_data_dir(data_dir):
    if data_dir is None:
        raise ValueError("`data_dir` is required. Received: data_dir=None")
    path = os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
    if not os.path.isdir(path):
        raise ValueError(
            f"`data_dir` must be an existing directory holding the CIFAR10-DVS "
            f"class zips or folders. Received: data_dir={data_dir!r}"
        )
    return path


def input_shape(T=10, image_size=48):
    """The shape of one sample: `(T, image_size, image_size, 2)`.

    Args:
        T: number of frames.
        image_size: height and width of the frames.

    Returns:
        A tuple `(time, height, width, channels)`.
    """
    _check_int("T", T)
    _check_int("image_size", image_size)
    return (T, image_size, image_size, CHANNELS)


# ---------------------------------------------------------------------------
# Raw files
# ---------------------------------------------------------------------------


class _Recording:
    """One raw recording: a file in a class folder or a member of a class zip."""

    __slots__ = ("label", "index", "path", "member")

    def __init__(self, label, index, path, member=None):
        self.label = label
        self.index = index
        self.path = path
        self.member = member

    @property
    def name(self):
        return self.path if self.member is None else f"{self.path}:{self.member}"


def _file_pattern(cls):
    return re.compile(rf"^cifar10_{re.escape(cls)}_(\d+)\.aedat$")


def _sorted_by_index(found, where):
    """Sorts `[(index, recording)]` by the integer index, rejecting duplicates."""
    found.sort(key=lambda item: item[0])
    for (i, a), (j, b) in zip(found, found[1:]):
        if i == j:
            raise ValueError(
                f"{where}: two recordings have the same index. Received: "
                f"files={a.name!r} and {b.name!r}"
            )
    return [rec for _, rec in found]


def list_recordings(data_dir):
    """Lists the raw recordings of every class, each sorted by its index.

    Args:
        data_dir: directory holding, per class, a folder `<class>/` or a zip
            `<class>.zip` of `cifar10_<class>_<i>.aedat` files. A folder wins
            over a zip of the same class.

    Returns:
        A list of `NUM_CLASSES` lists of recordings, in the order of
        `CLASSES`, each ordered by the integer `i` (numeric, not
        lexicographic: 2 before 10).

    Raises:
        ValueError: if a class has neither a folder nor a zip, a zip is not
            readable, or a class holds no recording.
    """
    data_dir = _check_data_dir(data_dir)
    recordings = []
    for label, cls in enumerate(CLASSES):
        pattern = _file_pattern(cls)
        folder = os.path.join(data_dir, cls)
        archive = os.path.join(data_dir, cls + ".zip")
        found = []
        if os.path.isdir(folder):
            where = folder
            for entry in os.listdir(folder):
                match = pattern.match(entry)
                if match:
                    path = os.path.join(folder, entry)
                    index = int(match.group(1))
                    found.append((index, _Recording(label, index, path)))
        elif os.path.isfile(archive):
            where = archive
            try:
                with zipfile.ZipFile(archive) as zf:
                    members = zf.namelist()
            except (zipfile.BadZipFile, OSError) as e:
                raise ValueError(
                    f"{archive}: cannot read the zip of class {cls!r} ({e}). "
                    f"Received: data_dir={data_dir!r}"
                ) from e
            for member in members:
                if member.startswith("__MACOSX/") or member.endswith("/"):
                    continue
                match = pattern.match(member.rsplit("/", 1)[-1])
                if match:
                    index = int(match.group(1))
                    found.append((index, _Recording(label, index, archive, member)))
        else:
            raise ValueError(
                f"Missing class {cls!r}: expected a folder {folder!r} or a zip "
                f"{archive!r}. Received: data_dir={data_dir!r}"
            )
        if not found:
            raise ValueError(
                f"{where}: no recordings named 'cifar10_{cls}_<i>.aedat' for class "
                f"{cls!r}. Received: data_dir={data_dir!r}"
            )
        recordings.append(_sorted_by_index(found, where))
    return recordings


def split_recordings(recordings):
    """Splits per-class recording lists 9:1 into train and test.

    Per class with `n` recordings, the first `ceil(0.9 n)` in file order go
    to train and the rest to test.

    Args:
        recordings: the output of `list_recordings`.

    Returns:
        A dict `{"train": [...], "test": [...]}` of recordings, class by
        class, in file order.
    """
    out = {"train": [], "test": []}
    for per_class in recordings:
        n_train = -(-_TRAIN_PARTS * len(per_class) // _ALL_PARTS)  # ceil(0.9 n)
        out["train"].extend(per_class[:n_train])
        out["test"].extend(per_class[n_train:])
    return out


class _Reader:
    """Reads recordings' bytes, keeping each class zip open while in use."""

    def __init__(self):
        self._zips = {}

    def read(self, rec):
        if rec.member is None:
            with open(rec.path, "rb") as f:
                return f.read()
        zf = self._zips.get(rec.path)
        if zf is None:
            zf = self._zips[rec.path] = zipfile.ZipFile(rec.path)
        try:
            return zf.read(rec.member)
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            raise ValueError(f"{rec.name}: corrupt zip member ({e}).") from e

    def close(self):
        for zf in self._zips.values():
            zf.close()
        self._zips.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------


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
    _check_int("image_size", image_size)
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


# ---------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------


def cache_dir(data_dir, T=10, image_size=48):
    """The cache folder for one `(T, image_size)`: `DIR/keras_dta_cache/T{T}_{size}`."""
    _check_int("T", T)
    _check_int("image_size", image_size)
    return os.path.join(_check_data_dir(data_dir), CACHE_DIRNAME, f"T{T}_{image_size}")


def _read_meta(path):
    meta_path = os.path.join(path, "meta.json")
    if not os.path.isfile(meta_path):
        return None
    with open(meta_path) as f:
        meta = json.load(f)
    if meta.get("version") != _CACHE_VERSION:
        logger.info("Cache %s has version %s, rebuilding.", path, meta.get("version"))
        return None
    if not all(os.path.isfile(os.path.join(path, f"{s}.tfrecord")) for s in SPLITS):
        logger.info("Cache %s is missing a split file, rebuilding.", path)
        return None
    return meta


def _example(frames, label, index):
    feature = {
        "frames": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[frames.astype("<f4").tobytes()])
        ),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        "index": tf.train.Feature(int64_list=tf.train.Int64List(value=[index])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_split(path, recordings, reader, T, image_size, skip_bad, progress):
    """Writes one split's TFRecord file; returns (count, skipped)."""
    count, skipped = 0, []
    options = tf.io.TFRecordOptions(
        compression_type=_COMPRESSION, compression_level=_COMPRESSION_LEVEL
    )
    with files.atomic_path(path) as tmp, tf.io.TFRecordWriter(tmp, options=options) as writer:
        for rec in recordings:
            try:
                frames = recording_to_frames(reader.read(rec), T, image_size, name=rec.name)
            except (ValueError, OSError) as e:
                if not skip_bad:
                    if isinstance(e, OSError):
                        raise ValueError(f"{rec.name}: cannot read ({e}).") from e
                    raise
                logger.debug("Skipping %s: %s", rec.name, e)
                skipped.append({"file": rec.name, "error": str(e)})
            else:
                writer.write(_example(frames, rec.label, rec.index))
                count += 1
            progress()
    return count, skipped


def build_cache(data_dir, *, T=10, image_size=48, skip_bad=False):
    """Builds (or reuses) the frame cache of both splits.

    Every recording is decoded, integrated into `T` frames, resized to
    `image_size` and written once; a complete cache is reused as is.

    Args:
        data_dir: directory of the raw recordings (see `list_recordings`).
        T: number of frames per recording.
        image_size: height and width of the cached frames.
        skip_bad: if True, bad recordings (truncated, empty or too short,
            not AER-DAT2.0, events outside the sensor, corrupt zip member)
            are left out and their count is logged as a warning; if False,
            the first bad recording raises a `ValueError` naming it.

    Returns:
        The cache's metadata: a dict with `num_examples` per split, the list
        of `skipped` files and the cache `path`.

    Raises:
        ValueError: for a bad recording when `skip_bad=False`, for a missing
            class, or when a reused cache was built with `skip_bad=True`
            and left files out while `skip_bad=False` is asked for now.
    """
    path = cache_dir(data_dir, T, image_size)
    meta = _read_meta(path)
    if meta is None:
        meta = _build(data_dir, path, T, image_size, skip_bad)
    else:
        logger.info("Using the CIFAR10-DVS cache at %s.", path)
    if meta["skipped"] and not skip_bad:
        first = meta["skipped"][0]
        raise ValueError(
            f"The cache at {path} was built with skip_bad=True and left out "
            f"{len(meta['skipped'])} bad recording(s); the first: {first['error']} "
            f"Pass skip_bad=True, or fix the files and delete the cache. "
            f"Received: skip_bad={skip_bad}"
        )
    meta["path"] = path
    return meta


def _build(data_dir, path, T, image_size, skip_bad):
    splits = split_recordings(list_recordings(data_dir))
    order = np.random.default_rng(_WRITE_ORDER_SEED).permutation(len(splits["train"]))
    splits["train"] = [splits["train"][i] for i in order]
    total = sum(len(v) for v in splits.values())
    os.makedirs(path, exist_ok=True)
    logger.info(
        "Building the CIFAR10-DVS cache at %s from %d recordings (T=%d, image_size=%d).",
        path,
        total,
        T,
        image_size,
    )
    start = time.monotonic()
    done = [0]

    def progress():
        done[0] += 1
        if done[0] % _LOG_EVERY == 0 or done[0] == total:
            elapsed = time.monotonic() - start
            eta = elapsed / done[0] * (total - done[0])
            logger.info(
                "CIFAR10-DVS cache: %d/%d recordings, %.0f s elapsed, about %.0f s left.",
                done[0],
                total,
                elapsed,
                eta,
            )

    meta = {
        "version": _CACHE_VERSION,
        "T": T,
        "image_size": image_size,
        "shape": list(input_shape(T, image_size)),
        "resize": "bilinear, half-pixel centres, no antialias (torch align_corners=False)",
        "num_examples": {},
        "skipped": [],
    }
    with _Reader() as reader:
        for split in SPLITS:
            count, skipped = _write_split(
                os.path.join(path, f"{split}.tfrecord"),
                splits[split],
                reader,
                T,
                image_size,
                skip_bad,
                progress,
            )
            meta["num_examples"][split] = count
            meta["skipped"].extend(skipped)
    if meta["skipped"]:
        logger.warning(
            "Skipped %d bad CIFAR10-DVS recording(s) of %d (skip_bad=True); the "
            "first: %s",
            len(meta["skipped"]),
            total,
            meta["skipped"][0]["error"],
        )
    files.write_text(os.path.join(path, "meta.json"), json.dumps(meta, indent=1))
    logger.info("CIFAR10-DVS cache done in %.0f s.", time.monotonic() - start)
    return meta


def num_examples(data_dir, split, *, T=10, image_size=48, skip_bad=False):
    """The number of examples of a split (building the cache if needed).

    Args:
        data_dir: directory of the raw recordings.
        split: `"train"` or `"test"`.
        T: number of frames.
        image_size: height and width of the frames.
        skip_bad: see `build_cache`.

    Returns:
        The number of examples `load` yields for that split, per epoch.
    """
    _check_split(split)
    meta = build_cache(data_dir, T=T, image_size=image_size, skip_bad=skip_bad)
    return int(meta["num_examples"][split])


# ---------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------


def _op_transforms(magnitudes, height, width):
    """Projective transforms (output -> input coordinates) of every op.

    Args:
        magnitudes: float32 `(4,)` uniform in [-1, 1]: shear, translate-x,
            translate-y, rotation.
        height, width: image size.

    Returns:
        float32 `(len(AUGMENT_OPS), 8)`, one row per op in `AUGMENT_OPS`
        order, in the layout of `ImageProjectiveTransformV3`.
    """
    cx = (tf.cast(width, tf.float32) - 1.0) / 2.0
    cy = (tf.cast(height, tf.float32) - 1.0) / 2.0
    shear = magnitudes[0] * SHEAR_MAX
    tx = magnitudes[1] * TRANSLATE_MAX
    ty = magnitudes[2] * TRANSLATE_MAX
    angle = magnitudes[3] * (ROTATE_MAX_DEGREES * math.pi / 180.0)
    cos, sin = tf.cos(angle), tf.sin(angle)
    zero, one = tf.constant(0.0), tf.constant(1.0)
    identity = tf.stack([one, zero, zero, zero, one, zero, zero, zero])
    # x_in = x + shear * (y - cy): a shear along x about the centre row.
    shear_x = tf.stack([one, shear, -shear * cy, zero, one, zero, zero, zero])
    translate_x = tf.stack([one, zero, -tx, zero, one, zero, zero, zero])
    translate_y = tf.stack([one, zero, zero, zero, one, -ty, zero, zero])
    # Rotation about the image centre.
    rotate = tf.stack(
        [
            cos,
            sin,
            cx - cos * cx - sin * cy,
            -sin,
            cos,
            cy + sin * cx - cos * cy,
            zero,
            zero,
        ]
    )
    rows = {
        "identity": identity,
        "shear_x": shear_x,
        "translate_x": translate_x,
        "translate_y": translate_y,
        "rotate": rotate,
        "cutout": identity,
    }
    return tf.stack([rows[op] for op in AUGMENT_OPS])


def _cutout_mask(height, width, seed):
    """float32 `(height, width)`: 0 on a square of 0.1%-11% of the area, 1 elsewhere."""
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    area = tf.random.stateless_uniform(
        [], seeds[0], minval=CUTOUT_AREA[0], maxval=CUTOUT_AREA[1]
    ) * tf.cast(height * width, tf.float32)
    side = tf.cast(tf.round(tf.sqrt(area)), tf.int32)
    side = tf.clip_by_value(side, 1, tf.minimum(height, width))
    # The square lies wholly inside the image, so its area is the one drawn.
    corner = tf.random.stateless_uniform([2], seeds[1], dtype=tf.float32)
    y0 = tf.cast(corner[0] * tf.cast(height - side + 1, tf.float32), tf.int32)
    x0 = tf.cast(corner[1] * tf.cast(width - side + 1, tf.float32), tf.int32)
    rows = tf.range(height)
    cols = tf.range(width)
    in_rows = (rows >= y0) & (rows < y0 + side)
    in_cols = (cols >= x0) & (cols < x0 + side)
    return 1.0 - tf.cast(in_rows[:, None] & in_cols[None, :], tf.float32)


def apply_op(frames, op, magnitudes, seed):
    """Applies one op of `AUGMENT_OPS` to every frame of a sample.

    Args:
        frames: float32 `(T, height, width, channels)`.
        op: int32 scalar, an index into `AUGMENT_OPS`.
        magnitudes: float32 `(4,)` in [-1, 1], the signed strengths of
            shear, translate-x, translate-y and rotation (scaled by
            `SHEAR_MAX`, `TRANSLATE_MAX` and `ROTATE_MAX_DEGREES`).
        seed: int `(2,)` stateless seed of the cutout square.

    Returns:
        float32 `(T, height, width, channels)`: the same geometric op (or
        the same erased square) on all T frames.
    """
    shape = tf.shape(frames)
    height, width = shape[1], shape[2]
    transform = tf.gather(_op_transforms(magnitudes, height, width), op)
    # NEAREST and zero fill, the defaults of torchvision's affine ops that the
    # reference policy uses: pixels keep their values instead of being
    # blurred.
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=frames,
        transforms=transform[None, :],
        output_shape=tf.stack([height, width]),
        fill_value=tf.constant(0.0, frames.dtype),
        interpolation="NEAREST",
        fill_mode="CONSTANT",
    )
    mask = tf.where(
        tf.equal(op, AUGMENT_OPS.index("cutout")),
        _cutout_mask(height, width, seed),
        tf.ones([height, width], tf.float32),
    )
    return out * tf.cast(mask[None, :, :, None], out.dtype)


def augment(frames, seed):
    """Per-sample training augmentation of event frames.

    A horizontal flip with probability 0.5, then one op drawn uniformly from
    `AUGMENT_OPS` (identity, shear-x +-0.3, translate-x or translate-y
    +-5 px, rotate +-30 degrees, cutout of a square of 0.1%-11% of the
    area), with a magnitude uniform in its range. All T frames get the same
    flip and the same op. Stateless: the same seed gives the same output.

    Args:
        frames: float32 `(T, height, width, channels)`.
        seed: int `(2,)` stateless seed.

    Returns:
        float32 `(T, height, width, channels)`.
    """
    seeds = tf.random.experimental.stateless_split(seed, num=4)
    flip = tf.random.stateless_uniform([], seeds[0]) < 0.5
    frames = tf.where(flip, tf.reverse(frames, axis=[2]), frames)
    op = tf.random.stateless_uniform(
        [], seeds[1], minval=0, maxval=len(AUGMENT_OPS), dtype=tf.int32
    )
    magnitudes = tf.random.stateless_uniform([4], seeds[2], minval=-1.0, maxval=1.0)
    return apply_op(frames, op, magnitudes, seeds[3])


# ---------------------------------------------------------------------------
# tf.data pipeline
# ---------------------------------------------------------------------------


def load(
    data_dir,
    split,
    *,
    T=10,
    image_size=48,
    batch_size=64,
    training=None,
    seed=None,
    skip_bad=False,
    label_smoothing=0.1,
    shuffle_buffer=2048,
):
    """CIFAR10-DVS as a batched `tf.data.Dataset` of event frames.

    Builds the frame cache on first use (see `build_cache`), then streams it.
    One pass over the returned dataset is one epoch; in training it is
    reshuffled, and re-augmented, on every pass.

    With `training=True`, per sample: a random horizontal flip and one op of
    `AUGMENT_OPS` (see `augment`); labels smoothed by `label_smoothing`;
    then per batch, with probability 0.5, MixUp (alpha 0.5) or CutMix
    (alpha 1), each half of the time (`keras_dta.data.mixing.mix_batch`).
    The labels stay soft. (The reference turns mixed labels back into hard
    ones with argmax before the loss, which throws the mixing and the
    smoothing away; we do not.) With `training=False`, nothing is random and
    the labels are plain one-hot.

    Args:
        data_dir: directory of the raw recordings: per class, a folder
            `<class>/` or a zip `<class>.zip` of `cifar10_<class>_<i>.aedat`.
        split: `"train"` or `"test"` (9:1 per class, in file order).
        T: number of frames per recording.
        image_size: height and width after the bilinear resize.
        batch_size: examples per batch; the last batch of an epoch may be
            smaller (steps per epoch: `ceil(num_examples / batch_size)`).
        training: whether to shuffle and augment; defaults to
            `split == "train"`.
        seed: int seed of the shuffle and of every random draw; with a seed
            the whole stream of epochs is reproducible. `None` for fresh
            randomness.
        skip_bad: see `build_cache`.
        label_smoothing: label smoothing in [0, 1), training only.
        shuffle_buffer: size of the shuffle buffer, training only.

    Returns:
        A `tf.data.Dataset` of `(frames, labels)`: float32
        `(batch, T, image_size, image_size, 2)` channels-last event counts
        (bilinearly resized) and float32 `(batch, 10)` labels summing to 1.
    """
    _check_split(split)
    _check_int("T", T)
    _check_int("image_size", image_size)
    _check_int("batch_size", batch_size)
    _check_int("shuffle_buffer", shuffle_buffer)
    if training is None:
        training = split == "train"
    if not isinstance(training, bool):
        raise ValueError(f"`training` must be a bool or None. Received: training={training!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ValueError(f"`seed` must be an int or None. Received: seed={seed!r}")
    if not isinstance(label_smoothing, (int, float)) or not 0.0 <= label_smoothing < 1.0:
        raise ValueError(
            f"`label_smoothing` must be a number in [0, 1). "
            f"Received: label_smoothing={label_smoothing!r}"
        )

    meta = build_cache(data_dir, T=T, image_size=image_size, skip_bad=skip_bad)
    shape = input_shape(T, image_size)
    features = {
        "frames": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(record):
        example = tf.io.parse_single_example(record, features)
        frames = tf.reshape(tf.io.decode_raw(example["frames"], tf.float32), shape)
        return frames, example["label"]

    ds = tf.data.TFRecordDataset(
        os.path.join(meta["path"], f"{split}.tfrecord"), compression_type=_COMPRESSION
    )
    if not training:

        def parse_one_hot(record):
            frames, label = parse(record)
            return frames, tf.one_hot(label, NUM_CLASSES, dtype=tf.float32)

        ds = ds.map(parse_one_hot, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    # One random int64 per sample, a new stream every epoch; it seeds the
    # sample's augmentation and (the batch's first one) the batch mixing.
    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip((ds, keys))
    smoothing = float(label_smoothing)

    def augment_sample(sample, key):
        frames, label = sample
        frames = augment(frames, tf.stack([key, tf.constant(0, tf.int64)]))
        labels = tf.one_hot(
            label,
            NUM_CLASSES,
            on_value=1.0 - smoothing + smoothing / NUM_CLASSES,
            off_value=smoothing / NUM_CLASSES,
            dtype=tf.float32,
        )
        return frames, labels, key

    def mix(frames, labels, keys):
        return mixing.mix_batch(
            frames,
            labels,
            mixup_alpha=MIXUP_ALPHA,
            cutmix_alpha=CUTMIX_ALPHA,
            prob=MIX_PROB,
            switch_prob=MIX_SWITCH_PROB,
            seed=tf.stack([keys[0], tf.constant(1, tf.int64)]),
        )

    ds = ds.map(augment_sample, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size).map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
