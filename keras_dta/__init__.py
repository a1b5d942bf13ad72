"""keras_dta: spiking neural networks with Dual Temporal-channel-wise Attention for Keras 3."""

from keras_dta import layers, models, surrogates

__version__ = "0.1.0"

__all__ = ["layers", "models", "surrogates"]
