"""Synaptic operations and the energy estimate of a spiking model against its ANN
equivalent (Horowitz, ISSCC 2014: 0.9 pJ per accumulate, 4.6 pJ per 32-bit float MAC at 45 nm).

A layer fed by spikes is charged `macs * rate` accumulates (rate: the firing rate of the
LIF layer feeding it); a layer fed by real values (the first convolution, the membrane
shortcuts, the DTA block, the classifier on pooled rates) its full MACs.
"""

import dataclasses

import numpy as np

from keras_dta.stats.macs import count_macs

#: Energy of one accumulate (a spike-driven synaptic operation) at 45 nm, in picojoules.
E_AC_PJ = 0.9
#: Energy of one 32-bit floating point multiply-accumulate at 45 nm, in picojoules.
E_MAC_PJ = 4.6


@dataclasses.dataclass
class LayerEnergy:
    """Operation counts and energy of one layer, per image.

    Attributes:
        name: the layer's name.
        kind: `"conv"`, `"dense"` or `"dta"`.
        input: `"spikes"`, `"rate"` or `"real"`.
        source: the feeding LIF layer, or None.
        rate: the feeding LIF layer's firing rate, or None for a real-valued input.
        macs: MACs of the ANN-equivalent layer, over all time steps.
        acs: spike-driven accumulates, `macs * rate` (0 for real-valued inputs).
        real_macs: MACs actually needed (`macs` for real-valued inputs, else 0).
        energy_pj: `acs * e_ac + real_macs * e_mac`.
    """

    name: str
    kind: str
    input: str
    source: str | None
    rate: float | None
    macs: int
    acs: float
    real_macs: int
    energy_pj: float

    @property
    def sops(self):
        """Synaptic operations: accumulates plus real-valued MACs."""
        return self.acs + self.real_macs


@dataclasses.dataclass
class EnergyReport:
    """Per-image operation counts and energy estimate of a spiking model.

    Attributes:
        layers: a list of `LayerEnergy`, in graph order.
        e_ac_pj: energy per accumulate used, pJ.
        e_mac_pj: energy per MAC used, pJ.
    """

    layers: list
    e_ac_pj: float = E_AC_PJ
    e_mac_pj: float = E_MAC_PJ

    @property
    def total_macs(self):
        """MACs of the ANN-equivalent network, per image over all time steps."""
        return sum(layer.macs for layer in self.layers)

    @property
    def total_acs(self):
        """Spike-driven accumulates per image."""
        return sum(layer.acs for layer in self.layers)

    @property
    def total_real_macs(self):
        """MACs on real-valued inputs per image."""
        return sum(layer.real_macs for layer in self.layers)

    @property
    def total_sops(self):
        """Synaptic operations per image: accumulates plus real-valued MACs."""
        return self.total_acs + self.total_real_macs

    @property
    def snn_energy_pj(self):
        """Estimated energy of the spiking network per image, pJ."""
        return sum(layer.energy_pj for layer in self.layers)

    @property
    def ann_energy_pj(self):
        """Energy of the ANN-equivalent network (every MAC at `e_mac_pj`) per image, pJ."""
        return self.total_macs * self.e_mac_pj

    def to_dict(self):
        """A JSON-serialisable dict of the per-layer rows and the totals."""
        return {
            "e_ac_pj": self.e_ac_pj,
            "e_mac_pj": self.e_mac_pj,
            "layers": [dataclasses.asdict(layer) for layer in self.layers],
            "total_macs": self.total_macs,
            "total_acs": self.total_acs,
            "total_real_macs": self.total_real_macs,
            "total_sops": self.total_sops,
            "snn_energy_pj": self.snn_energy_pj,
            "ann_energy_pj": self.ann_energy_pj,
            "energy_ratio_ann_over_snn": self.ann_energy_pj / self.snn_energy_pj
            if self.snn_energy_pj else None,
        }


