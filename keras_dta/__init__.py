"""keras_dta: spiking neural networks with Dual Temporal-channel-wise Attention for Keras 3."""

__version__ = "0.1.0"
