import numpy as np
import pytest
import tensorflow as tf

from keras_dta.data.mixing import mix_batch


def _batch(shape=(4, 8, 8, 3), classes=5, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=shape).astype("float32")
    labels = np.eye(classes, dtype="float32")[np.arange(shape[0]) % classes]
    return tf.constant(images), tf.constant(labels)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(cutmix_alpha=1.0),
        dict(mixup_alpha=0.5, cutmix_alpha=0.0),
        dict(mixup_alpha=0.5, cutmix_alpha=1.0),
    ],
)
def test_label_rows_sum_to_one(kwargs):
    images, labels = _batch()
    for i in range(10):
        out_images, out_labels = mix_batch(images, labels, prob=1.0, seed=(i, 1), **kwargs)
        assert out_images.shape == images.shape
        np.testing.assert_allclose(out_labels.numpy().sum(axis=1), 1.0, atol=1e-6)


def test_cutmix_pasted_area_matches_label_weights():
    images, labels = _batch(shape=(4, 16, 16, 3))
    partner = np.roll(images.numpy(), 1, axis=0)
    seen_partial = False
    for i in range(20):
        out_images, out_labels = mix_batch(images, labels, prob=1.0, seed=(i, 7))
        pasted = np.all(out_images.numpy() == partner, axis=-1)  # (B, H, W)
        kept = np.all(out_images.numpy() == images.numpy(), axis=-1)
        np.testing.assert_array_equal(pasted | kept, True)
        # The same box for every example.
        np.testing.assert_array_equal(pasted, pasted[:1].repeat(4, axis=0))
        area = pasted[0].mean()
        expected = labels.numpy() * (1 - area) + np.roll(labels.numpy(), 1, axis=0) * area
        np.testing.assert_allclose(out_labels.numpy(), expected, atol=1e-6)
        seen_partial |= 0 < area < 1
    assert seen_partial


def test_mixup_weights_images_and_labels_alike_with_beta_draws():
    """MixUp's partner weight, solved from the images alone, equals the labels' weight, and
    over many batches it is distributed as Beta(alpha, alpha)."""
    from scipy import stats

    images, labels = _batch()
    partner_images = np.roll(images.numpy(), 1, axis=0)
    partner_labels = np.roll(labels.numpy(), 1, axis=0)
    alpha, weights = 0.4, []
    for i in range(200):
        out_images, out_labels = mix_batch(
            images, labels, mixup_alpha=alpha, cutmix_alpha=0.0, prob=1.0, seed=(i, 4)
        )
        # out = (1 - w) x + w partner: w from every pixel of every example.
        from_images = (out_images.numpy() - images.numpy()) / (partner_images - images.numpy())
        w = float(np.median(from_images))
        np.testing.assert_allclose(from_images, w, atol=1e-3)
        np.testing.assert_allclose(out_labels.numpy(), labels.numpy() * (1 - w) + partner_labels * w, atol=1e-4)
        weights.append(w)
    # Beta(0.4, 0.4) is symmetric, so w and 1 - w have the same law.
    assert stats.kstest(weights, stats.beta(alpha, alpha).cdf).pvalue > 1e-3
    assert stats.kstest(weights, stats.beta(4 * alpha, 4 * alpha).cdf).pvalue < 1e-3


def test_prob_zero_is_identity():
    images, labels = _batch()
    for i in range(5):
        out_images, out_labels = mix_batch(
            images, labels, mixup_alpha=0.5, cutmix_alpha=1.0, prob=0.0, seed=(i, 0)
        )
        np.testing.assert_array_equal(out_images.numpy(), images.numpy())
        np.testing.assert_array_equal(out_labels.numpy(), labels.numpy())


@pytest.mark.parametrize("mixup_alpha, cutmix_alpha", [(0.5, 1.0), (0.0, 1.0), (0.5, 0.0)])
def test_prob_one_always_mixes(mixup_alpha, cutmix_alpha):
    images, labels = _batch(shape=(4, 32, 32, 3))
    for i in range(20):
        out_images, out_labels = mix_batch(
            images,
            labels,
            mixup_alpha=mixup_alpha,
            cutmix_alpha=cutmix_alpha,
            prob=1.0,
            seed=(i, 2),
        )
        assert not np.array_equal(out_labels.numpy(), labels.numpy())
        assert not np.array_equal(out_images.numpy(), images.numpy())


def test_coin_is_drawn_per_batch_in_dataset():
    images, labels = _batch(shape=(64, 8, 8, 1))
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    ds = ds.repeat(4).map(lambda x, y: mix_batch(x, y, prob=0.5, seed=1))
    mixed = [not np.array_equal(y.numpy(), np.eye(5)[np.argmax(y.numpy(), 1)]) for _, y in ds]
    # 64 batches, p = 0.5: both outcomes occur.
    assert 0 < sum(mixed) < len(mixed)


def test_5d_same_box_over_time():
    images, labels = _batch(shape=(3, 4, 16, 16, 2))
    partner = np.roll(images.numpy(), 1, axis=0)
    out_images, out_labels = mix_batch(images, labels, prob=1.0, seed=(5, 5))
    pasted = np.all(out_images.numpy() == partner, axis=-1)  # (B, T, H, W)
    for t in range(1, 4):
        np.testing.assert_array_equal(pasted[:, t], pasted[:, 0])
    area = pasted[0, 0].mean()
    assert 0 < area < 1
    np.testing.assert_allclose(
        out_labels.numpy()[0], [1 - area, 0, area, 0, 0], atol=1e-6
    )


def test_works_in_graph_with_unknown_batch():
    images, labels = _batch()
    fn = tf.function(
        lambda x, y: mix_batch(x, y, prob=1.0, seed=0),
        input_signature=[
            tf.TensorSpec([None, None, None, 3]),
            tf.TensorSpec([None, 5]),
        ],
    )
    out_images, out_labels = fn(images, labels)
    assert out_images.shape == images.shape


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mixup_alpha=-1.0), "mixup_alpha"),
        (dict(cutmix_alpha=-0.5), "cutmix_alpha"),
        (dict(mixup_alpha=0.0, cutmix_alpha=0.0), "At least one"),
        (dict(prob=1.5), "prob"),
        (dict(switch_prob=-0.1), "switch_prob"),
    ],
)
def test_bad_arguments(kwargs, match):
    images, labels = _batch()
    with pytest.raises(ValueError, match=match):
        mix_batch(images, labels, **kwargs)


def test_bad_shapes():
    images, labels = _batch()
    with pytest.raises(ValueError, match="rank 4"):
        mix_batch(images[0], labels)
    with pytest.raises(ValueError, match="float"):
        mix_batch(tf.cast(images, tf.uint8), labels)
    with pytest.raises(ValueError, match="labels"):
        mix_batch(images, tf.argmax(labels, axis=1))
