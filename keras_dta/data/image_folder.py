"""Train on your own images: a folder of class folders.

Layout (that of `tfds.folder_dataset.ImageFolder`):

```
DIR/train/<class>/*.{jpg,jpeg,png,bmp,gif}
DIR/test/<class>/...        (optional: held out for evaluation)
```

Class names are the sorted names of the folders in `DIR/train` (hidden folders
are ignored); label `i` is the `i`-th of them. Class folders are read one level
deep; files with other extensions are ignored. Images are decoded by TensorFlow
(`tf.io.decode_image`, by content, so the extension only selects the files) as
RGB: grayscale is repeated over three channels, alpha dropped, GIFs give their
first frame. Without a `test` folder, each class of `train` is split once with a
fixed seed: `test_fraction` of its images (at least one, when it has two or
more) are held out as `test`, and a log line says so.

The recipe follows the image size `image_size` (default: the side of the
training images when they are all square and of one size, else 32):

- CIFAR scale (`image_size <= 64`), the paper's CIFAR recipe: images of another
  size are resized to `image_size` (a warning counts them); training takes a
  random crop of the image padded by 4 zero pixels, a horizontal flip, and
  normalises; CutMix (Beta(1, 1), probability 0.5 drawn per batch) mixes the
  batch. Evaluation only normalises.
- Larger, ImageNet style: training takes a random resized crop (area 8%-100%)
  to `image_size` and a flip; evaluation resizes the shorter side to
  `image_size * 256 / 224` and takes the central square. No CutMix.

Normalisation: per-channel mean and standard deviation of the training pixels
(in [0, 1], at `image_size`), unless `mean` and `std` are given. They are
computed once, in the same pass that checks every image decodes and records its
size, and cached with that scan as JSON (`STATS_FILE`) in `stats_dir` (the
trainer passes the run directory). The cache is keyed by the absolute `DIR`, a
fingerprint of the image files (names, byte sizes, modification times) and
`image_size`; a stale or unreadable cache is recomputed with a warning.

Bad input raises `ValueError` naming the offending argument, folder or file: a
missing `DIR` or `DIR/train`, no images at all, an empty class folder, fewer
than two classes, a class in `test` but not in `train`, and an image that does
not decode (with `skip_bad=True` such files are skipped instead, and a warning
counts them).

Contract with a trainer. The number of classes and the input shape come from
the folder, so the dataset must see `data_dir` before the model is built:

```python
spec = datasets.get_dataset("image_folder")  # or ImageFolder(image_size=..., ...)
spec.prepare(data_dir, stats_dir=run_dir)  # lists, scans, writes/reads the stats cache
model = build(num_classes=spec.num_classes, input_shape=spec.input_shape(T))
train = spec.load("train", batch_size=64, training=True, data_dir=data_dir, seed=0)
```

`num_examples(split, data_dir)` and `load(..., data_dir=...)` prepare the folder
themselves (once per `data_dir`; the results are kept on the object), so a
trainer that asks for `num_examples("train", data_dir)` before building the
model works without calling `prepare`; it then computes the statistics in
memory only, and `num_classes`/`input_shape` describe the `data_dir` prepared
last.

Example:

>>> spec = ImageFolder(stats_dir="runs/pets")
>>> spec.prepare("/data/pets")
>>> spec.class_names, spec.input_shape()
(['cat', 'dog'], (32, 32, 3))

Presets: `PAPER_PRESET` (the paper's CIFAR recipe, the default) and
`CPU_PRESET` (a small model for one CPU).
"""

import dataclasses
import hashlib
import json
import logging
import os

import numpy as np

from keras_dta import files
from keras_dta.data import datasets, mixing

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# The largest side trained with the CIFAR recipe; larger images get the
# ImageNet-style crops.
CIFAR_SCALE = 64
DEFAULT_IMAGE_SIZE = 32
STATS_FILE = "image_folder_stats.json"
_CACHE_FORMAT = 1

