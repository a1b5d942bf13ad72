"""keras_dta: spiking neural networks with Dual Temporal-channel-wise Attention for Keras 3."""

import importlib

# Imported eagerly: importing keras_dta registers its layers, losses and optimizer, so
# `.keras` files (the trainer's checkpoints included) load.
from keras_dta import layers, losses, models, optimizers, surrogates

__version__ = "0.1.0"

# Heavier modules (datasets, trainer, export) load on first use.
_LAZY = ("convert", "data", "training", "export", "stats")

__all__ = ["layers", "losses", "models", "optimizers", "surrogates", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"keras_dta.{name}")
    raise AttributeError(f"module 'keras_dta' has no attribute {name!r}")
