"""Spike statistics of spiking models: firing rates, operation counts and energy estimates.

The usual way to compare an SNN with its ANN counterpart (Horowitz, ISSCC 2014; the figures
used by most direct-training SNN papers): count the multiply-accumulates (MACs) an ANN of the
same shape would do, then charge a spiking layer only for the accumulates its input spikes
trigger (MACs times the firing rate of the neuron layer that feeds it), and a layer fed by
real values (the first convolution, the membrane shortcuts, the attention block) for full
MACs. At 45 nm an accumulate costs about 0.9 pJ and a 32-bit float MAC about 4.6 pJ.

Counting conventions, kept explicit in every report:

- MACs are per image, from the layers' static shapes: a convolution does
  `H_out * W_out * k_h * k_w * C_in * C_out / groups` per time step, a dense layer
  `in * out`; the total is that times T. BatchNorm, pooling, the neurons and element-wise
  products are not counted (BatchNorm folds into the convolution at inference).
- The DTA block (paper eq. 6) is counted by its convolutions and matrix products (T-XA's two
  Conv1d, T-NA's encoding, depthwise, pointwise, GTCA and decoding). It acts on all T steps
  at once; its "per time step" figure is its total divided by T. Its input is the stem's
  real-valued output, so it is charged as MACs.
- A layer is "spike-driven" when its input comes from a `LIF` layer, possibly through
  padding or max pooling (which keep spikes binary). The classifier of MS-ResNet sees the
  global average of spikes, a rate, not a spike: it is charged as MACs (it is 0.01% of the
  total either way).

Example:

>>> model = keras_dta.models.ms_resnet18(attn="dta", T=6)
>>> rates = keras_dta.stats.firing_rates(model, test_dataset, steps=10)
>>> report = keras_dta.stats.energy(model, rates)
>>> print(keras_dta.stats.format_energy_table(report))
"""

from keras_dta.stats.callbacks import FiringRateLogger
from keras_dta.stats.energy import (
    E_AC_PJ,
    E_MAC_PJ,
    EnergyReport,
    LayerEnergy,
    energy,
    format_energy_table,
    synaptic_operations,
)
from keras_dta.stats.macs import count_macs, format_macs_table
from keras_dta.stats.plots import plot_firing_rates
from keras_dta.stats.rates import firing_rates, lif_layers

__all__ = [
    "E_AC_PJ",
    "E_MAC_PJ",
    "EnergyReport",
    "FiringRateLogger",
    "LayerEnergy",
    "count_macs",
    "energy",
    "firing_rates",
    "format_energy_table",
    "format_macs_table",
    "lif_layers",
    "plot_firing_rates",
    "synaptic_operations",
]