# The paper's CIFAR recipe (Table 4).
PAPER_PRESET = {
    "model": "ms_resnet18",
    "model_kwargs": {},
    "T": 6,
    "batch_size": 64,
    "epochs": 250,
    "learning_rate": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-5,
    "label_smoothing": 0.0,
}

# A small MS-ResNet (the digits preset's) that trains in minutes on one CPU:
# at 32x32, about 300 images/s on two cores.
CPU_PRESET = {
    "model": "ms_resnet18",
    "model_kwargs": {
        "stem_filters": 16,
        "stage_filters": [32, 64, 128],
        "stage_blocks": [1, 1, 1],
        "stage_strides": [1, 2, 2],
    },
    "T": 2,
    "batch_size": 64,
    "epochs": 8,
    "learning_rate": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-5,
    "label_smoothing": 0.0,
    "mixed_precision": "float32",
}


@dataclasses.dataclass
class PreparedFolder:
    """What `ImageFolder.prepare` found in one folder.

    Attributes:
        data_dir: the absolute folder.
        class_names: sorted class names; label `i` is `class_names[i]`.
        splits: `{"train": (paths, labels), "test": (paths, labels)}`, the
            readable images only.
        held_out: whether `test` was split off `train` (no `test` folder).
        image_size: the side of the model input.
        mean, std: per-channel normalisation constants for [0, 1] pixels.
    """

    data_dir: str
    class_names: list
    splits: dict
    held_out: bool
    image_size: int
    mean: tuple
    std: tuple


def _list_class_folder(folder):
    names = sorted(
        f
        for f in os.listdir(folder)
        if not f.startswith(".")
        and f.lower().endswith(IMAGE_EXTENSIONS)
        and os.path.isfile(os.path.join(folder, f))
    )
    return [os.path.join(folder, f) for f in names]


def _list_split(split_dir):
    """`{class: [paths]}` of the class folders of `split_dir`, sorted."""
    classes = sorted(
        d
        for d in os.listdir(split_dir)
        if not d.startswith(".") and os.path.isdir(os.path.join(split_dir, d))
    )
    listing = {c: _list_class_folder(os.path.join(split_dir, c)) for c in classes}
    if not any(listing.values()):
        raise ValueError(
            f"No images ({', '.join(IMAGE_EXTENSIONS)}) in any class folder of "
            f"{split_dir}; expected {split_dir}/<class>/<image>. "
            f"Received: class folders={classes}"
        )
    for c, paths in listing.items():
        if not paths:
            raise ValueError(
                f"The class folder {os.path.join(split_dir, c)} holds no images "
                f"({', '.join(IMAGE_EXTENSIONS)}); add some or remove it. Received: class={c!r}"
            )
    return listing


