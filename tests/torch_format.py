"""Writes checkpoints in `torch.save`'s zip format without torch, for the converter's tests.

The layout is PyTorch's (>= 1.6): `<name>/data.pkl`, a protocol-2 pickle in which each tensor
is `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)` and
each storage a persistent reference `("storage", torch.<Type>Storage, key, "cpu", numel)`;
`<name>/data/<key>`, the storage's little-endian bytes; `<name>/byteorder` and `<name>/version`.
torch names its globals; this writer writes the same names without importing torch.
"""

import collections
import io
import pickle
import zipfile

import numpy as np

_STORAGE_TYPES = {
    np.dtype("float32"): "FloatStorage",
    np.dtype("float64"): "DoubleStorage",
    np.dtype("float16"): "HalfStorage",
    np.dtype("int64"): "LongStorage",
    np.dtype("int32"): "IntStorage",
    np.dtype("uint8"): "ByteStorage",
    np.dtype("bool"): "BoolStorage",
}


class Global:
    """A module-level name, pickled by reference (the object itself need not exist here)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle requires reduce functions to be callable
        raise NotImplementedError


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class _Tensor:
    def __init__(self, storage, offset, shape, strides):
        self.storage, self.offset, self.shape, self.strides = storage, offset, shape, strides

    def __reduce__(self):
        args = (self.storage, self.offset, self.shape, self.strides, False, collections.OrderedDict())
        return Global("torch._utils", "_rebuild_tensor_v2"), args


class Reduced:
    """An object pickled as `func(*args)`: to plant other globals in a checkpoint."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class _Pickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def _save_global_name(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    dispatch[Global] = _save_global_name

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            storage_type = Global("torch", _STORAGE_TYPES[obj.array.dtype])
            return ("storage", storage_type, obj.key, "cpu", obj.array.size)
        return None


def _tensors(obj, storages):
    """`obj` with every NumPy array replaced by a tensor stand-in over its own storage."""
    if isinstance(obj, np.ndarray) or isinstance(obj, np.generic):
        array = np.array(obj, order="C")  # keeps 0-d arrays 0-d (np.ascontiguousarray would not)
        storage = _Storage(str(len(storages)), array.reshape(-1))
        storages.append(storage)
        strides = tuple(s // array.itemsize for s in array.strides)
        return _Tensor(storage, 0, tuple(array.shape), strides)
    if isinstance(obj, dict):
        return type(obj)((k, _tensors(v, storages)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_tensors(v, storages) for v in obj)
    return obj


def save(obj, path, name="archive"):
    """Writes `obj` (dicts, lists, numbers, strings and NumPy arrays as tensors) like
    `torch.save(obj, path)`."""
    storages = []
    converted = _tensors(obj, storages)
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(converted)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{name}/data.pkl", buffer.getvalue())
        archive.writestr(f"{name}/byteorder", "little")
        for storage in storages:
            archive.writestr(f"{name}/data/{storage.key}", storage.array.astype(storage.array.dtype.newbyteorder("<")).tobytes())
        archive.writestr(f"{name}/version", "3\n")


def save_pickle(obj, path, name="archive"):
    """Writes `obj` as the `data.pkl` of a checkpoint archive, as it is (no tensors)."""
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}/data.pkl", buffer.getvalue())
