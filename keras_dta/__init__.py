"""keras_dta: spiking neural networks with Dual Temporal-channel-wise Attention for Keras 3."""

import importlib

# Imported eagerly: importing keras_dta registers its layers, so `.keras` files load.
from keras_dta import layers, models, surrogates

__version__ = "0.1.0"

# Heavier modules (datasets, trainer, export) load on first use.
_LAZY = ("convert", "data", "training", "export", "stats")

__all__ = ["layers", "models", "surrogates", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"keras_dta.{name}")
    raise AttributeError(f"module 'keras_dta' has no attribute {name!r}")
