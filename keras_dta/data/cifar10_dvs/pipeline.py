"""CIFAR10-DVS as a batched `tf.data` pipeline over the frame cache."""

import os

import numpy as np
import tensorflow as tf

from keras_dta._checks import check_int
from keras_dta.data import mixing
from keras_dta.data.cifar10_dvs.augmentation import augment
from keras_dta.data.cifar10_dvs.cache import COMPRESSION, build_cache
from keras_dta.data.cifar10_dvs.frames import input_shape
from keras_dta.data.cifar10_dvs.recordings import NUM_CLASSES, check_split
from keras_dta.data.pipeline import finish, one_hot

MIXUP_ALPHA = 0.5
CUTMIX_ALPHA = 1.0
MIX_PROB = 0.5
MIX_SWITCH_PROB = 0.5

_FEATURES = {
    "frames": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
}


def _check_load_args(split, T, image_size, batch_size, shuffle_buffer, training, seed,
                     label_smoothing):
    check_split(split)
    check_int("T", T)
    check_int("image_size", image_size)
    check_int("batch_size", batch_size)
    check_int("shuffle_buffer", shuffle_buffer)
    if not isinstance(training, bool):
        raise ValueError(f"`training` must be a bool or None. Received: training={training!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ValueError(f"`seed` must be an int or None. Received: seed={seed!r}")
    if not isinstance(label_smoothing, (int, float)) or not 0.0 <= label_smoothing < 1.0:
        raise ValueError(
            f"`label_smoothing` must be a number in [0, 1). "
            f"Received: label_smoothing={label_smoothing!r}"
        )


def _records(meta, split, shape):
    """`(frames, label)` examples of one split of the cache."""

    def parse(record):
        example = tf.io.parse_single_example(record, _FEATURES)
        frames = tf.reshape(tf.io.decode_raw(example["frames"], tf.float32), shape)
        return frames, example["label"]

    ds = tf.data.TFRecordDataset(
        os.path.join(meta["path"], f"{split}.tfrecord"), compression_type=COMPRESSION
    )
    return ds, parse


def _training_stream(ds, parse, *, batch_size, seed, label_smoothing, shuffle_buffer):
    """Shuffled, augmented, label-smoothed and batch-mixed training batches (full ones)."""
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    # One random int64 per sample, a new stream every epoch; it seeds the
    # sample's augmentation and (the batch's first one) the batch mixing.
    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip((ds, keys))
    def augment_sample(sample, key):
        frames, label = sample
        frames = augment(frames, tf.stack([key, tf.constant(0, tf.int64)]))
        return frames, one_hot(label, NUM_CLASSES, float(label_smoothing)), key

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
    return finish(ds, batch_size=batch_size, training=True, seed=seed, mix_fn=mix)


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
    order="name",
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
        split: `"train"` or `"test"` (9:1 per class, in `order`).
        T: number of frames per recording.
        image_size: height and width after the bilinear resize.
        batch_size: examples per batch. Training batches are all full (the
            last partial batch of an epoch is dropped, as for every dataset:
            one input shape, the same on every replica); evaluation keeps it.
        training: whether to shuffle and augment; defaults to
            `split == "train"`.
        seed: int seed of the shuffle and of every random draw; with a seed
            the whole stream of epochs is reproducible. `None` for fresh
            randomness.
        skip_bad: see `build_cache`.
        label_smoothing: label smoothing in [0, 1), training only.
        shuffle_buffer: size of the shuffle buffer, training only.
        order: the order of each class's recordings before the 9:1 split:
            `"name"` (file names as strings, SpikingJelly's order: the split
            the published results use) or `"numeric"` (by index).

    Returns:
        A `tf.data.Dataset` of `(frames, labels)`: float32
        `(batch, T, image_size, image_size, 2)` channels-last event counts
        (bilinearly resized) and float32 `(batch, 10)` labels summing to 1.
    """
    if training is None and split in ("train", "test"):
        training = split == "train"
    _check_load_args(
        split, T, image_size, batch_size, shuffle_buffer, training, seed, label_smoothing
    )
    meta = build_cache(data_dir, T=T, image_size=image_size, skip_bad=skip_bad, order=order)
    if not meta["num_examples"][split]:
        raise ValueError(
            f"The CIFAR10-DVS {split} split is empty ({meta['num_examples']} examples per split: "
            f"the 9:1 split of each class leaves no {split} recording with fewer than 10 per "
            f"class). Received: data_dir={data_dir!r}, split={split!r}"
        )
    ds, parse = _records(meta, split, input_shape(T, image_size))
    if training:
        return _training_stream(
            ds, parse, batch_size=batch_size, seed=seed, label_smoothing=label_smoothing,
            shuffle_buffer=shuffle_buffer,
        )

    def parse_one_hot(record):
        frames, label = parse(record)
        return frames, one_hot(label, NUM_CLASSES, 0.0)

    ds = ds.map(parse_one_hot, num_parallel_calls=tf.data.AUTOTUNE)
    return finish(ds, batch_size=batch_size, training=False, seed=seed)
