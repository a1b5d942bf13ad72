"""Batch-level MixUp and CutMix for `tf.data` pipelines.

`mix_batch` mixes a batch of images with the same batch rolled by one (each
example's partner is its neighbour), and mixes the soft labels with the same
weights. It runs on `tf` ops so that it can sit in a `tf.data` `map` on batched
data, for images `(batch, height, width, channels)` and for event or frame
sequences `(batch, time, height, width, channels)`.

Why not `keras.layers.CutMix` / `keras.layers.MixUp`: those layers (Keras 3.15)
always mix (they have no probability of applying, so the paper's "probability
0.5, drawn per batch" cannot be expressed), they draw one box per example
rather than one per batch, they expect rank-4 images (no shared box over a time
axis), and their random state lives in a `SeedGenerator` variable, which does
not sit well inside a `tf.data` map. The mixing itself is a few `tf` ops, so it
is written here.
"""

import tensorflow as tf

_INT32_MAX = 2**31 - 1


def _validate(mixup_alpha, cutmix_alpha, prob, switch_prob):
    for name, value in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
        if not isinstance(value, (int, float)) or value < 0:
            raise ValueError(
                f"`{name}` must be a number >= 0. Received: {name}={value!r}"
            )
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        raise ValueError(
            "At least one of `mixup_alpha` and `cutmix_alpha` must be > 0. "
            f"Received: mixup_alpha={mixup_alpha}, cutmix_alpha={cutmix_alpha}"
        )
    for name, value in (("prob", prob), ("switch_prob", switch_prob)):
        if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(
                f"`{name}` must be a number in [0, 1]. Received: {name}={value!r}"
            )


def _stateless_beta(alpha, seed):
    """One sample of Beta(alpha, alpha) as G1 / (G1 + G2) with Gamma(alpha) draws."""
    g = tf.random.stateless_gamma([2], seed=seed, alpha=float(alpha), dtype=tf.float32)
    return g[0] / (g[0] + g[1])


