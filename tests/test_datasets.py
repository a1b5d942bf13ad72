import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_dta.data import datasets, pipeline
from keras_dta.training import presets


def test_registry_lists_every_dataset():
    names = datasets.available_datasets()
    for name in ("digits", "cifar10", "cifar100", "imagenet2012", "cifar10_dvs"):
        assert name in names


def test_unknown_dataset():
    with pytest.raises(ValueError, match="Received: dataset='mnist'"):
        datasets.get_dataset("mnist")


@pytest.mark.parametrize(
    "name, model, T, batch, epochs, lr, wd",
    [
        ("cifar10", "ms_resnet18", 6, 64, 250, 0.1, 5e-5),
        ("cifar100", "ms_resnet18", 6, 64, 250, 0.1, 5e-5),
        ("imagenet2012", "ms_resnet34", 4, 128, 200, 0.1, 1e-5),
        ("cifar10_dvs", "ms_resnet18", 10, 64, 1000, 0.05, 0.0),
    ],
)
def test_presets_follow_table_4(name, model, T, batch, epochs, lr, wd):
    preset = presets.get_preset(name)
    assert preset["model"] == model
    assert preset["model_kwargs"] == {}  # the paper's widths and depths
    assert (preset["T"], preset["batch_size"], preset["epochs"]) == (T, batch, epochs)
    assert (preset["learning_rate"], preset["momentum"], preset["weight_decay"]) == (lr, 0.9, wd)


def test_cifar10_dvs_preset_and_shape():
    spec = datasets.get_dataset("cifar10_dvs")
    assert presets.get_preset("cifar10_dvs")["label_smoothing"] == 0.1
    assert spec.input_shape(10) == (10, 48, 48, 2)
    with pytest.raises(ValueError, match="data_dir"):
        spec.load("train", batch_size=2, training=True, data_dir=None)


def test_digits_split_is_stratified_and_fixed():
    spec = datasets.get_dataset("digits")
    n_train, n_test = spec.num_examples("train"), spec.num_examples("test")
    assert n_train + n_test == 1797
    assert n_test == pytest.approx(0.2 * 1797, abs=1)
    y_test = spec._splits()["test"][1]
    counts = np.bincount(y_test, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # about 36 per class
    again = datasets.Digits()._splits()["test"][1]
    np.testing.assert_array_equal(again, y_test)


@pytest.mark.parametrize("image_size", [8, 16])
def test_digits_batches(image_size):
    spec = datasets.Digits(image_size=image_size)
    ds = spec.load("train", batch_size=4, training=True, seed=1)
    x, y = next(iter(ds))
    assert x.shape == (4, image_size, image_size, 1) and x.dtype == tf.float32
    assert y.shape == (4, 10) and y.dtype == tf.float32
    np.testing.assert_allclose(y.numpy().sum(axis=1), 1.0)
    test = spec.load("test", batch_size=64, training=False)
    assert sum(int(b[0].shape[0]) for b in test) == spec.num_examples("test")
    with pytest.raises(ValueError, match="split"):
        spec.load("validation", batch_size=4, training=False)


@pytest.mark.parametrize(
    "name, classes, mean, std",
    [
        ("cifar10", 10, datasets.CIFAR10_MEAN, datasets.CIFAR10_STD),
        ("cifar100", 100, datasets.CIFAR100_MEAN, datasets.CIFAR100_STD),
    ],
)
def test_cifar_through_tfds_load(name, classes, mean, std, tmp_path):
    spec = datasets.get_dataset(name)
    with tfds.testing.mock_data(num_examples=10):
        train = spec.load("train", batch_size=4, training=True, data_dir=str(tmp_path), seed=0)
        batches = list(train)
        test = spec.load("test", batch_size=4, training=False, data_dir=str(tmp_path))
        test_batches = list(test)
    assert [int(b[0].shape[0]) for b in batches] == [4, 4]  # full training batches
    assert [int(b[0].shape[0]) for b in test_batches] == [4, 4, 2]  # every test example
    for x, y in batches + test_batches:
        assert x.shape[1:] == (32, 32, 3) and x.dtype == tf.float32
        assert y.shape[1:] == (classes,) and y.dtype == tf.float32
        np.testing.assert_allclose(y.numpy().sum(axis=1), 1.0, atol=1e-6)
    # Test images are only normalised: undoing it gives pixels in [0, 1].
    x = test_batches[0][0].numpy() * np.array(std) + np.array(mean)
    assert x.min() >= -1e-5 and x.max() <= 1 + 1e-5


def test_cifar_offline_without_data_fails_at_once_saying_where(tmp_path, monkeypatch):
    """No prepared data and no route to the download host: a one-line error naming where tfds
    looked and how to get the data, before tfds's minutes of retries."""
    import time

    probed = []
    monkeypatch.setattr(datasets, "_reachable", lambda host, **_: probed.append(host) or False)
    spec = datasets.get_dataset("cifar10")
    start = time.monotonic()
    with pytest.raises(datasets.DataNotFoundError) as error:
        spec.load("train", batch_size=2, training=True, data_dir=str(tmp_path))
    assert time.monotonic() - start < 30
    assert probed == ["www.cs.toronto.edu"]
    message = str(error.value)
    assert str(tmp_path / "cifar10") in message and "tfds build cifar10" in message
    assert "--data_dir" in message and "\n" not in message
    # Under tfds's mock data nothing is downloaded, so nothing is probed.
    probed.clear()
    with tfds.testing.mock_data(num_examples=4):
        spec.load("test", batch_size=2, training=False, data_dir=str(tmp_path))
    assert probed == []


def test_tfds_download_path_imports():
    """tensorflow-datasets' builder imports `importlib_resources` without declaring it; the
    install brings it (setup.cfg)."""
    import importlib_resources  # noqa: F401
    from tensorflow_datasets.core import dataset_builder

    assert dataset_builder.importlib_resources.files is not None


def test_imagenet_without_manual_download_says_where(tmp_path):
    spec = datasets.get_dataset("imagenet2012")
    with pytest.raises(datasets.DataNotFoundError, match="downloads/manual"):
        spec.load("train", batch_size=2, training=True, data_dir=str(tmp_path))


def test_imagenet_crops():
    image = tf.random.uniform([300, 400, 3], maxval=255.0)
    train = pipeline.random_resized_crop(tf.cast(image, tf.uint8), 224, key=tf.constant(1, tf.int64))
    assert train.shape == (224, 224, 3)
    evaluation = pipeline.resize_center_crop(image, 256, 224)
    assert evaluation.shape == (224, 224, 3)
    # The centre crop of a resized image: the middle column of the output is
    # the middle of the input.
    resized = tf.image.resize(image, (256, 341))
    np.testing.assert_allclose(evaluation.numpy(), resized.numpy()[16:240, 58:282], atol=1e-4)


def test_register_dataset_rejects_bad_name():
    with pytest.raises(ValueError, match="name"):
        datasets.register_dataset("", datasets.Digits)


def test_non_finite_inputs_stop_at_the_data_boundary():
    x = np.ones((4, 2, 2, 1), "float32")
    x[2, 0, 0, 0] = np.nan
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(4, "int64")))
    batches = pipeline.finish(ds, batch_size=2, training=False, seed=None)
    first, second = iter(batches), None
    np.testing.assert_array_equal(next(first)[0].numpy(), 1.0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or infinite"):
        second = next(first)
    assert second is None
