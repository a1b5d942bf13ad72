"""The tf.data pieces every image dataset shares: one-hot labels, keyed stateless
augmentation, batching with the NaN check and the multi-worker options."""


def one_hot(labels, num_classes, label_smoothing):
    import tensorflow as tf

    y = tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=tf.float32)
    if label_smoothing:
        y = y * (1.0 - label_smoothing) + label_smoothing / num_classes
    return y


def check_finite(inputs, *rest):
    import tensorflow as tf

    message = "keras_dta: a batch of dataset inputs holds NaN or infinite values"
    return (tf.debugging.check_numerics(inputs, message), *rest)


def finish(ds, *, batch_size, training, seed, mix_fn=None):
    """Batches, applies a batch-level `mix_fn` when training, prefetches."""
    import tensorflow as tf

    # Training batches are full so that every replica gets the same shape;
    # evaluation keeps the last partial batch so every example counts.
    ds = ds.batch(batch_size, drop_remainder=training)
    # A spiking network turns NaN input into silence and still answers: stop at the data
    # boundary instead (the trainer also stops on a NaN loss).
    ds = ds.map(check_finite, num_parallel_calls=tf.data.AUTOTUNE)
    if training and mix_fn is not None:
        ds = ds.map(mix_fn, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Files of tfds splits are few; shard by element under multi-worker.
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    # Evaluation keeps the order of the data; training is reproducible under a seed.
    options.deterministic = seed is not None or not training
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def with_keys(ds, seed):
    """`(..., key)`: each example with a random int64, a new stream every epoch (the same
    stream for the same seed). Augmentation draws from stateless ops keyed by it: a stateful
    random op in a parallel map draws in whatever order the threads run, so a seeded run
    would not repeat."""
    import tensorflow as tf

    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip(ds, keys).map(lambda example, key: (*example, key))


def key_seed(key, salt):
    """A stateless-op seed from an example's key, one `salt` per kind of draw."""
    import tensorflow as tf

    return tf.stack([key, tf.constant(salt, tf.int64)])


def pad_crop_flip(image, size, pad, key):
    """CIFAR augmentation: a random `size` crop of the image padded by `pad` zeros, a flip."""
    import tensorflow as tf

    image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    image = tf.image.stateless_random_crop(image, [size, size, image.shape[-1]], seed=key_seed(key, 0))
    return tf.image.stateless_random_flip_left_right(image, seed=key_seed(key, 1))


def batch_mixer(cutmix):
    """The `mix_fn` of keyed training batches: CutMix (coin per batch) or just dropping the keys."""

    def mix(x, y, keys):
        if not cutmix:
            return x, y
        # The reference draws CutMix's coin once per epoch; mix_batch draws it per batch.
        from keras_dta.data import mixing  # TensorFlow at import: only when data is mixed

        return mixing.mix_batch(x, y, mixup_alpha=0.0, cutmix_alpha=1.0, prob=0.5, seed=key_seed(keys[0], 3))

    return mix


def random_resized_crop(image, size, key):
    """Inception-style crop: area 8%-100%, aspect 3/4-4/3, resized to `size` (keyed draw)."""
    import tensorflow as tf

    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.zeros([1, 0, 4]),
        seed=key_seed(key, 2),
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop_size)
    image = tf.image.resize(image, (size, size))
    return tf.cast(image, tf.float32)


def resize_center_crop(image, resize, crop):
    """Resizes the shorter side to `resize`, then takes the central `crop` square."""
    import tensorflow as tf

    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = resize / tf.reduce_min(shape)
    new_shape = tf.cast(tf.round(shape * scale), tf.int32)
    image = tf.image.resize(image, new_shape)
    top = (new_shape[0] - crop) // 2
    left = (new_shape[1] - crop) // 2
    image = image[top : top + crop, left : left + crop]
    image.set_shape([crop, crop, 3])
    return tf.cast(image, tf.float32)
