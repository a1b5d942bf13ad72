"""Reads PyTorch checkpoints (`torch.save`'s zip format) into NumPy arrays without torch.

Since PyTorch 1.6 a `.pth` file is a zip archive: `<name>/data.pkl` pickles the saved object
with every tensor storage replaced by a reference (`("storage", <storage type>, key, device,
numel)`), and `<name>/data/<key>` holds each storage's raw little-endian bytes. This module
unpickles `data.pkl` with an allow-list of globals (the tensor and parameter rebuild functions,
the storage types, `OrderedDict`, NumPy scalars): anything else, which a state dict never
holds, is refused, so reading a file never runs code from it (as `torch.load(weights_only=True)`).
Tensors come back as NumPy arrays (bfloat16 as float32, exactly).

The pre-1.6 format (`torch.save(..., _use_new_zipfile_serialization=False)`) is not read here;
`keras_dta.convert.read_checkpoint` uses torch for it when torch is installed.
"""

import collections
import io
import pickle
import zipfile

import numpy as np

# Storage types by the name `torch.save` pickles them under, and the NumPy dtype of their bytes.
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16,  # widened to float32 when the tensor is built
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsupportedCheckpointError(ValueError):
    """The file is not a checkpoint this reader understands (named in the message)."""


class _StorageType:
    def __init__(self, name):
        self.name = name


class _Storage:
    """One storage's elements, as a flat NumPy array of its dtype."""

    def __init__(self, array, bfloat16):
        self.array = array
        self.bfloat16 = bfloat16


def _rebuild_tensor(storage, offset, size, stride, *unused):
    """torch._utils._rebuild_tensor_v2: a strided view of the storage, copied."""
    flat = storage.array
    itemsize = flat.dtype.itemsize
    if all(n > 0 for n in size):
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= len(flat):
            raise UnsupportedCheckpointError("A tensor reaches past the end of its storage.")
    view = np.lib.stride_tricks.as_strided(
        flat[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride), writeable=False
    )
    array = np.array(view)
    if storage.bfloat16:  # bfloat16 is the top half of a float32
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _rebuild_parameter(data, *unused):
    return data


def _rebuild_from_type(func, new_type, args, state):
    return func(*args)


def _numpy_scalar(dtype, data):
    return np.frombuffer(data, dtype=dtype)[0]


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch", "device"): str,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): np.dtype,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data, read_storage):
        super().__init__(io.BytesIO(data))
        self._read_storage = read_storage
        self._storages = {}

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsupportedCheckpointError(
                f"The checkpoint holds `{module}.{name}`, which a state dict of tensors does not; "
                "it is not loaded (a pickle can run code). Save `model.state_dict()`, or read the "
                "file with torch installed."
            ) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsupportedCheckpointError(f"Unknown persistent reference in the checkpoint: {pid!r}")
        _, storage_type, key, _, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise UnsupportedCheckpointError(f"Unknown storage type in the checkpoint: {storage_type!r}")
        if key not in self._storages:
            dtype = np.dtype(STORAGE_DTYPES[storage_type.name]).newbyteorder("<")
            array = np.frombuffer(self._read_storage(key), dtype=dtype)
            if len(array) < numel:
                raise UnsupportedCheckpointError(
                    f"Storage {key} holds {len(array)} elements, the checkpoint says {numel}."
                )
            self._storages[key] = _Storage(array.astype(dtype.newbyteorder("=")), storage_type.name == "BFloat16Storage")
        return self._storages[key]


def load(path):
    """The object a zip-format `torch.save` wrote to `path`, with tensors as NumPy arrays.

    Raises:
        UnsupportedCheckpointError: not a zip-format checkpoint, or one holding other objects
            than tensors, containers, numbers and strings.
    """
    if not zipfile.is_zipfile(path):
        raise UnsupportedCheckpointError(
            f"{path} is not a zip-format PyTorch checkpoint (PyTorch >= 1.6 writes those); read "
            "older files with torch installed."
        )
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") <= 1]
        if len(pickles) != 1:
            raise UnsupportedCheckpointError(f"{path} has no single data.pkl record: not a torch.save file.")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = prefix + "byteorder"
        if byteorder in names and archive.read(byteorder).decode().strip() != "little":
            raise UnsupportedCheckpointError(f"{path} was saved on a big-endian machine; read it with torch.")

        def read_storage(key):
            try:
                return archive.read(f"{prefix}data/{key}")
            except KeyError:
                raise UnsupportedCheckpointError(f"{path} lacks the storage record data/{key}.") from None

        try:
            return _Unpickler(archive.read(pickles[0]), read_storage).load()
        except (pickle.UnpicklingError, EOFError, TypeError, AttributeError) as error:
            raise UnsupportedCheckpointError(f"{path} could not be unpickled ({error}).") from None
