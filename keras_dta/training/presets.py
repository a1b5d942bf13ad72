"""Training recipes (paper Table 4): `TrainConfig` fields as dicts, by name.

The datasets in `keras_dta.data` describe data only; what a run of the paper does with
them is written here. A dataset's own recipe has its name; other recipes (`cpu_small`)
apply to any dataset (`make_config(dataset, preset=...)`). `register_preset` adds one.
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

# A small MS-ResNet-18 (one block a stage): it trains in minutes on two CPU cores; the
# paper's sizes stay the defaults of the other presets.
_SMALL = {
    "model": "ms_resnet18",
    "model_kwargs": {
        "stem_filters": 16,
        "stage_filters": [32, 64, 128],
        "stage_blocks": [1, 1, 1],
        "stage_strides": [1, 2, 2],
    },
    "T": 2,
    "momentum": 0.9,
    "weight_decay": 5e-5,
    "label_smoothing": 0.0,
}

_PRESETS = {
    # Reaches >= 95% test accuracy on the 8x8 digits in about a minute.
    "digits": {
        **_SMALL,
        "batch_size": 32,
        "epochs": 30,
        "learning_rate": 0.05,
    },
    "cifar10": _CIFAR,
    "cifar100": _CIFAR,
    # Your own images: the paper's CIFAR recipe, whatever the image size.
    "image_folder": _CIFAR,
    # Not a dataset: a small MS-ResNet (the digits model's widths) for any dataset on one
    # CPU (`--preset cpu_small`). At 32x32 on two cores about 155 images/s (batch 64): five
    # epochs of CIFAR-10 in under half an hour (README, "Your own images"). Augmentation
    # (CutMix, crops and flips), which pays off over the paper's 250 epochs, slows a
    # five-epoch run down: it is off where the dataset has the option.
    "cpu_small": {
        **_SMALL,
        "batch_size": 64,
        "epochs": 5,
        "learning_rate": 0.1,
        "dataset_kwargs": {"cutmix": False, "augment": False},
    },
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


def register_preset(name, preset):
    """Registers a recipe (a dict of `TrainConfig` fields) under `name` (a dataset's name
    for its default recipe)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"Preset names are non-empty strings. Received: name={name!r}")
    _PRESETS[name] = copy.deepcopy(dict(preset))


def available_presets():
    """Names of the recipes, sorted."""
    return sorted(_PRESETS)


def get_preset(name):
    """A copy of the recipe `name`."""
    if name not in _PRESETS:
        raise ValueError(
            f"No training recipe of that name. Expected one of {available_presets()} "
            f"(or call `keras_dta.training.register_preset`). Received: preset={name!r}"
        )
    return copy.deepcopy(_PRESETS[name])
