"""The data an export is calibrated and checked on."""

import logging
import os

import numpy as np

from keras_dta.data.arrays import load_dataset_arrays
from keras_dta.export._common import check_inputs, check_quantize

logger = logging.getLogger(__name__)


def _load_npy(path, name):
    if not os.path.isfile(path):
        raise ValueError(f"The `{name}` file does not exist. Received: {name}={path!r}")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"`{name}` must be a .npy array file ({error}). Received: {name}={path!r}") from None


def prepare_export_data(
    model,
    quantize="none",
    samples=None,
    labels=None,
    dataset=None,
    data_dir=None,
    num_calibration=100,
    num_eval=None,
    seed=0,
):
    """Finds the calibration and held-out comparison data of an export.

    - `samples` (a `.npy` file or array) with optional `labels`: for `int8` the first
      `num_calibration` samples calibrate and the rest are held out for the comparison;
      otherwise all are compared.
    - `dataset`: calibration on its train split, comparison on its evaluation split.
    - neither: the comparison uses uniform random inputs in [0, 1) (float32 parity still
      means something; accuracy does not), and `int8` is refused for want of calibration data.

    Args:
        model: the `keras.Model` being exported.
        quantize: one of `QUANTIZE_MODES`.
        samples: str path of a `.npy` file, or an array `(num_examples, *input_shape)`.
        labels: str path or array of class ids (or one-hot) for `samples`.
        dataset: str, a name from `keras_dta.data.datasets`.
        data_dir: str or None, the dataset's directory.
        num_calibration: int, calibration examples for `int8`.
        num_eval: int or None, the most held-out examples to compare on (random inputs: 100
            when None).
        seed: int, the seed of the random inputs.

    Returns:
        Dict with `calibration_data` (None unless `int8`), `eval_data`, `eval_labels` and
        `source` (a description for the report).
    """
    check_quantize(quantize)
    for name, value in (("num_calibration", num_calibration), ("num_eval", num_eval)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value}")
    if samples is not None and dataset:
        raise ValueError(
            "Pass representative data either as `samples` or as `dataset`, not both. "
            f"Received: samples={samples!r}, dataset={dataset!r}"
        )
    if labels is not None and samples is None:
        raise ValueError(f"`labels` needs `samples`. Received: labels={labels!r}, samples=None")
    int8 = quantize == "int8"
    if samples is not None:
        return _from_samples(model, samples, labels, int8, num_calibration, num_eval)
    if dataset:
        return _from_dataset(model, dataset, data_dir, int8, num_calibration, num_eval)
    if int8:
        raise ValueError(
            "quantize='int8' needs representative data: pass `samples` or `dataset`. "
            "Received: samples=None, dataset=None"
        )
    count = num_eval or 100
    shape = tuple(model.inputs[0].shape[1:])
    eval_data = np.random.default_rng(seed).uniform(0.0, 1.0, (count, *shape)).astype("float32")
    source = f"{count} uniform random inputs"
    logger.warning("No samples or dataset given: comparing on %s (no accuracy).", source)
    return _prepared(None, eval_data, None, source)


def _prepared(calibration, eval_data, eval_labels, source):
    return {
        "calibration_data": calibration,
        "eval_data": eval_data,
        "eval_labels": eval_labels,
        "source": source,
    }


def _from_samples(model, samples, labels, int8, num_calibration, num_eval):
    """Calibration on the first samples (int8), comparison on the rest."""
    source = samples if isinstance(samples, str) else "samples"
    if isinstance(samples, str):
        samples = _load_npy(samples, "samples")
    samples = check_inputs(model, samples, "samples")
    if labels is not None:
        if isinstance(labels, str):
            labels = _load_npy(labels, "labels")
        labels = np.asarray(labels)
        if len(labels) != len(samples):
            raise ValueError(
                f"`labels` must hold one entry per sample ({len(samples)}). "
                f"Received: labels.shape={labels.shape}"
            )
    calibration = None
    start = num_calibration if int8 else 0
    if int8:
        calibration = samples[:num_calibration]
        if len(samples) <= num_calibration:
            raise ValueError(
                f"int8 calibrates on the first {num_calibration} samples and compares on the "
                f"rest, but there are only {len(samples)}. Pass more samples or a smaller "
                f"num_calibration. Received: num_calibration={num_calibration}"
            )
    stop = None if num_eval is None else start + num_eval
    eval_data = samples[start:stop]
    eval_labels = None if labels is None else labels[start:stop]
    return _prepared(calibration, eval_data, eval_labels, f"{source} [{start}:{start + len(eval_data)}]")


def _from_dataset(model, dataset, data_dir, int8, num_calibration, num_eval):
    """Calibration on the dataset's train split (int8), comparison on its evaluation split."""
    from keras_dta.data import datasets

    # An MSResNet carries its T; a plain functional model of event frames shows it as its
    # input's first axis.
    shape = tuple(model.inputs[0].shape[1:])
    T = getattr(model, "T", None) or (shape[0] if len(shape) == 4 else None)
    calibration = None
    if int8:
        calibration, _ = load_dataset_arrays(dataset, "train", data_dir, num_calibration, T)
        calibration = check_inputs(model, calibration, "dataset")
    split = datasets.get_dataset(dataset).eval_split
    eval_data, eval_labels = load_dataset_arrays(dataset, split, data_dir, num_eval, T)
    eval_data = check_inputs(model, eval_data, "dataset")
    return _prepared(calibration, eval_data, eval_labels, f"{dataset}/{split}")
