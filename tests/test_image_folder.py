import json
import logging
import os
import pathlib
import tarfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dta import training
from keras_dta.data import datasets, image_files, image_folder
from keras_dta.data.image_folder import ImageFolder

CIFAR10_JPEG = (
    pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
)


def write_images(root, layout, size=8, seed=0):
    """Writes random images: `layout` is `{split: {class: count or [(h, w), ...]}}`.

    Classes are written in the order given (not sorted), as PNG unless the class
    name ends in "_jpg". Returns `{absolute path: uint8 pixels as written}`.
    """
    rng = np.random.default_rng(seed)
    pixels = {}
    for split, classes in layout.items():
        for name, images in classes.items():
            folder = pathlib.Path(root) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            shapes = [(size, size)] * images if isinstance(images, int) else images
            for i, (h, w) in enumerate(shapes):
                array = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                if name.endswith("_jpg"):
                    path, data = folder / f"{i:03d}.jpg", tf.io.encode_jpeg(array, quality=100)
                    # JPEG is lossy: what the test compares with is what decodes.
                    array = tf.io.decode_jpeg(data, channels=3).numpy()
                else:
                    path, data = folder / f"{i:03d}.png", tf.io.encode_png(array)
                path.write_bytes(data.numpy())
                pixels[str(path)] = array
    return pixels


def batches(ds):
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds))
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture
def folder(tmp_path):
    """Three classes, written out of order; a test folder; one class as JPEG."""
    root = tmp_path / "images"
    layout = {
        "train": {"zebra": 3, "ant": 2, "moth_jpg": 2},
        "test": {"moth_jpg": 1, "ant": 1, "zebra": 2},
    }
    return root, write_images(root, layout)


