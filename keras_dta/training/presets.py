"""Training recipes (paper Table 4), one per dataset: `TrainConfig` fields as dicts.

The datasets in `keras_dta.data` describe data only; what a run of the paper does with
them is written here. `register_preset` adds one for a dataset registered elsewhere.
"""

import copy

_CIFAR = {
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

_PRESETS = {
    "digits": {
        "model": "ms_resnet18",
        # Small enough to train to >= 95% test accuracy in a few minutes on two
        # CPU cores; the paper's sizes stay the defaults of the other presets.
        "model_kwargs": {
            "stem_filters": 16,
            "stage_filters": [32, 64, 128],
            "stage_blocks": [1, 1, 1],
            "stage_strides": [1, 2, 2],
        },
        "T": 2,
        "batch_size": 32,
        "epochs": 30,
        "learning_rate": 0.05,
        "momentum": 0.9,
        "weight_decay": 5e-5,
        "label_smoothing": 0.0,
    },
    "cifar10": _CIFAR,
    "cifar100": _CIFAR,
    "imagenet2012": {
        "model": "ms_resnet34",
        "model_kwargs": {},
        "T": 4,
        "batch_size": 128,
        "epochs": 200,
        "learning_rate": 0.1,
        "momentum": 0.9,
        "weight_decay": 1e-5,
        "label_smoothing": 0.0,
    },
    "cifar10_dvs": {
        "model": "ms_resnet18",
        "model_kwargs": {},
        "T": 10,
        "batch_size": 64,
        "epochs": 1000,
        "learning_rate": 0.05,
        "momentum": 0.9,
        "weight_decay": 0.0,
        "label_smoothing": 0.1,
    },
}


def register_preset(dataset, preset):
    """Registers the recipe of `dataset` (a dict of `TrainConfig` fields)."""
    if not isinstance(dataset, str) or not dataset:
        raise ValueError(f"Dataset names are non-empty strings. Received: dataset={dataset!r}")
    _PRESETS[dataset] = copy.deepcopy(dict(preset))


def available_presets():
    """Names of the datasets that have a recipe, sorted."""
    return sorted(_PRESETS)


def get_preset(dataset):
    """A copy of the recipe of `dataset`."""
    if dataset not in _PRESETS:
        raise ValueError(
            f"No training recipe for this dataset. Expected one of {available_presets()} "
            f"(or call `keras_dta.training.register_preset`). Received: dataset={dataset!r}"
        )
    return copy.deepcopy(_PRESETS[dataset])
