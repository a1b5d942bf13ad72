"""Spiking and attention layers."""

from keras_dta.layers.dta import DTA, TNA, TXA
from keras_dta.layers.grid import Int8GridConv2D
from keras_dta.layers.lif import LIF
from keras_dta.layers.spatial import Subsample2D
from keras_dta.layers.time import MeanOverTime, RepeatTime, TimeFold

__all__ = ["DTA", "Int8GridConv2D", "LIF", "MeanOverTime", "RepeatTime", "Subsample2D", "TNA", "TXA", "TimeFold"]