def test_classes_and_labels_follow_the_sorted_folders(folder):
    root, pixels = folder
    spec = ImageFolder(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    assert spec.num_examples("train", str(root)) == 7
    assert spec.class_names == ["ant", "moth_jpg", "zebra"]
    assert spec.num_classes == 3 and spec.input_shape(2) == (8, 8, 3)
    for split in ("train", "test"):
        x, y = batches(spec.load(split, batch_size=2, training=False, data_dir=str(root)))
        assert x.shape == (spec.num_examples(split), 8, 8, 3)
        expected = sorted(p for p in pixels if f"/{split}/" in p)  # class, then file name
        np.testing.assert_array_equal(
            y.argmax(1), [spec.class_names.index(p.split("/")[-2]) for p in expected]
        )
        np.testing.assert_array_equal(y.sum(1), 1.0)
        for image, path in zip(x, expected):
            np.testing.assert_allclose(image, pixels[path] / 255.0, atol=1e-6)


def test_training_batches_are_augmented_and_cutmixed(folder):
    root, _ = folder
    spec = ImageFolder(str(root))
    x, y = next(iter(spec.load("train", batch_size=2, training=True, seed=1)))
    assert x.shape == (2, 8, 8, 3) and x.dtype == tf.float32
    assert y.shape == (2, 3)
    np.testing.assert_allclose(y.numpy().sum(1), 1.0, rtol=1e-6)
    _, y = batches(spec.load("train", batch_size=2, training=True, seed=1, label_smoothing=0.1))
    assert y.min() > 0  # smoothed (and possibly mixed)


def test_split_without_test_folder_is_per_class_and_fixed(tmp_path, caplog):
    pixels = write_images(tmp_path, {"train": {"a": 10, "b": 10, "c": 5}})
    with caplog.at_level(logging.INFO, logger=image_files.__name__):
        names, splits, held_out = image_files.list_image_folder(str(tmp_path), test_fraction=0.2)
    assert held_out and "no 'test' folder: holding out 5 of the 25" in caplog.text
    (train, y_train), (test, y_test) = splits["train"], splits["test"]
    assert np.bincount(y_test).tolist() == [2, 2, 1]
    assert not set(train) & set(test) and set(train) | set(test) == set(pixels)
    for paths, labels in (splits["train"], splits["test"]):
        assert [names[y] for y in labels] == [p.split("/")[-2] for p in paths]
    again = image_files.list_image_folder(str(tmp_path), test_fraction=0.2)[1]
    assert again["test"][0] == test
    other = image_files.list_image_folder(str(tmp_path), test_fraction=0.2, split_seed=1)[1]
    assert other["test"][0] != test
    spec = ImageFolder(str(tmp_path), test_fraction=0.2)
    assert (spec.num_examples("train"), spec.num_examples("test")) == (20, 5)


def test_statistics_match_numpy_and_are_cached(folder, tmp_path, monkeypatch, caplog):
    root, pixels = folder
    train = np.stack([a for p, a in pixels.items() if "/train/" in p]) / 255.0
    stats_dir = tmp_path / "run"
    spec = ImageFolder(str(root), stats_dir=str(stats_dir))
    prepared = spec.prepare()
    np.testing.assert_allclose(prepared.mean, train.mean((0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(prepared.std, train.std((0, 1, 2)), rtol=1e-6)
    cache_path = stats_dir / image_folder.STATS_FILE
    cache = json.loads(cache_path.read_text())
    assert cache["data_dir"] == str(root) and cache["stats"]["image_size"] == 8

    def no_scan(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(image_files, "pixel_sums", no_scan)
    assert ImageFolder(str(root), stats_dir=str(stats_dir)).prepare().mean == prepared.mean
    monkeypatch.undo()

    wrong_channels = {**cache, "stats": {**cache["stats"], "mean": [0.5]}}
    for corrupt in ('{"format": 1, "scan": ', "[]", json.dumps(wrong_channels)):  # torn, not ours
        caplog.clear()
        cache_path.write_text(corrupt)
        with caplog.at_level(logging.WARNING):
            again = ImageFolder(str(root), stats_dir=str(stats_dir)).prepare()
        assert "unreadable statistics cache" in caplog.text
        np.testing.assert_allclose(again.mean, prepared.mean)
        assert json.loads(cache_path.read_text())["stats"]["mean"] == list(prepared.mean)

    caplog.clear()
    (root / "train" / "ant" / "000.png").unlink()  # the images changed: stale
    with caplog.at_level(logging.WARNING):
        fewer = ImageFolder(str(root), stats_dir=str(stats_dir)).prepare()
    assert "is stale" in caplog.text and fewer.mean != prepared.mean

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        ImageFolder(str(root), stats_dir=str(stats_dir), image_size=16).prepare()
    assert "another image size" in caplog.text


def test_given_statistics_are_used(folder):
    root, pixels = folder
    spec = ImageFolder(str(root), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x, _ = batches(spec.load("test", batch_size=4, training=False))
    first = sorted(p for p in pixels if "/test/" in p)[0]
    np.testing.assert_allclose(x[0], (pixels[first] / 255.0 - 0.5) / 0.25, atol=1e-5)


def test_mixed_sizes_are_resized_with_a_warning(tmp_path, caplog):
    write_images(
        tmp_path,
        {"train": {"a": [(8, 8), (12, 10)], "b": [(8, 8), (8, 8)]}, "test": {"a": [(6, 6)]}},
    )
    with caplog.at_level(logging.WARNING):
        spec = ImageFolder(str(tmp_path))
        assert spec.input_shape() == (32, 32, 3)  # the default when sizes differ
    assert "not all square and of one size (2 sizes)" in caplog.text
    assert "4 of 4 training and 1 of 1 test images are not 32x32" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        spec = ImageFolder(str(tmp_path), image_size=8)
        x, _ = batches(spec.load("train", batch_size=2, training=False))
    assert "1 of 4 training and 1 of 1 test images are not 8x8" in caplog.text
    assert x.shape == (4, 8, 8, 3) and np.isfinite(x).all()


def test_bmp_gif_grayscale_and_upper_case_extensions(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    for name in ("a", "b"):
        (tmp_path / "train" / name).mkdir(parents=True)
    image_module.fromarray(rgb).save(tmp_path / "train" / "a" / "1.bmp")
    image_module.fromarray(gray).save(tmp_path / "train" / "a" / "2.GIF")
    image_module.fromarray(gray).save(tmp_path / "train" / "b" / "1.PNG")
    (tmp_path / "train" / "b" / "notes.txt").write_text("not an image, not listed")
    spec = ImageFolder(str(tmp_path), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), test_fraction=0.3)
    names = {split: spec.prepare().splits[split][0] for split in ("train", "test")}
    assert sorted(os.path.basename(p) for p in names["train"] + names["test"]) == [
        "1.PNG",
        "1.bmp",
        "2.GIF",
    ]
    x, _ = batches(spec.load("train", batch_size=2, training=False))
    x = np.concatenate([x, batches(spec.load("test", batch_size=2, training=False))[0]])
    by_name = dict(zip((os.path.basename(p) for p in names["train"] + names["test"]), x))
    np.testing.assert_allclose(by_name["1.bmp"], rgb / 255.0, atol=1e-6)
    np.testing.assert_allclose(
        by_name["1.PNG"], np.repeat(gray[..., None], 3, -1) / 255.0, atol=1e-6
    )
    assert by_name["2.GIF"].shape == (8, 8, 3)


def test_equal_square_images_set_the_size(tmp_path):
    write_images(tmp_path, {"train": {"a": 2, "b": 2}}, size=12)
    assert ImageFolder(str(tmp_path)).input_shape(4) == (12, 12, 3)


def test_large_images_take_the_imagenet_pipeline(tmp_path):
    write_images(tmp_path, {"train": {"a": [(80, 96)] * 2, "b": [(96, 80)] * 2}})
    spec = ImageFolder(str(tmp_path), image_size=72, test_fraction=0.5)
    for training in (True, False):
        x, y = next(iter(spec.load("train", batch_size=2, training=training, seed=0)))
        assert x.shape == (2, 72, 72, 3) and np.isfinite(x.numpy()).all()


def _remove(path):
    for child in sorted(path.rglob("*"), reverse=True):
        child.unlink() if child.is_file() else child.rmdir()


@pytest.mark.parametrize(
    "breaks, message",
    [
        (lambda root: _remove(root) or root.rmdir(), "does not exist. Received: data_dir="),
        (lambda root: _remove(root / "train") or (root / "train").rmdir(), "has no 'train' folder"),
        (
            lambda root: (root / "train" / "empty").mkdir(),
            r"holds no images.*Received: class='empty'",
        ),
        (
            lambda root: (root / "test" / "empty").mkdir(),
            r"holds no images.*Received: class='empty'",
        ),
        (lambda root: (root / "train" / "b" / "1.jpg").write_bytes(b"not an image"), r"b/1\.jpg"),
        (lambda root: (root / "test" / "b" / "x.png").write_bytes(b""), r"x\.png"),
        (
            lambda root: write_images(root, {"test": {"c": 1}}),
            r"'c' is in .*test but not in .*train",
        ),
        (
            lambda root: _remove(root / "train" / "b") or (root / "train" / "b").rmdir(),
            "at least two classes",
        ),
        (lambda root: _remove(root / "train"), r"No images \(.jpg"),
    ],
    ids=[
        "no_dir",
        "no_train",
        "empty_class",
        "empty_test_class",
        "corrupt",
        "corrupt_test",
        "test_only_class",
        "one_class",
        "no_images",
    ],
)
def test_bad_input_names_the_offender(tmp_path, breaks, message):
    root = tmp_path / "images"
    write_images(root, {"train": {"a": 2, "b": 2}, "test": {"a": 1, "b": 1}})
    breaks(root)
    with pytest.raises(ValueError, match=message):
        ImageFolder(str(root)).num_examples("train")


def test_bad_arguments():
    with pytest.raises(ValueError, match="Received: data_dir=None"):
        ImageFolder().num_classes
    with pytest.raises(ValueError, match="Received: image_size=0"):
        ImageFolder(image_size=0)
    with pytest.raises(ValueError, match="Received: test_fraction=1"):
        ImageFolder(test_fraction=1)
    with pytest.raises(ValueError, match="Pass both `mean` and `std`"):
        ImageFolder(mean=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="3 values each"):
        ImageFolder(mean=(0.5,), std=(0.2,))


def test_skip_bad_skips_and_counts(folder, caplog):
    root, _ = folder
    (root / "train" / "ant" / "bad.png").write_bytes(b"\x89PNG but no more")
    (root / "test" / "zebra" / "bad.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=r"2 image\(s\) cannot be decoded.*skip_bad"):
        ImageFolder(str(root)).prepare()
    with caplog.at_level(logging.WARNING):
        spec = ImageFolder(str(root), skip_bad=True)
        assert (spec.num_examples("train"), spec.num_examples("test")) == (7, 4)
    assert "Skipping 2 image(s) that cannot be decoded" in caplog.text
    x, y = batches(spec.load("test", batch_size=2, training=False))
    assert x.shape[0] == y.shape[0] == 4


def test_augment_false_trains_on_the_images_as_they_are(folder):
    """`augment=False`: the training batches hold exactly the evaluation pipeline's images
    (shuffled); with augmentation some are cropped or flipped."""
    root, _ = folder

    def train_and_plain(augment):
        spec = ImageFolder(str(root), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), cutmix=False, augment=augment)
        x_train, _ = batches(spec.load("train", batch_size=7, training=True, seed=3))
        x_plain, _ = batches(spec.load("train", batch_size=7, training=False))
        return x_train, x_plain

    x_train, x_plain = train_and_plain(False)
    key = lambda images: sorted(images.reshape(len(images), -1).tolist())
    assert key(x_train) == key(x_plain)
    x_train, x_plain = train_and_plain(True)
    assert key(x_train) != key(x_plain)


def test_registered_with_the_paper_preset_and_the_cpu_one():
    spec = datasets.get_dataset("image_folder", image_size=16, test_fraction=0.2)
    assert isinstance(spec, ImageFolder) and (spec.image_size, spec.test_fraction) == (16, 0.2)
    with pytest.raises(ValueError, match="does not take these options"):
        datasets.get_dataset("image_folder", colour="sepia")
    config = training.make_config("image_folder", model_dir="unused").validate()
    assert config.preset == "image_folder" and config.dataset_kwargs == {}
    assert (config.model, config.T, config.batch_size, config.epochs) == ("ms_resnet18", 6, 64, 250)
    assert (config.learning_rate, config.momentum, config.weight_decay) == (0.1, 0.9, 5e-5)
    cpu = training.make_config("image_folder", preset="cpu_small", model_dir="unused").validate()
    assert cpu.model_kwargs["stage_filters"] == [32, 64, 128] and (cpu.T, cpu.batch_size) == (2, 64)
    # The CPU recipe turns augmentation off where the dataset has the option; the caller's
    # options win.
    assert cpu.dataset_kwargs == {"cutmix": False, "augment": False} and cpu.epochs == 5
    assert training.make_config("digits", preset="cpu_small").dataset_kwargs == {}
    assert training.make_config("cifar10", preset="cpu_small").dataset_kwargs == {"cutmix": False}
    mine = training.make_config("image_folder", preset="cpu_small", dataset_kwargs={"cutmix": True, "image_size": 24})
    assert mine.dataset_kwargs == {"cutmix": True, "augment": False, "image_size": 24}
    spec = datasets.get_dataset("image_folder", **cpu.dataset_kwargs)
    assert not spec.cutmix and not spec.augment
    with pytest.raises(ValueError, match="preset='tiny'"):
        training.make_config("image_folder", preset="tiny")


def test_train_two_steps_on_a_tiny_folder(tmp_path):
    write_images(tmp_path / "images", {"train": {"a": 4, "b": 4, "c": 4}}, size=16)
    config = training.make_config(
        "image_folder",
        data_dir=str(tmp_path / "images"),
        model_dir=str(tmp_path / "run"),
        model_kwargs={
            "stem_filters": 4,
            "stage_filters": [8, 8],
            "stage_blocks": [1, 1],
            "stage_strides": [1, 2],
        },
        T=2,
        epochs=1,
        batch_size=2,
        steps_per_epoch=2,
        eval_steps=1,
        jit_compile=False,
        distribute="none",
        export=False,
        firing_rate_freq=0,
        dataset_kwargs={"test_fraction": 0.25},
    )
    results = training.train(config, verbose=0)
    assert results["optimizer_iterations"] == 2
    model = keras.saving.load_model(os.path.join(config.model_dir, "best.keras"))
    assert model.input_shape == (None, 16, 16, 3) and model.output_shape == (None, 3)
    # The normalisation statistics are cached in the run directory, the options recorded.
    assert os.path.isfile(os.path.join(config.model_dir, image_folder.STATS_FILE))
    with open(os.path.join(config.model_dir, "config.json")) as f:
        assert json.load(f)["dataset_kwargs"] == {"test_fraction": 0.25}


def extract_cifar10_jpeg(dest, classes, per_split):
    """Extracts the first `per_split` images of `classes` of each split of the archive."""
    wanted = {(split, c): per_split for split in ("train", "test") for c in classes}
    with tarfile.open(CIFAR10_JPEG, "r|gz") as archive:  # streamed: stops when done
        for member in archive:
            parts = member.name.split("/")
            key = tuple(parts[1:3])
            if len(parts) == 4 and member.isfile() and wanted.get(key, 0) > 0:
                target = dest / "/".join(parts[1:])
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.extractfile(member).read())
                wanted[key] -= 1
            if not any(wanted.values()):
                break
    return dest


@pytest.mark.skipif(
    not CIFAR10_JPEG.exists(), reason=f"the real CIFAR-10 JPEGs ({CIFAR10_JPEG}) are absent"
)
def test_real_cifar10_jpegs(tmp_path):
    root = extract_cifar10_jpeg(tmp_path / "cifar", ["airplane", "automobile", "bird"], per_split=4)
    spec = ImageFolder(str(root), stats_dir=str(tmp_path / "run"))
    assert spec.class_names == ["airplane", "automobile", "bird"]
    assert spec.input_shape() == (32, 32, 3) and spec.num_examples("test") == 12
    x, y = batches(spec.load("test", batch_size=4, training=False))
    first = (
        tf.io.decode_jpeg((root / "test" / "airplane" / "0000.jpg").read_bytes()).numpy() / 255.0
    )
    prepared = spec.prepare()
    np.testing.assert_allclose(x[0] * prepared.std + prepared.mean, first, atol=1e-5)
    assert y.argmax(1).tolist() == [0] * 4 + [1] * 4 + [2] * 4
    x, y = next(iter(spec.load("train", batch_size=4, training=True, seed=0)))
    assert x.shape == (4, 32, 32, 3) and np.isfinite(x.numpy()).all()


@pytest.mark.skipif(
    not CIFAR10_JPEG.exists(), reason=f"the real CIFAR-10 JPEGs ({CIFAR10_JPEG}) are absent"
)
def test_paper_recipe_smoke_run_on_real_jpegs(tmp_path):
    """The path a GPU user takes, a few steps of it on the CPU: `trainers/fit.py --dataset
    image_folder` at 32x32 with the paper's recipe (MS-ResNet-18 at full width, T = 6, DTA)."""
    import subprocess
    import sys

    root = extract_cifar10_jpeg(tmp_path / "cifar", ["airplane", "cat", "ship"], per_split=4)
    run = tmp_path / "run"
    repo = pathlib.Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(repo / "trainers" / "fit.py"), "--dataset=image_folder", f"--data_dir={root}",
           f"--model_dir={run}", "--epochs=1", "--steps_per_epoch=2", "--batch_size=2", "--eval_steps=1",
           "--noexport", "--firing_rate_freq=0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((run / "config.json").read_text())
    assert (config["preset"], config["model"], config["T"], config["attn"]) == ("image_folder", "ms_resnet18", 6, "dta")
    assert config["model_kwargs"] == {} and config["epochs"] == 1
    assert json.loads((run / "results.json").read_text())["optimizer_iterations"] == 2
    model = keras.saving.load_model(run / "best.keras", compile=False)
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 3)
    convs = [getattr(layer, "layer", layer) for layer in model.layers]
    widths = [conv.filters for conv in convs if isinstance(conv, keras.layers.Conv2D)]
    assert max(widths) == 512  # the paper's widths, not the small preset's
