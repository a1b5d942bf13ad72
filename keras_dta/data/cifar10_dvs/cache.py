"""The frame cache: every recording integrated, resized and written once per `(T, size)`
as ZLIB-compressed TFRecord files, `meta.json` (written last) marking it complete."""

import json
import logging
import os
import time

import numpy as np
import tensorflow as tf

from keras_dta import files
from keras_dta._checks import check_int
from keras_dta.data.cifar10_dvs.frames import input_shape, recording_to_frames
from keras_dta.data.cifar10_dvs.recordings import (
    SPLITS,
    Reader,
    check_data_dir,
    check_order,
    check_split,
    list_recordings,
    split_recordings,
)

logger = logging.getLogger(__name__)

#: Name of the cache folder created inside the data directory.
CACHE_DIRNAME = "keras_dta_cache"
# Bump when the cache's content or layout changes, so old caches are rebuilt.
# 2: the split order is part of the cache (version 1 caches hold the numeric order).
_CACHE_VERSION = 2
COMPRESSION = "ZLIB"
# Level 1: about 8x faster to write than the default level for some 25% more
# disk (frames of mostly empty pixels compress well either way).
_COMPRESSION_LEVEL = 1
# The train split is written in one fixed random order, so that a shuffle
# buffer much smaller than the split still sees every class (in file order a
# buffer of 2048 would hold only two or three classes).
_WRITE_ORDER_SEED = 0
_LOG_EVERY = 500


def cache_dir(data_dir, T=10, image_size=48, order="name"):
    """The cache folder of one `(T, image_size, order)`: `DIR/keras_dta_cache/T{T}_{size}_{order}`."""
    check_int("T", T)
    check_int("image_size", image_size)
    check_order(order)
    return os.path.join(check_data_dir(data_dir), CACHE_DIRNAME, f"T{T}_{image_size}_{order}")


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
        compression_type=COMPRESSION, compression_level=_COMPRESSION_LEVEL
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


def build_cache(data_dir, *, T=10, image_size=48, skip_bad=False, order="name"):
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
        order: the order of each class's recordings before the 9:1 split
            (`SPLIT_ORDERS`; "name" is the published split).

    Returns:
        The cache's metadata: a dict with `num_examples` per split, the list
        of `skipped` files and the cache `path`.

    Raises:
        ValueError: for a bad recording when `skip_bad=False`, for a missing
            class, or when a reused cache was built with `skip_bad=True`
            and left files out while `skip_bad=False` is asked for now.
    """
    path = cache_dir(data_dir, T, image_size, order)
    meta = _read_meta(path)
    if meta is None:
        meta = _build(data_dir, path, T, image_size, skip_bad, order)
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


def _build(data_dir, path, T, image_size, skip_bad, order):
    splits = split_recordings(list_recordings(data_dir, order))
    shuffled = np.random.default_rng(_WRITE_ORDER_SEED).permutation(len(splits["train"]))
    splits["train"] = [splits["train"][i] for i in shuffled]
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
        "order": order,
        "shape": list(input_shape(T, image_size)),
        "resize": "bilinear, half-pixel centres, no antialias (torch align_corners=False)",
        "num_examples": {},
        "skipped": [],
    }
    with Reader() as reader:
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


def num_examples(data_dir, split, *, T=10, image_size=48, skip_bad=False, order="name"):
    """The number of examples of a split (building the cache if needed).

    Args:
        data_dir: directory of the raw recordings.
        split: `"train"` or `"test"`.
        T: number of frames.
        image_size: height and width of the frames.
        skip_bad: see `build_cache`.
        order: see `build_cache`.

    Returns:
        The number of examples of that split.
    """
    check_split(split)
    meta = build_cache(data_dir, T=T, image_size=image_size, skip_bad=skip_bad, order=order)
    return int(meta["num_examples"][split])

