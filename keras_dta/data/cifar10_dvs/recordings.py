"""CIFAR10-DVS's raw recordings: the classes, listing the files, the 9:1 split, reading."""

import os
import re
import zipfile
import zlib

CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
NUM_CLASSES = len(CLASSES)
SPLITS = ("train", "test")

# The 9:1 split, as the integer fraction 9/10 so that ceil() is exact.
_TRAIN_PARTS, _ALL_PARTS = 9, 10

#: Orders of each class's recordings before the 9:1 split. "name": by file name as a string
#: (`_0`, `_1`, `_10`, `_100`, ...), as SpikingJelly's `DatasetFolder` lists them: the split of
#: SpikingJelly's `split_to_train_test_set(0.9, ...)`, which every published CIFAR10-DVS
#: number (the DTA authors' included) uses. "numeric": by the integer index `i`.
SPLIT_ORDERS = ("name", "numeric")


def check_order(order):
    if order not in SPLIT_ORDERS:
        raise ValueError(f"`order` must be one of {SPLIT_ORDERS}. Received: order={order!r}")


def check_split(split):
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}. Received: split={split!r}")


def check_data_dir(data_dir):
    if data_dir is None:
        raise ValueError("`data_dir` is required. Received: data_dir=None")
    path = os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
    if not os.path.isdir(path):
        raise ValueError(
            f"`data_dir` must be an existing directory holding the CIFAR10-DVS "
            f"class zips or folders. Received: data_dir={data_dir!r}"
        )
    return path



class _Recording:
    """One raw recording: a file in a class folder or a member of a class zip."""

    __slots__ = ("label", "index", "path", "member")

    def __init__(self, label, index, path, member=None):
        self.label = label
        self.index = index
        self.path = path
        self.member = member

    @property
    def name(self):
        return self.path if self.member is None else f"{self.path}:{self.member}"


def _file_pattern(cls):
    return re.compile(rf"^cifar10_{re.escape(cls)}_(\d+)\.aedat$")


def _sorted(found, where, order):
    """Sorts `[(index, recording)]` in `order`, rejecting duplicate indices."""
    found.sort(key=lambda item: item[0])
    for (i, a), (j, b) in zip(found, found[1:]):
        if i == j:
            raise ValueError(
                f"{where}: two recordings have the same index. Received: "
                f"files={a.name!r} and {b.name!r}"
            )
    if order == "name":
        found.sort(key=lambda item: os.path.basename(item[1].member or item[1].path))
    return [rec for _, rec in found]


def list_recordings(data_dir, order="name"):
    """Lists the raw recordings of every class, each in `order`.

    Args:
        data_dir: directory holding, per class, a folder `<class>/` or a zip
            `<class>.zip` of `cifar10_<class>_<i>.aedat` files. A folder wins
            over a zip of the same class.
        order: `"name"` (the default): by file name as a string (`_0`, `_1`,
            `_10`, `_100`, ...), the order SpikingJelly lists them in and
            the published splits use; `"numeric"`: by the integer `i` (2
            before 10). See `SPLIT_ORDERS`.

    Returns:
        A list of `NUM_CLASSES` lists of recordings, in the order of
        `CLASSES`, each in `order`.

    Raises:
        ValueError: if a class has neither a folder nor a zip, a zip is not
            readable, or a class holds no recording.
    """
    data_dir = check_data_dir(data_dir)
    check_order(order)
    recordings = []
    for label, cls in enumerate(CLASSES):
        pattern = _file_pattern(cls)
        folder = os.path.join(data_dir, cls)
        archive = os.path.join(data_dir, cls + ".zip")
        found = []
        if os.path.isdir(folder):
            where = folder
            for entry in os.listdir(folder):
                match = pattern.match(entry)
                if match:
                    path = os.path.join(folder, entry)
                    index = int(match.group(1))
                    found.append((index, _Recording(label, index, path)))
        elif os.path.isfile(archive):
            where = archive
            try:
                with zipfile.ZipFile(archive) as zf:
                    members = zf.namelist()
            except (zipfile.BadZipFile, OSError) as e:
                raise ValueError(
                    f"{archive}: cannot read the zip of class {cls!r} ({e}). "
                    f"Received: data_dir={data_dir!r}"
                ) from e
            for member in members:
                if member.startswith("__MACOSX/") or member.endswith("/"):
                    continue
                match = pattern.match(member.rsplit("/", 1)[-1])
                if match:
                    index = int(match.group(1))
                    found.append((index, _Recording(label, index, archive, member)))
        else:
            raise ValueError(
                f"Missing class {cls!r}: expected a folder {folder!r} or a zip "
                f"{archive!r}. Received: data_dir={data_dir!r}"
            )
        if not found:
            raise ValueError(
                f"{where}: no recordings named 'cifar10_{cls}_<i>.aedat' for class "
                f"{cls!r}. Received: data_dir={data_dir!r}"
            )
        recordings.append(_sorted(found, where, order))
    return recordings


def split_recordings(recordings):
    """Splits per-class recording lists 9:1 into train and test.

    Per class with `n` recordings, the first `ceil(0.9 n)` in the listed order
    go to train and the rest to test (SpikingJelly's
    `split_to_train_test_set(0.9, ...)` for the name order).

    Args:
        recordings: the output of `list_recordings`.

    Returns:
        A dict `{"train": [...], "test": [...]}` of recordings, class by
        class, in file order.
    """
    out = {"train": [], "test": []}
    for per_class in recordings:
        n_train = -(-_TRAIN_PARTS * len(per_class) // _ALL_PARTS)  # ceil(0.9 n)
        out["train"].extend(per_class[:n_train])
        out["test"].extend(per_class[n_train:])
    return out


class Reader:
    """Reads recordings' bytes, keeping each class zip open while in use."""

    def __init__(self):
        self._zips = {}

    def read(self, rec):
        if rec.member is None:
            with open(rec.path, "rb") as f:
                return f.read()
        zf = self._zips.get(rec.path)
        if zf is None:
            zf = self._zips[rec.path] = zipfile.ZipFile(rec.path)
        try:
            return zf.read(rec.member)
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            raise ValueError(f"{rec.name}: corrupt zip member ({e}).") from e

    def close(self):
        for zf in self._zips.values():
            zf.close()
        self._zips.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

