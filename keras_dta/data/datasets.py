"""Datasets for training DTA-SNNs, and the registry the trainer looks them up in.

Each dataset is an object with:

- `name`, `num_classes`, `eval_split` (the split reported as "test"),
- `input_shape(T)`: the model's per-example input shape (rank 3 for static
  images, which the model repeats T times; rank 4 `(T, H, W, C)` for events),
- `num_examples(split, data_dir=None, T=None)`,
- `load(split, *, batch_size, training, data_dir=None, seed=None, T=None,
  label_smoothing=0.0)`: a batched `tf.data.Dataset` of
  `(inputs, one-hot float labels (batch, classes))`, finite (one pass).

`register_dataset(name, factory)` adds one; the factory is called on first use,
so a dataset whose module is heavy or optional (`cifar10_dvs`) is imported only
when it is asked for.
"""

import os
import socket

from keras_dta.data import pipeline

_REGISTRY = {}

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_IMAGENET_MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
# Where tensorflow-datasets downloads CIFAR from (its builders' URLs).
_CIFAR_HOST = "www.cs.toronto.edu"


class DataNotFoundError(ValueError):
    """A dataset is neither on disk nor downloadable from here."""


def _reachable(host, port=443, timeout=5.0):
    """Whether a TCP connection to `host` opens within `timeout` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def register_dataset(name, factory):
    """Registers `factory()` (returning a dataset object) under `name`."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"Dataset names are non-empty strings. Received: name={name!r}")
    _REGISTRY[name] = factory


def available_datasets():
    """Names of the registered datasets, sorted."""
    return sorted(_REGISTRY)


def check_dataset(name):
    """Raises `ValueError` naming the registered datasets unless `name` is one."""
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown dataset. Expected one of {available_datasets()}. "
            f"Received: dataset={name!r}"
        )