def _rows(model, rates, macs):
    macs = count_macs(model) if macs is None else macs
    rows = []
    for name, entry in macs.items():
        rate = None
        if entry["input"] == "spikes":
            if entry["source"] not in rates:
                raise ValueError(
                    f"No firing rate for LIF layer '{entry['source']}', which feeds '{name}'. "
                    f"Received: rates with keys {sorted(rates)}"
                )
            rate = float(np.mean(rates[entry["source"]]))
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"Firing rates must be in [0, 1]. Received: {entry['source']}={rate}")
        rows.append((name, entry, rate))
    return rows


def synaptic_operations(model, rates, macs=None):
    """Synaptic operations (SOPs) per image of every counted layer.

    A layer fed by spikes does `macs * rate` accumulates (rate: the firing rate of the LIF
    layer that feeds it); a layer fed by real values (the first convolution, membrane
    shortcuts, the DTA block, the classifier on pooled rates) counts its full MACs.

    Args:
        model: a functional `keras.Model`.
        rates: dict `{lif_layer_name: rate}` from `firing_rates`.
        macs: optional output of `count_macs(model)`, to avoid recounting.

    Returns:
        A dict `{layer_name: sops}` (floats, per image over all time steps).
    """
    return {
        name: entry["macs"] * rate if rate is not None else float(entry["macs"])
        for name, entry, rate in _rows(model, rates, macs)
    }


def energy(model, rates, e_ac_pj=E_AC_PJ, e_mac_pj=E_MAC_PJ, macs=None):
    """Estimated inference energy per image of a spiking model and of its ANN equivalent.

    Args:
        model: a functional `keras.Model`.
        rates: dict `{lif_layer_name: rate}` from `firing_rates`.
        e_ac_pj: float, energy of one accumulate in pJ (0.9 at 45 nm).
        e_mac_pj: float, energy of one float MAC in pJ (4.6 at 45 nm).
        macs: optional output of `count_macs(model)`.

    Returns:
        An `EnergyReport`.
    """
    for name, value in (("e_ac_pj", e_ac_pj), ("e_mac_pj", e_mac_pj)):
        if not value > 0:
            raise ValueError(f"`{name}` must be positive. Received: {name}={value}")
    layers = []
    for name, entry, rate in _rows(model, rates, macs):
        acs = entry["macs"] * rate if rate is not None else 0.0
        real = 0 if rate is not None else entry["macs"]
        layers.append(LayerEnergy(
            name=name, kind=entry["kind"], input=entry["input"], source=entry["source"],
            rate=rate, macs=entry["macs"], acs=acs, real_macs=real,
            energy_pj=acs * e_ac_pj + real * e_mac_pj,
        ))
    return EnergyReport(layers=layers, e_ac_pj=e_ac_pj, e_mac_pj=e_mac_pj)


def _si(value):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3f}{unit}"
    return f"{value:.1f}"


def format_energy_table(report):
    """Formats an `EnergyReport` as a plain-text table, one row per layer, then totals.

    Args:
        report: an `EnergyReport` from `energy`.

    Returns:
        A string.
    """
    header = f"{'layer':<28} {'kind':<5} {'input':<6} {'rate':>7} {'MACs':>10} {'ACs':>10} {'energy uJ':>10}"
    lines = [header, "-" * len(header)]
    for layer in report.layers:
        rate = "-" if layer.rate is None else f"{layer.rate:.4f}"
        lines.append(
            f"{layer.name:<28} {layer.kind:<5} {layer.input:<6} {rate:>7} {_si(layer.macs):>10} "
            f"{_si(layer.acs):>10} {layer.energy_pj / 1e6:>10.3f}"
        )
    lines.append("-" * len(header))
    ratio = report.ann_energy_pj / report.snn_energy_pj if report.snn_energy_pj else float("nan")
    lines += [
        f"MACs (ANN equivalent): {_si(report.total_macs)}   spike-driven ACs: {_si(report.total_acs)}"
        f"   real-valued MACs: {_si(report.total_real_macs)}   SOPs: {_si(report.total_sops)}",
        f"energy per image: SNN {report.snn_energy_pj / 1e6:.3f} uJ, ANN {report.ann_energy_pj / 1e6:.3f} uJ "
        f"({ratio:.2f}x) at {report.e_ac_pj} pJ/AC, {report.e_mac_pj} pJ/MAC",
    ]
    return "\n".join(lines)
