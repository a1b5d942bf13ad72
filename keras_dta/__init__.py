"""keras_dta: spiking neural networks with Dual Temporal-channel-wise Attention for Keras 3."""

import importlib

__version__ = "0.1.0"

# Submodules load on first use, so light entry points (`python -m keras_dta.convert --help`,
# the trainers' flag parsing) do not pay for importing Keras and its backend.
_SUBMODULES = ("layers", "models", "surrogates", "convert", "data", "training", "export", "stats")

__all__ = list(_SUBMODULES)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"keras_dta.{name}")
    raise AttributeError(f"module 'keras_dta' has no attribute {name!r}")