def dataset_options(name):
    """The names of the options (constructor arguments) the dataset `name` takes."""
    import inspect

    check_dataset(name)
    factory = _REGISTRY[name]
    if hasattr(factory, "dataset_class"):  # a lazy factory names the class it builds
        factory = factory.dataset_class()
    parameters = inspect.signature(factory).parameters.values()
    return {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - {"data_dir"}


def get_dataset(name, **kwargs):
    """Returns the dataset object registered as `name`, built with `kwargs` (its options)."""
    check_dataset(name)
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as error:
        if "argument" not in str(error):
            raise
        raise ValueError(
            f"The dataset {name!r} does not take these options ({error}). Received: {sorted(kwargs)}"
        ) from None


class Digits:
    """scikit-learn's 8x8 handwritten digits, a small offline dataset.

    1,797 grayscale images of 10 classes, split once, stratified, with a fixed
    seed into 80% train / 20% test. Pixels are scaled from [0, 16] to [0, 1].
    Training adds a random shift of up to one pixel (zero padding).

    Args:
        image_size: side of the (square) model input; images are resized
            bilinearly when it is not 8.
        test_fraction: fraction of the examples held out for the test split.
        split_seed: seed of the stratified split.
    """

    name = "digits"
    num_classes = 10
    eval_split = "test"

    def __init__(self, image_size=8, test_fraction=0.2, split_seed=0):
        self.image_size = image_size
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self._arrays = None

    def input_shape(self, T=None):
        return (self.image_size, self.image_size, 1)

    def _splits(self):
        if self._arrays is None:
            from sklearn.datasets import load_digits
            from sklearn.model_selection import train_test_split

            digits = load_digits()
            images = (digits.images / 16.0).astype("float32")[..., None]
            x_train, x_test, y_train, y_test = train_test_split(
                images,
                digits.target,
                test_size=self.test_fraction,
                stratify=digits.target,
                random_state=self.split_seed,
            )
            self._arrays = {"train": (x_train, y_train), "test": (x_test, y_test)}
        return self._arrays

    def _check_split(self, split):
        if split not in ("train", "test"):
            raise ValueError(
                f"Unknown split for digits. Expected 'train' or 'test'. Received: split={split!r}"
            )

    def num_examples(self, split, data_dir=None, T=None):
        self._check_split(split)
        return len(self._splits()[split][1])

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
        import tensorflow as tf

        self._check_split(split)
        x, y = self._splits()[split]
        ds = tf.data.Dataset.from_tensor_slices((x, y.astype("int64")))
        if training:
            ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
        size = self.image_size

        def prepare(image, label, key):
            if training:
                image = tf.pad(image, [[1, 1], [1, 1], [0, 0]])
                image = tf.image.stateless_random_crop(image, [8, 8, 1], seed=pipeline.key_seed(key, 0))
            if size != 8:
                image = tf.image.resize(image, (size, size))
            return image, pipeline.one_hot(label, self.num_classes, label_smoothing)

        ds = pipeline.with_keys(ds, seed).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        return pipeline.finish(ds, batch_size=batch_size, training=training, seed=seed)


class TfdsImages:
    """An image-classification dataset from tensorflow-datasets.

    CIFAR (32x32): training takes a random 32x32 crop of the image padded by 4
    zero pixels, a horizontal flip and per-channel normalisation, then CutMix
    (Beta(1, 1), probability 0.5 drawn per batch) on the batch. Evaluation only
    normalises.

    ImageNet: training takes a random resized crop (area 8%-100%, aspect ratio
    3/4-4/3) to 224 and a flip; evaluation resizes the shorter side to 256 and
    takes the central 224x224; both normalise with the ImageNet constants.

    Args:
        name: the registry name.
        tfds_name: the tensorflow-datasets name.
        num_classes: number of classes.
        mean, std: per-channel normalisation constants for [0, 1] pixels.
        split_sizes: examples per split (the tfds metadata is not available
            under `tfds.testing.mock_data`, so the sizes are stated here).
        imagenet: use the ImageNet pipeline rather than the CIFAR one.
        cutmix: apply CutMix to training batches.
        download_host: the host tensorflow-datasets downloads the data from; when the
            data is not prepared in `data_dir` and this host cannot be reached, `load`
            fails at once (`DataNotFoundError`) rather than after tfds's retries.
    """

    def __init__(
        self,
        name,
        tfds_name,
        num_classes,
        mean,
        std,
        split_sizes,
        eval_split="test",
        imagenet=False,
        cutmix=True,
        download_host=None,
    ):
        self.name = name
        self.tfds_name = tfds_name
        self.num_classes = num_classes
        self.mean = mean
        self.std = std
        self.split_sizes = dict(split_sizes)
        self.eval_split = eval_split
        self.imagenet = imagenet
        self.cutmix = cutmix
        self.download_host = download_host

    def input_shape(self, T=None):
        return (224, 224, 3) if self.imagenet else (32, 32, 3)

    def num_examples(self, split, data_dir=None, T=None):
        if split not in self.split_sizes:
            raise ValueError(
                f"Unknown split for {self.name}. Expected one of "
                f"{sorted(self.split_sizes)}. Received: split={split!r}"
            )
        return self.split_sizes[split]

    def _check_imagenet_files(self, data_dir):
        """Fails early, saying where the manual download goes, if it is missing."""
        import tensorflow_datasets as tfds

        builder = tfds.builder(self.tfds_name, data_dir=data_dir)
        if builder.is_prepared():
            return
        root = data_dir if data_dir else str(builder.data_dir_root)
        manual_dir = os.path.join(os.path.expanduser(root), "downloads", "manual")
        missing = [
            f for f in _IMAGENET_MANUAL_FILES if not os.path.exists(os.path.join(manual_dir, f))
        ]
        if missing:
            raise DataNotFoundError(
                "ImageNet (imagenet2012) cannot be downloaded automatically: get "
                f"{', '.join(_IMAGENET_MANUAL_FILES)} from https://image-net.org/ "
                f"and put them in {manual_dir}/ (that is, <data_dir>/downloads/manual/), "
                f"then rerun; tensorflow-datasets prepares the data on first use. "
                f"Missing: {missing}. Received: data_dir={data_dir!r}"
            )

    def _check_downloadable(self, data_dir):
        """Fails at once, saying where tfds looked, when the data is not prepared there and
        its download host cannot be reached."""
        import tensorflow_datasets as tfds

        builder = tfds.builder(self.tfds_name, data_dir=data_dir)
        # Under `tfds.testing.mock_data` nothing is downloaded (its no-op replaces the method).
        mocked = tfds.core.DatasetBuilder.download_and_prepare.__name__ != "download_and_prepare"
        if mocked or builder.is_prepared():
            return
        if self.download_host is None or _reachable(self.download_host):
            return
        raise DataNotFoundError(
            f"{self.name} is not prepared in {builder.data_dir} and cannot be downloaded: "
            f"{self.download_host} is not reachable from this machine. On a machine with "
            f"network run `tfds build {self.tfds_name} --data_dir DIR` (or train there once), "
            f"copy DIR here and pass --data_dir DIR. Received: data_dir={data_dir!r}"
        )

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
        import tensorflow as tf
        import tensorflow_datasets as tfds

        self.num_examples(split)  # validates the split
        if self.imagenet:
            self._check_imagenet_files(data_dir)
        else:
            self._check_downloadable(data_dir)
        read_config = tfds.ReadConfig(shuffle_seed=seed)
        ds = tfds.load(
            self.tfds_name,
            split=split,
            data_dir=data_dir,
            as_supervised=True,
            shuffle_files=training,
            read_config=read_config,
        )
        if training:
            buffer = 10_000 if self.imagenet else 50_000
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)

        mean = tf.constant(self.mean, tf.float32)
        std = tf.constant(self.std, tf.float32)

        def prepare_cifar(image, label, key):
            image = tf.cast(image, tf.float32) / 255.0
            if training:
                image = pipeline.pad_crop_flip(image, 32, 4, key)
            return (image - mean) / std, pipeline.one_hot(label, self.num_classes, label_smoothing), key

        def prepare_imagenet(image, label, key):
            if training:
                image = pipeline.random_resized_crop(image, 224, key)
                image = tf.image.stateless_random_flip_left_right(image, seed=pipeline.key_seed(key, 1))
            else:
                image = pipeline.resize_center_crop(image, 256, 224)
            image = (image / 255.0 - mean) / std
            return image, pipeline.one_hot(label, self.num_classes, label_smoothing), key

        prepare = prepare_imagenet if self.imagenet else prepare_cifar
        ds = pipeline.with_keys(ds, seed).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        if not training:
            ds = ds.map(lambda x, y, key: (x, y))
        mix_fn = pipeline.batch_mixer(self.cutmix)
        return pipeline.finish(ds, batch_size=batch_size, training=training, seed=seed, mix_fn=mix_fn)


