"""Train on your own images: a folder of class folders.

```
python trainers/fit.py --dataset image_folder --data_dir DIR
```

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
last. Asking for `num_classes` or `input_shape` of an object that has seen no
folder raises `ValueError`. Whatever reads the data again later (evaluation,
export) must build the dataset with the same `image_size`, `mean`/`std`,
`test_fraction` and `split_seed`; computed statistics come out the same
(a fixed summation order), and with the same `stats_dir` they are read back.

Example:

>>> spec = ImageFolder(stats_dir="runs/pets")
>>> spec.prepare("/data/pets")
>>> spec.class_names, spec.input_shape()
(['cat', 'dog'], (32, 32, 3))

Recipes are the trainer's (`keras_dta.training.presets`): `image_folder` (the
paper's CIFAR recipe, the default, also at larger image sizes) and `cpu_small`
(a small model for one CPU: `--preset cpu_small`).
"""

import dataclasses
import logging
import os

import numpy as np

from keras_dta import files
from keras_dta.data import image_files, pipeline
from keras_dta.data.image_files import IMAGE_EXTENSIONS, list_image_folder  # noqa: F401

logger = logging.getLogger(__name__)

# The largest side trained with the CIFAR recipe; larger images get the
# ImageNet-style crops.
CIFAR_SCALE = 64
DEFAULT_IMAGE_SIZE = 32
STATS_FILE = "image_folder_stats.json"

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
        augment: crop and flip training images (at CIFAR scale a 4-pixel padded crop, larger
            a random resized crop); `False` trains on the images as they are (resized and
            normalised), which fits faster in a few epochs.
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
        augment=True,
    ):
        if image_size is not None and (
            isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
        ):
            raise ValueError(
                "`image_size` must be a positive integer or None. "
                f"Received: image_size={image_size!r}"
            )
        if not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
            raise ValueError(
                f"`test_fraction` must be in (0, 1). Received: test_fraction={test_fraction!r}"
            )
        if isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0:
            raise ValueError(
                f"`split_seed` must be an integer >= 0. Received: split_seed={split_seed!r}"
            )
        if (mean is None) != (std is None):
            raise ValueError(
                f"Pass both `mean` and `std`, or neither. Received: mean={mean!r}, std={std!r}"
            )
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
        self.augment = augment
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
        fingerprint = image_files.fingerprint(paths)
        cache_path = os.path.join(stats_dir, STATS_FILE) if stats_dir else None
        cache = image_files.read_cache(cache_path, root, fingerprint)
        if cache is None:
            scan = image_files.scan_images(paths, len(splits["train"][0]))
            cache = {
                "format": image_files.CACHE_FORMAT,
                "data_dir": root,
                "fingerprint": fingerprint,
            }
            cache["scan"] = scan
        splits = self._drop_bad(root, splits, cache["scan"]["bad"])
        size = self.image_size or _default_size(cache["scan"]["sizes"]["train"])
        resized = _count_resized(cache["scan"]["sizes"], size)
        mean, std = self.mean, self.std
        if mean is None:
            stats = cache.get("stats")
            if stats is not None and stats.get("image_size") != size:
                logger.warning(
                    "The statistics in %s are for another image size; recomputing.", cache_path
                )
                stats = None
            if stats is None:
                stats = {
                    "image_size": size,
                    "mean": cache["scan"]["mean"],
                    "std": cache["scan"]["std"],
                }
                if resized:
                    # At mixed sizes, measure the pixels the model sees.
                    _, shapes, sums, squares = image_files.pixel_sums(splits["train"][0], size)
                    stats["mean"], stats["std"] = image_files.mean_std(shapes, sums, squares, size)
                cache["stats"] = stats
            mean, std = tuple(stats["mean"]), tuple(stats["std"])
        if cache_path:
            files.write_json(cache_path, cache)
        return PreparedFolder(root, class_names, splits, held_out, size, mean, std)

    def _drop_bad(self, root, splits, bad):
        """`splits` without the images that do not decode; raises unless `skip_bad`."""
        if not bad:
            return splits
        path, error = sorted(bad.items())[0]
        if not self.skip_bad:
            raise ValueError(
                f"{len(bad)} image(s) cannot be decoded, the first: {path} ({error}). "
                "Fix or remove them, or pass skip_bad=True (--skip_bad) to skip them. "
                f"Received: file={path!r}"
            )
        logger.warning(
            "Skipping %d image(s) that cannot be decoded: %s", len(bad), sorted(bad)[:10]
        )
        kept = {}
        for split, (paths, labels) in splits.items():
            keep = [p not in bad for p in paths]
            kept[split] = ([p for p, k in zip(paths, keep) if k], np.asarray(labels)[keep])
        if not kept["train"][0]:
            raise ValueError(
                f"No training image of {root} can be decoded. Received: data_dir={root!r}"
            )
        return kept

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
                "Unknown split for image_folder. Expected 'train' or 'test'. "
                f"Received: split={split!r}"
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
        cifar = size <= CIFAR_SCALE

        def prepare(path, label, key):
            image = image_files.decode_image(path)
            augment = training and self.augment
            if cifar:
                image = image_files.resize_image(image, size)
                if augment:
                    image = pipeline.pad_crop_flip(image, size, 4, key)
            elif augment:
                image = pipeline.random_resized_crop(image, size, key)
                image = tf.image.stateless_random_flip_left_right(image, seed=pipeline.key_seed(key, 1)) / 255.0
            else:
                image = pipeline.resize_center_crop(image, round(size * 256 / 224), size) / 255.0
            image = (image - mean) / std
            return image, pipeline.one_hot(label, num_classes, label_smoothing), key

        ds = pipeline.with_keys(ds, seed).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        if not training:
            ds = ds.map(lambda x, y, key: (x, y))
        mix_fn = pipeline.batch_mixer(cifar and self.cutmix)
        return pipeline.finish(
            ds, batch_size=batch_size, training=training, seed=seed, mix_fn=mix_fn
        )


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


def _count_resized(sizes, size):
    """Counts the images not `size`x`size` (warning at CIFAR scale, where they are resized)."""
    other = {
        split: sum(n for hw, n in counts.items() if hw != f"{size}x{size}")
        for split, counts in sizes.items()
    }
    if sum(other.values()):
        log = logger.warning if size <= CIFAR_SCALE else logger.info
        log(
            "%d of %d training and %d of %d test images are not %dx%d; they are resized to it.",
            other["train"],
            sum(sizes["train"].values()),
            other["test"],
            sum(sizes["test"].values()),
            size,
            size,
        )
    return other["train"]
