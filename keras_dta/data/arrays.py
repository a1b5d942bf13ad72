"""Registered datasets as NumPy arrays (evaluation pipeline, no augmentation)."""

import numpy as np


def load_dataset_arrays(name, split, data_dir=None, limit=None, T=None):
    """Reads up to `limit` examples of a registered dataset's split as numpy arrays.

    Uses the evaluation pipeline (no augmentation) of `keras_dta.data.datasets`.

    Args:
        name: str, a registered dataset name (e.g. `"digits"`, `"cifar10"`).
        split: str, e.g. `"train"` or `"test"`.
        data_dir: str or None, passed to the dataset.
        limit: int or None, the most examples to read.
        T: int or None, time steps for event datasets.

    Returns:
        `(inputs, class_ids)` as numpy arrays.
    """
    from keras_dta.data import datasets

    dataset = datasets.get_dataset(name)
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"`limit` must be a positive integer or None. Received: limit={limit}")
    ds = dataset.load(split, batch_size=64, training=False, data_dir=data_dir, T=T)
    xs, ys, count = [], [], 0
    for x, y in ds.as_numpy_iterator():
        xs.append(x)
        ys.append(np.asarray(y).argmax(-1))
        count += len(x)
        if limit is not None and count >= limit:
            break
    if not xs:
        raise ValueError(f"The dataset split is empty. Received: dataset={name!r}, split={split!r}")
    x, y = np.concatenate(xs), np.concatenate(ys)
    if not np.isfinite(x).all():
        raise ValueError(
            f"The dataset split holds NaN or infinite inputs. Received: dataset={name!r}, split={split!r}"
        )
    return (x[:limit], y[:limit]) if limit is not None else (x, y)
