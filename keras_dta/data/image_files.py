"""Finding and checking the images of an image folder (see `keras_dta.data.image_folder`).

- `list_image_folder`: the layout `DIR/train/<class>/<image>` (and `DIR/test/...`,
  or a seeded per-class split of `train`), checked, with named errors.
- `scan_images`: decodes every image once in `tf.data`, returning the files that
  do not decode (by name), the image sizes and the pixel statistics.
- `decode_image`, `resize_image`: the decoding and resizing the input pipeline
  shares with the scan, so an image the scan accepts also loads.
- `fingerprint`, `read_cache`: the key and the checked reader of the cached scan.

Why `tf.data` and `tf.io.decode_image` rather than
`keras.utils.image_dataset_from_directory` or `tfds.folder_dataset.ImageFolder`:
both read the same layout, but neither can name a file that does not decode
(the error surfaces mid-training, from inside `tf.data`), the Keras one splits
the file list as a whole rather than per class and resizes every image to one
size, and the tfds one has no held-out split for a folder without `test/`. The
scan here decodes each file once with the same function the input pipeline
uses, so the files it accepts are the files training reads.
"""

import hashlib
import json
import logging
import os

import numpy as np

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
CACHE_FORMAT = 1


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


def decode_image(path):
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def resize_image(image, size):
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


def pixel_sums(paths, size=None):
    """Per image: `(index, (h, w), channel sums, channel sums of squares)`, as numpy.

    Images that fail to decode are dropped (their index is missing). With
    `size`, images are first resized as the CIFAR-scale pipeline resizes them.
    """
    import tensorflow as tf

    def measure(i, path):
        image = decode_image(path)
        x = resize_image(image, size) if size else tf.cast(image, tf.float32) / 255.0
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
        decode_image(path)
    except (tf.errors.OpError, OSError) as e:
        return getattr(e, "message", str(e)).splitlines()[0]
    return "failed to decode in tf.data"


def mean_std(shapes, sums, squares, size=None):
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
    index, shapes, sums, squares = pixel_sums(paths)
    bad = sorted(set(range(len(paths))) - set(index.tolist()))
    train = index < num_train
    sizes = {"train": {}, "test": {}}
    for i, (h, w) in zip(index, shapes):
        counts = sizes["train" if i < num_train else "test"]
        counts[f"{h}x{w}"] = counts.get(f"{h}x{w}", 0) + 1
    mean, std = (
        mean_std(shapes[train], sums[train], squares[train]) if train.any() else (None, None)
    )
    return {
        "bad": {paths[i]: _decode_error(paths[i]) for i in bad},
        "sizes": sizes,
        "mean": mean,
        "std": std,
    }


def fingerprint(paths):
    """A digest of the files' names, byte sizes and modification times."""
    digest = hashlib.sha256()
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _check_cache(cache):
    """Raises `ValueError` unless `cache` has the shape `ImageFolder` writes."""
    scan = cache["scan"]

    def channels(values):
        return (
            isinstance(values, list)
            and len(values) == 3
            and all(isinstance(v, float) for v in values)
        )

    if not isinstance(scan["bad"], dict) or sorted(scan["sizes"]) != ["test", "train"]:
        raise ValueError("the scan lacks its files or sizes")
    if not all(isinstance(n, int) for counts in scan["sizes"].values() for n in counts.values()):
        raise ValueError("the image sizes are not counts")
    if scan["mean"] is not None and not (channels(scan["mean"]) and channels(scan["std"])):
        raise ValueError("the scanned statistics do not have three channels")
    stats = cache.get("stats")
    if stats is not None:
        if not (
            isinstance(stats["image_size"], int)
            and channels(stats["mean"])
            and channels(stats["std"])
        ):
            raise ValueError("the statistics do not have an image size and three channels")


def read_cache(path, root, digest):
    """The cached scan of `root` with files of `fingerprint` `digest`, or None.

    None when the cache is absent, and, with a warning, when it is unreadable or
    stale (another folder, other files, another format).
    """
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            cache = json.load(f)
        _check_cache(cache)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        logger.warning(
            "Ignoring the unreadable statistics cache %s (%s: %s); recomputing.",
            path,
            type(e).__name__,
            e,
        )
        return None
    if (cache.get("format"), cache.get("data_dir"), cache.get("fingerprint")) != (
        CACHE_FORMAT,
        root,
        digest,
    ):
        logger.warning(
            "The statistics cache %s is stale (it describes %s, or the images changed); "
            "recomputing.",
            path,
            cache.get("data_dir"),
        )
        return None
    return cache