class Cifar10DVS:
    """CIFAR10-DVS event frames from `keras_dta.data.cifar10_dvs` (imported lazily).

    The raw recordings are read from `data_dir` (see that module); there is no
    download. Augmentation, MixUp/CutMix and label smoothing are that loader's.

    Args:
        order: the order of each class's recordings before the 9:1 split: `"name"`
            (SpikingJelly's: the split the published results use) or `"numeric"`.
    """

    name = "cifar10_dvs"
    num_classes = 10
    eval_split = "test"
    image_size = 48
    # Frames per recording when T is not given (the paper's CIFAR10-DVS T).
    default_T = 10

    def __init__(self, order="name"):
        if order not in ("name", "numeric"):
            raise ValueError(f"`order` must be 'name' or 'numeric'. Received: order={order!r}")
        self.order = order

    @staticmethod
    def _module():
        from keras_dta.data import cifar10_dvs

        return cifar10_dvs

    @staticmethod
    def _check_data_dir(data_dir):
        if not data_dir:
            raise ValueError(
                "cifar10_dvs reads the raw recordings from a directory: pass "
                f"--data_dir. Received: data_dir={data_dir!r}"
            )

    def input_shape(self, T=None):
        return tuple(self._module().input_shape(T or self.default_T, self.image_size))

    def num_examples(self, split, data_dir=None, T=None):
        self._check_data_dir(data_dir)
        return self._module().num_examples(
            data_dir, split, T=T or self.default_T, image_size=self.image_size, order=self.order
        )

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
        self._check_data_dir(data_dir)
        return self._module().load(
            data_dir,
            split,
            T=T or self.default_T,
            image_size=self.image_size,
            batch_size=batch_size,
            training=training,
            seed=seed,
            label_smoothing=label_smoothing,
            order=self.order,
        )


register_dataset("digits", Digits)
register_dataset(
    "cifar10",
    lambda cutmix=True: TfdsImages(
        "cifar10",
        "cifar10",
        10,
        CIFAR10_MEAN,
        CIFAR10_STD,
        {"train": 50_000, "test": 10_000},
        cutmix=cutmix,
        download_host=_CIFAR_HOST,
    ),
)
register_dataset(
    "cifar100",
    lambda cutmix=True: TfdsImages(
        "cifar100",
        "cifar100",
        100,
        CIFAR100_MEAN,
        CIFAR100_STD,
        {"train": 50_000, "test": 10_000},
        cutmix=cutmix,
        download_host=_CIFAR_HOST,
    ),
)
register_dataset(
    "imagenet2012",
    lambda: TfdsImages(
        "imagenet2012",
        "imagenet2012",
        1000,
        IMAGENET_MEAN,
        IMAGENET_STD,
        {"train": 1_281_167, "validation": 50_000},
        eval_split="validation",
        imagenet=True,
        cutmix=False,
    ),
)
register_dataset("cifar10_dvs", Cifar10DVS)


def _image_folder_class():
    from keras_dta.data.image_folder import ImageFolder  # imports this module: lazily

    return ImageFolder


def _image_folder(**kwargs):
    return _image_folder_class()(**kwargs)


_image_folder.dataset_class = _image_folder_class  # what `dataset_options` inspects


register_dataset("image_folder", _image_folder)
