"""Spiking and attention layers."""

from keras_dta.layers.dta import DTA, TNA, TXA
from keras_dta.layers.lif import LIF
from keras_dta.layers.time import MeanOverTime, RepeatTime, TimeFold

__all__ = ["DTA", "LIF", "MeanOverTime", "RepeatTime", "TNA", "TXA", "TimeFold"]