def list_image_folder(data_dir, *, test_fraction=0.1, split_seed=0):
    """Lists `data_dir/train` and `data_dir/test` (or splits `train`), checking the layout.

    Args:
        data_dir: the folder holding `train/` and optionally `test/`.
        test_fraction: fraction of each class held out when there is no `test/`.
        split_seed: seed of that split.

    Returns:
        `(class_names, {"train": (paths, labels), "test": (paths, labels)}, held_out)`,
        absolute paths sorted by class, then by name.

    Raises:
        ValueError: a bad layout, naming the folder or class.
    """
    if not data_dir:
        raise ValueError(
            "image_folder reads DIR/train/<class>/<image>: pass the folder as data_dir "
            f"(--data_dir). Received: data_dir={data_dir!r}"
        )
    if not os.path.isdir(data_dir):
        raise ValueError(f"The image folder does not exist. Received: data_dir={data_dir!r}")
    root = os.path.abspath(data_dir)
    train_dir = os.path.join(root, "train")
    if not os.path.isdir(train_dir):
        raise ValueError(
            f"The image folder has no 'train' folder ({train_dir}); expected "
            f"DIR/train/<class>/<image>. Received: data_dir={data_dir!r}"
        )
    train = _list_split(train_dir)
    class_names = sorted(train)
    if len(class_names) < 2:
        raise ValueError(
            f"An image folder needs at least two classes; {train_dir} has {class_names}. "
            f"Received: data_dir={data_dir!r}"
        )
    index = {c: i for i, c in enumerate(class_names)}

    def flatten(listing):
        paths = [p for c in sorted(listing) for p in listing[c]]
        labels = [index[c] for c in sorted(listing) for _ in listing[c]]
        return paths, np.asarray(labels, np.int64)

    test_dir = os.path.join(root, "test")
    if os.path.isdir(test_dir):
        test = _list_split(test_dir)
        unknown = sorted(set(test) - set(train))
        if unknown:
            raise ValueError(
                f"The class {unknown[0]!r} is in {test_dir} but not in {train_dir}: "
                f"a test class needs training images. Received: class={unknown[0]!r}"
            )
        missing = sorted(set(train) - set(test))
        if missing:
            logger.warning("%s has no images of the classes %s.", test_dir, missing)
        return class_names, {"train": flatten(train), "test": flatten(test)}, False

    kept, held = {}, {}
    for label, c in enumerate(class_names):
        paths = train[c]
        n_test = int(round(len(paths) * test_fraction))
        n_test = min(max(n_test, 1), len(paths) - 1) if len(paths) > 1 else 0
        # A generator per class: adding a class leaves the other classes' splits alone.
        order = np.random.default_rng([split_seed, label]).permutation(len(paths))
        held[c] = sorted(paths[i] for i in order[:n_test])
        kept[c] = sorted(paths[i] for i in order[n_test:])
    logger.info(
        "%s has no 'test' folder: holding out %d of the %d training images (%g of each "
        "class, seed %d) as the test split.",
        data_dir,
        sum(map(len, held.values())),
        sum(map(len, train.values())),
        test_fraction,
        split_seed,
    )
    return class_names, {"train": flatten(kept), "test": flatten(held)}, True


def _decode(path):
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _resized(image, size):
    """uint8 `(h, w, 3)` -> float32 `(size, size, 3)` in [0, 1]; untouched at that size."""
    import tensorflow as tf

    image = tf.cast(image, tf.float32) / 255.0
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))
    image = tf.cond(
        same,
        lambda: image,
        lambda: tf.image.resize(image, (size, size), antialias=True),
    )
    image.set_shape([size, size, 3])
    return image