def _box_mask(height, width, lam, seed):
    """CutMix box of area about `(1 - lam) * height * width`, clipped at the border.

    Returns a float32 mask `(height, width)` with 1 inside the box.
    """
    ratio = tf.sqrt(1.0 - lam)
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    cut_h = tf.cast(h * ratio, tf.int32)
    cut_w = tf.cast(w * ratio, tf.int32)
    center = tf.random.stateless_uniform([2], seed=seed, dtype=tf.float32)
    cy = tf.cast(center[0] * h, tf.int32)
    cx = tf.cast(center[1] * w, tf.int32)
    # y1 = y0 + cut_h (rather than cy + cut_h // 2) keeps odd box sizes whole.
    y0 = tf.clip_by_value(cy - cut_h // 2, 0, height)
    y1 = tf.clip_by_value(cy - cut_h // 2 + cut_h, 0, height)
    x0 = tf.clip_by_value(cx - cut_w // 2, 0, width)
    x1 = tf.clip_by_value(cx - cut_w // 2 + cut_w, 0, width)
    rows = tf.range(height)
    cols = tf.range(width)
    in_rows = tf.logical_and(rows >= y0, rows < y1)
    in_cols = tf.logical_and(cols >= x0, cols < x1)
    mask = tf.logical_and(in_rows[:, None], in_cols[None, :])
    return tf.cast(mask, tf.float32)


def mix_batch(
    images,
    labels,
    *,
    mixup_alpha=0.0,
    cutmix_alpha=1.0,
    prob=0.5,
    switch_prob=0.5,
    seed=None,
):
    """Applies MixUp or CutMix to a whole batch with probability `prob`.

    One coin per call (so, in a `tf.data` map on batched data, one per batch)
    decides whether the batch is mixed. The reference implementation draws
    that coin once per epoch (a bug: a whole epoch is either all mixed or all
    clean); here it is drawn per batch.

    If both `mixup_alpha` and `cutmix_alpha` are > 0, CutMix is chosen with
    probability `switch_prob` and MixUp otherwise; if only one is > 0, that one
    is used. Each example's partner is the next example in the batch (the batch
    rolled by one).

    - CutMix: `lambda ~ Beta(cutmix_alpha, cutmix_alpha)`; a box of area about
      `(1 - lambda)` of the image, centred uniformly and clipped at the border,
      is pasted from the partner (the same box for every example and, for
      sequences, every time step). Labels are mixed by the area actually
      pasted, so clipping is accounted for.
    - MixUp: `lambda ~ Beta(mixup_alpha, mixup_alpha)`;
      `x = lambda * x + (1 - lambda) * partner`, labels likewise.

    Args:
        images: float tensor `(batch, height, width, channels)` or
            `(batch, time, height, width, channels)`.
        labels: float tensor `(batch, classes)`, one-hot or soft labels.
        mixup_alpha: MixUp's Beta parameter; 0 disables MixUp.
        cutmix_alpha: CutMix's Beta parameter; 0 disables CutMix.
        prob: probability that a batch is mixed at all.
        switch_prob: probability of CutMix (rather than MixUp) when both are
            enabled.
        seed: `None` (fresh randomness on every call), a Python int (an op
            seed: the sequence of draws is reproducible under
            `tf.random.set_seed`), or a shape `(2,)` int tensor used directly
            as a stateless seed (for example one per batch from
            `tf.data.Dataset.random()`).

    Returns:
        `(images, labels)` of the same shapes and dtypes, mixed or untouched.

    Example:

    ```python
    ds = ds.batch(64).map(
        lambda x, y: mix_batch(x, y, cutmix_alpha=1.0, prob=0.5),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    ```
    """
    _validate(mixup_alpha, cutmix_alpha, prob, switch_prob)
    images, labels = _check_batch(images, labels)
    seeds = tf.random.experimental.stateless_split(_stateless_seed(seed), num=5)
    shape = tf.shape(images)
    weight = _partner_weight(
        shape[-3], shape[-2], seeds, mixup_alpha, cutmix_alpha, prob, switch_prob
    )
    partner_images = tf.roll(images, shift=1, axis=0)
    partner_labels = tf.roll(labels, shift=1, axis=0)
    pixel_weight = tf.cast(weight[:, :, None], images.dtype)  # broadcasts over channels
    mixed_images = images * (1 - pixel_weight) + partner_images * pixel_weight
    # For CutMix this is the area actually pasted (after clipping); for MixUp
    # it is exactly 1 - lambda.
    label_weight = tf.cast(tf.reduce_mean(weight), labels.dtype)
    mixed_labels = labels * (1 - label_weight) + partner_labels * label_weight
    return mixed_images, mixed_labels


def _check_batch(images, labels):
    images = tf.convert_to_tensor(images)
    labels = tf.convert_to_tensor(labels)
    if images.shape.rank not in (4, 5):
        raise ValueError(
            "`images` must have rank 4 (batch, height, width, channels) or 5 "
            "(batch, time, height, width, channels). "
            f"Received: images.shape={images.shape}"
        )
    if not images.dtype.is_floating:
        raise ValueError(
            f"`images` must be a float tensor. Received: images.dtype={images.dtype.name}"
        )
    if labels.shape.rank != 2 or not labels.dtype.is_floating:
        raise ValueError(
            "`labels` must be float one-hot or soft labels (batch, classes). "
            f"Received: labels.shape={labels.shape}, labels.dtype={labels.dtype.name}"
        )
    return images, labels


def _stateless_seed(seed):
    """A `(2,)` int32 stateless seed from `None`, an op seed (int) or a `(2,)` tensor."""
    if seed is None or isinstance(seed, int):
        seed = tf.random.uniform(
            [2], maxval=_INT32_MAX, dtype=tf.int32, seed=seed
        )
    return tf.cast(tf.convert_to_tensor(seed), tf.int32)


def _partner_weight(height, width, seeds, mixup_alpha, cutmix_alpha, prob, switch_prob):
    """The partner's weight per pixel, float32 `(height, width)`: the box for CutMix,
    the constant `1 - lambda` for MixUp, zero when the batch's coin says no."""
    coins = tf.random.stateless_uniform([2], seed=seeds[0], dtype=tf.float32)
    apply = coins[0] < prob
    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = coins[1] < switch_prob
    else:
        use_cutmix = tf.constant(cutmix_alpha > 0)

    ones = tf.ones([height, width], tf.float32)
    if cutmix_alpha > 0:
        lam_cut = _stateless_beta(cutmix_alpha, seeds[1])
        cut_weight = _box_mask(height, width, lam_cut, seeds[2])
    else:
        cut_weight = tf.zeros([height, width], tf.float32)
    if mixup_alpha > 0:
        lam_mix = _stateless_beta(mixup_alpha, seeds[3])
        mix_weight = (1.0 - lam_mix) * ones
    else:
        mix_weight = tf.zeros([height, width], tf.float32)
    weight = tf.where(use_cutmix, cut_weight, mix_weight)
    return tf.where(apply, weight, tf.zeros_like(weight))
