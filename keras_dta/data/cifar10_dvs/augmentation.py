"""Event augmentation (NDA-style policy, the paper's CIFAR10-DVS recipe), stateless.

One op of `AUGMENT_OPS` per sample, after a random horizontal flip; translate-x and
translate-y are two ops, one axis each.
"""

import math

import tensorflow as tf

AUGMENT_OPS = ("identity", "shear_x", "translate_x", "translate_y", "rotate", "cutout")
SHEAR_MAX = 0.3  # shear factor
TRANSLATE_MAX = 5.0  # pixels
ROTATE_MAX_DEGREES = 30.0
CUTOUT_AREA = (0.001, 0.11)  # fraction of the image, square


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