def _pixel_sums(paths, size=None):
    """Per image: `(index, (h, w), channel sums, channel sums of squares)`, as numpy.

    Images that fail to decode are dropped (their index is missing). With
    `size`, images are first resized as the CIFAR-scale pipeline resizes them.
    """
    import tensorflow as tf

    def measure(i, path):
        image = _decode(path)
        x = _resized(image, size) if size else tf.cast(image, tf.float32) / 255.0
        x = tf.cast(x, tf.float64)
        return i, tf.shape(image)[:2], tf.reduce_sum(x, [0, 1]), tf.reduce_sum(x * x, [0, 1])

    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), list(paths)))
    ds = ds.map(measure, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    ds = ds.ignore_errors().batch(4096)
    parts = list(ds.as_numpy_iterator())
    if not parts:
        empty = np.zeros((0, 3))
        return np.zeros(0, np.int64), np.zeros((0, 2), np.int64), empty, empty
    index, shapes, sums, squares = (np.concatenate(p) for p in zip(*parts))
    order = np.argsort(index)  # a fixed summation order: the same statistics every time
    return index[order], shapes[order], sums[order], squares[order]


def _decode_error(path):
    import tensorflow as tf

    try:
        _decode(path)
    except (tf.errors.OpError, OSError) as e:
        return getattr(e, "message", str(e)).splitlines()[0]
    return "failed to decode in tf.data"


def _mean_std(shapes, sums, squares, size=None):
    pixels = float(np.sum(shapes[:, 0] * shapes[:, 1])) if size is None else len(shapes) * size**2
    mean = sums.sum(0) / pixels
    std = np.sqrt(np.maximum(squares.sum(0) / pixels - mean**2, 0.0))
    return [float(v) for v in mean], [float(v) for v in std]


def scan_images(paths, num_train):
    """Decodes every image once: sizes, unreadable files, and raw pixel statistics.

    Args:
        paths: all image paths, the `num_train` training images first.
        num_train: how many of `paths` are training images (their pixels give
            the statistics).

    Returns:
        A JSON-able dict: `bad` (`{path: error}`), `sizes` (`{"train"|"test":
        {"HxW": count}}`, readable images only), and `mean`, `std` of the
        readable training pixels at their own sizes.
    """
    index, shapes, sums, squares = _pixel_sums(paths)
    bad = sorted(set(range(len(paths))) - set(index.tolist()))
    train = index < num_train
    sizes = {"train": {}, "test": {}}
    for i, (h, w) in zip(index, shapes):
        counts = sizes["train" if i < num_train else "test"]
        counts[f"{h}x{w}"] = counts.get(f"{h}x{w}", 0) + 1
    mean, std = _mean_std(shapes[train], sums[train], squares[train]) if train.any() else (None, None)
    return {
        "bad": {paths[i]: _decode_error(paths[i]) for i in bad},
        "sizes": sizes,
        "mean": mean,
        "std": std,
    }


def _fingerprint(paths):
    digest = hashlib.sha256()
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class ImageFolder:
    """A dataset of images in class folders (see the module docstring).

    Args:
        data_dir: the folder, when not passed to `prepare`/`num_examples`/`load`.
        image_size: side of the (square) model input; `None`: the side of the
            training images if they are all square and of one size, else 32.
        test_fraction: fraction of each class held out when there is no `test/`.
        split_seed: seed of that split.
        mean, std: per-channel normalisation constants for [0, 1] pixels (3
            each); `None` for both: computed from the training images.
        stats_dir: directory of the statistics cache (`STATS_FILE`); `None`:
            statistics are kept in memory only.
        skip_bad: skip images that fail to decode (with a warning counting
            them) rather than raise.
        cutmix: apply CutMix to training batches at CIFAR scale.
        preset: the training recipe (`TrainConfig` fields); `PAPER_PRESET` by default.
    """

    name = "image_folder"
    eval_split = "test"

    def __init__(
        self,
        data_dir=None,
        *,
        image_size=None,
        test_fraction=0.1,
        split_seed=0,
        mean=None,
        std=None,
        stats_dir=None,
        skip_bad=False,
        cutmix=True,
        preset=None,
    ):
        if image_size is not None and (
            isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
        ):
            raise ValueError(
                f"`image_size` must be a positive integer or None. Received: image_size={image_size!r}"
            )
        if not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
            raise ValueError(
                f"`test_fraction` must be in (0, 1). Received: test_fraction={test_fraction!r}"
            )
        if (mean is None) != (std is None):
            raise ValueError(f"Pass both `mean` and `std`, or neither. Received: mean={mean!r}, std={std!r}")
        if mean is not None:
            mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
            if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
                raise ValueError(
                    "`mean` and `std` need 3 values each (RGB), std > 0. "
                    f"Received: mean={mean!r}, std={std!r}"
                )
        self.data_dir = data_dir
        self.image_size = image_size
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.mean = mean
        self.std = std
        self.stats_dir = stats_dir
        self.skip_bad = skip_bad
        self.cutmix = cutmix
        self.preset = dict(PAPER_PRESET if preset is None else preset)
        self._prepared = {}
        self._current = None

    # -- what the folder holds --------------------------------------------------

    def prepare(self, data_dir=None, stats_dir=None):
        """Lists and scans `data_dir` once (later calls return what was found).

        Args:
            data_dir: the folder; `None`: the constructor's, else the one
                prepared last.
            stats_dir: where the statistics cache goes; `None`: the constructor's.

        Returns:
            A `PreparedFolder`; it also becomes the one `num_classes`,
            `class_names` and `input_shape` describe.
        """
        data_dir = data_dir or self.data_dir
        if not data_dir and self._current is not None:
            return self._current
        root = os.path.abspath(data_dir) if data_dir else None
        if root not in self._prepared:
            class_names, splits, held_out = list_image_folder(
                data_dir, test_fraction=self.test_fraction, split_seed=self.split_seed
            )
            stats_dir = stats_dir or self.stats_dir
            self._prepared[root] = self._scan(root, class_names, splits, held_out, stats_dir)
        self._current = self._prepared[root]
        return self._current

    def _scan(self, root, class_names, splits, held_out, stats_dir):
        paths = splits["train"][0] + splits["test"][0]
        num_train = len(splits["train"][0])
        fingerprint = _fingerprint(paths)
        cache_path = os.path.join(stats_dir, STATS_FILE) if stats_dir else None
        cache = _read_cache(cache_path, root, fingerprint)
        if cache is None:
            cache = {"format": _CACHE_FORMAT, "data_dir": root, "fingerprint": fingerprint}
            cache["scan"] = scan_images(paths, num_train)
        scan = cache["scan"]

        bad = scan["bad"]
        if bad and not self.skip_bad:
            path, error = next(iter(bad.items()))
            raise ValueError(
                f"{len(bad)} image(s) cannot be decoded, the first: {path} ({error}). "
                "Fix or remove them, or pass skip_bad=True (--skip_bad) to skip them. "
                f"Received: file={path!r}"
            )
        if bad:
            logger.warning("Skipping %d image(s) that cannot be decoded: %s", len(bad), sorted(bad)[:10])
            splits = {
                split: ([p for p in ps if p not in bad], np.asarray([y for p, y in zip(ps, ys) if p not in bad]))
                for split, (ps, ys) in splits.items()
            }
            if not splits["train"][0]:
                raise ValueError(f"No training image of {root} can be decoded. Received: data_dir={root!r}")

        size = self.image_size or _default_size(scan["sizes"]["train"])
        other = {
            split: sum(n for hw, n in counts.items() if hw != f"{size}x{size}")
            for split, counts in scan["sizes"].items()
        }
        if sum(other.values()):
            log = logger.warning if size <= CIFAR_SCALE else logger.info
            log(
                "%d of %d training and %d of %d test images are not %dx%d; they are resized to it.",
                other["train"], len(splits["train"][0]), other["test"], len(splits["test"][0]), size, size,
            )

        mean, std = self.mean, self.std
        if mean is None:
            stats = cache.get("stats")
            if stats is not None and stats.get("image_size") != size:
                logger.warning("The statistics in %s are for another image size; recomputing.", cache_path)
                stats = None
            if stats is None:
                stats = {"image_size": size, "mean": scan["mean"], "std": scan["std"]}
                if other["train"]:
                    # At mixed sizes, measure the pixels the model sees.
                    _, shapes, sums, squares = _pixel_sums(splits["train"][0], size)
                    stats["mean"], stats["std"] = _mean_std(shapes, sums, squares, size)
                cache["stats"] = stats
            mean, std = tuple(stats["mean"]), tuple(stats["std"])
        if cache_path:
            files.write_json(cache_path, cache)
        return PreparedFolder(root, class_names, splits, held_out, size, mean, std)

    def _folder(self):
        if self._current is None:
            if not self.data_dir:
                raise ValueError(
                    "image_folder learns its classes and image size from the folder: call "
                    "prepare(data_dir) (or num_examples/load with data_dir) first. "
                    f"Received: data_dir={self.data_dir!r}"
                )
            self.prepare()
        return self._current

    @property
    def class_names(self):
        return list(self._folder().class_names)

    @property
    def num_classes(self):
        return len(self._folder().class_names)

    def input_shape(self, T=None):
        size = self._folder().image_size
        return (size, size, 3)

    def _check_split(self, split):
        if split not in ("train", "test"):
            raise ValueError(
                f"Unknown split for image_folder. Expected 'train' or 'test'. Received: split={split!r}"
            )

    def num_examples(self, split, data_dir=None, T=None):
        self._check_split(split)
        return len(self.prepare(data_dir).splits[split][0])

    # -- the input pipeline -------------------------------------------------------

    def load(
        self,
        split,
        *,
        batch_size,
        training,
        data_dir=None,
        seed=None,
        T=None,
        label_smoothing=0.0,
    ):
        """A batched `tf.data.Dataset` of `(images (batch, size, size, 3), one-hot labels)`."""
        import keras
        import tensorflow as tf

        self._check_split(split)
        folder = self.prepare(data_dir)
        paths, labels = folder.splits[split]
        size, num_classes = folder.image_size, len(folder.class_names)
        mean = tf.constant(folder.mean, tf.float32)
        std = tf.constant(folder.std, tf.float32)
        ds = tf.data.Dataset.from_tensor_slices((list(paths), np.asarray(labels, np.int64)))
        if training:
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        # Per example: keras.layers.RandomCrop draws one offset per call.
        crop = keras.layers.RandomCrop(size, size, seed=seed)
        flip = keras.layers.RandomFlip("horizontal", seed=seed)
        cifar = size <= CIFAR_SCALE

        def prepare(path, label):
            image = _decode(path)
            if cifar:
                image = _resized(image, size)
                if training:
                    image = flip(crop(tf.pad(image, [[4, 4], [4, 4], [0, 0]])))
            elif training:
                image = flip(datasets._random_resized_crop(image, size, seed)) / 255.0
            else:
                image = datasets._resize_center_crop(image, round(size * 256 / 224), size) / 255.0
            image = (image - mean) / std
            return image, datasets._one_hot(label, num_classes, label_smoothing)

        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        mix_fn = None
        if cifar and self.cutmix:

            def mix_fn(x, y):
                return mixing.mix_batch(x, y, mixup_alpha=0.0, cutmix_alpha=1.0, prob=0.5)

        return datasets._finish(ds, batch_size=batch_size, training=training, seed=seed, mix_fn=mix_fn)


def _default_size(train_sizes):
    """The side of the training images when all are square and of one size, else 32."""
    if len(train_sizes) == 1:
        h, w = (int(v) for v in next(iter(train_sizes)).split("x"))
        if h == w:
            return h
    logger.warning(
        "The training images are not all square and of one size (%d sizes); using "
        "image_size=%d (pass image_size to choose).",
        len(train_sizes),
        DEFAULT_IMAGE_SIZE,
    )
    return DEFAULT_IMAGE_SIZE


def _read_cache(path, root, fingerprint):
    """The cached scan of `root`, or None (absent, unreadable or stale: with a warning)."""
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            cache = json.load(f)
        scan = cache["scan"]
        for key in ("bad", "sizes", "mean", "std"):
            scan[key]  # noqa: B018 (raises KeyError on a truncated cache)
        stats = cache.get("stats")
        if stats is not None and not (len(stats["mean"]) == len(stats["std"]) == 3):
            raise ValueError("the statistics do not have three channels")
    except (OSError, ValueError, KeyError, TypeError) as e:
        logger.warning("Ignoring the unreadable statistics cache %s (%s: %s); recomputing.", path, type(e).__name__, e)
        return None
    key = (cache.get("format"), cache.get("data_dir"), cache.get("fingerprint"))
    if key != (_CACHE_FORMAT, root, fingerprint):
        logger.warning(
            "The statistics cache %s is stale (it describes %s, or the images changed); recomputing.",
            path,
            cache.get("data_dir"),
        )
        return None
    return cache
