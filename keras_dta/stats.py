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

import dataclasses
import logging
import math
import os

import keras
import numpy as np
from keras import ops

from keras_dta.layers import DTA, LIF, TNA, TXA, Subsample2D, TimeFold

logger = logging.getLogger(__name__)

#: Energy of one accumulate (a spike-driven synaptic operation) at 45 nm, in picojoules.
E_AC_PJ = 0.9
#: Energy of one 32-bit floating point multiply-accumulate at 45 nm, in picojoules.
E_MAC_PJ = 4.6

# Layers between a LIF and a counted layer that keep the spikes binary.
_SPIKE_PRESERVING = (
    keras.layers.ZeroPadding1D,
    keras.layers.ZeroPadding2D,
    keras.layers.ZeroPadding3D,
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.Reshape,
    keras.layers.Flatten,
    keras.layers.Dropout,
    Subsample2D,
)


def lif_layers(model):
    """Returns every `LIF` layer of a model, in graph order (nested models included).

    Args:
        model: a functional `keras.Model`.

    Returns:
        A list of `keras_dta.layers.LIF`.
    """
    return [layer for layer in _flat_layers(model) if isinstance(layer, LIF)]


def _flat_layers(model):
    out = []
    for layer in model.layers:
        out.extend(_flat_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def _check_functional(model):
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise ValueError(
            "keras_dta.stats needs a functional (or built Sequential) keras.Model with "
            f"symbolic inputs. Received: model={model!r}"
        )


class _RateProbe:
    """A sub-model returning, per LIF layer, the spike count of each sample and time step."""

    def __init__(self, model):
        _check_functional(model)
        self.lifs = lif_layers(model)
        if not self.lifs:
            raise ValueError(f"The model has no LIF layer. Received: model={model.name}")
        outputs = {}
        self.neurons = {}
        for lif in self.lifs:
            spikes = lif.output
            if len(spikes.shape) < 3:
                raise ValueError(
                    f"LIF output must be (batch, time, ...). Received: "
                    f"{lif.name}.output.shape={spikes.shape}"
                )
            axes = tuple(range(2, len(spikes.shape)))
            # Reduced inside the graph: the full spike maps of MS-ResNet-18 are hundreds of
            # megabytes per batch.
            outputs[lif.name] = ops.sum(ops.cast(spikes, "float32"), axis=axes)
            self.neurons[lif.name] = math.prod(spikes.shape[2:])
        self.model = keras.Model(model.inputs, outputs, name=f"{model.name}_rate_probe")

    def counts(self, x):
        """Spike sums `(batch, time)` of every LIF layer for one batch of inputs."""
        out = self.model.predict_on_batch(x)
        return {name: np.asarray(value, dtype=np.float64) for name, value in out.items()}


def _iterate_batches(data, steps, batch_size):
    """Yields input batches from an array, a `tf.data.Dataset` or any iterable of batches."""
    if steps is not None and (not isinstance(steps, int) or steps < 1):
        raise ValueError(f"`steps` must be None or a positive integer. Received: steps={steps}")
    if isinstance(data, np.ndarray) or (hasattr(data, "shape") and hasattr(data, "dtype")):
        data = np.asarray(data)
        batches = (data[i : i + batch_size] for i in range(0, len(data), batch_size))
    elif hasattr(data, "as_numpy_iterator"):
        # tf.data: NumPy batches, which every backend's predict accepts.
        batches = data.as_numpy_iterator()
    else:
        batches = iter(data)
    for i, batch in enumerate(batches):
        if steps is not None and i >= steps:
            return
        if isinstance(batch, (tuple, list)):
            batch = batch[0]  # (x, y) or (x, y, sample_weight)
        yield batch


def _accumulate(probe, data, steps, batch_size):
    sums, samples = None, 0
    for x in _iterate_batches(data, steps, batch_size):
        counts = probe.counts(x)
        batch_sums = {name: c.sum(axis=0) for name, c in counts.items()}  # (time,)
        samples += next(iter(counts.values())).shape[0]
        if sums is None:
            sums = batch_sums
        else:
            for name in sums:
                sums[name] += batch_sums[name]
    if not samples:
        raise ValueError("`data` yielded no batch.")
    return sums, samples


def firing_rates(model, data, steps=None, batch_size=32, per_time_step=False):
    """Mean firing rate of every `LIF` layer over a dataset.

    The rate of a layer is its number of spikes divided by (samples x time steps x neurons):
    the mean number of spikes per neuron per time step, in `[0, 1]`. The model runs in
    inference mode (BatchNorm uses its moving statistics).

    Args:
        model: a functional `keras.Model` holding `keras_dta.layers.LIF` layers.
        data: a NumPy array of inputs, a `tf.data.Dataset`, or any iterable of batches;
            batches may be `x` or tuples `(x, y, ...)` (only `x` is used).
        steps: int or None, the number of batches to use; None uses all of `data`.
        batch_size: int, the batch size when `data` is an array.
        per_time_step: bool; if True each value is a NumPy array `(time,)` of per-step rates
            instead of a float.

    Returns:
        A dict `{lif_layer_name: rate}` in graph order.

    Example:

    >>> rates = firing_rates(model, x_test[:256])
    >>> rates["stem_lif"]
    0.1432...
    """
    probe = _RateProbe(model)
    sums, samples = _accumulate(probe, data, steps, batch_size)
    rates = {}
    for name, total in sums.items():
        per_step = total / (samples * probe.neurons[name])
        rates[name] = per_step if per_time_step else float(per_step.mean())
    logger.info("Firing rates over %d samples: %s", samples, rates)
    return rates


# ---------------------------------------------------------------------------------------
# Operation counts.


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else history.operation


def _is_transparent(layer):
    inner = layer.layer if isinstance(layer, TimeFold) else layer
    return isinstance(inner, _SPIKE_PRESERVING)


def _input_source(layer):
    """(kind, lif_name) of a layer's input: kind is 'spikes', 'rate' or 'real'."""
    tensor = layer.input
    while True:
        producer = _producer(tensor)
        if producer is None:
            return "real", None
        if isinstance(producer, LIF):
            return "spikes", producer.name
        if _is_transparent(producer):
            tensor = producer.input
            continue
        inner = producer.layer if isinstance(producer, TimeFold) else producer
        if isinstance(inner, (keras.layers.GlobalAveragePooling2D, keras.layers.AveragePooling2D,
                              keras.layers.GlobalAveragePooling1D, keras.layers.AveragePooling1D)):
            kind, source = _input_source(producer)
            return ("rate", source) if kind == "spikes" else (kind, None)
        return "real", None


def _conv_macs_per_sample(conv, input_shape, output_shape):
    """MACs of one sample of a Conv/DepthwiseConv layer from its shapes (channels last)."""
    kernel = conv.kernel_size
    spatial_out = math.prod(output_shape[1:-1])
    c_in, c_out = input_shape[-1], output_shape[-1]
    if isinstance(conv, keras.layers.DepthwiseConv2D) or isinstance(
        conv, getattr(keras.layers, "DepthwiseConv1D", ())
    ):
        return spatial_out * math.prod(kernel) * c_out  # one input channel per output
    groups = getattr(conv, "groups", 1)
    return spatial_out * math.prod(kernel) * c_in * c_out // groups


def _is_conv(layer):
    return isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Conv3D
                      | keras.layers.DepthwiseConv2D) and not isinstance(
        layer, keras.layers.Conv2DTranspose | keras.layers.Conv1DTranspose | keras.layers.Conv3DTranspose
    )


def _dta_macs(layer):
    """MACs of the DTA block per sample, over all T steps, by operation."""
    x_shape = layer.input[0].shape
    _, T, H, W, C = x_shape
    D = T * C
    parts = {}
    if layer.txa is not None:
        k_t, k_c = layer.txa.kernel_size_t, layer.txa.kernel_size_c
        parts["txa_conv_t"] = C * k_t * T * T  # length C, T -> T channels
        parts["txa_conv_c"] = T * k_c * C * C  # length T, C -> C channels
    if layer.tna is not None:
        hidden = D // max(D // 16, 4)
        k = layer.tna.local_kernel_size
        parts["tna_encoding"] = H * W * D * D
        parts["tna_local_depthwise"] = H * W * k * k * D
        parts["tna_local_pointwise"] = H * W * D * D
        parts["tna_global_squeeze"] = D * hidden
        parts["tna_global_excite"] = hidden * D
        parts["tna_decoding"] = H * W * D * D
    return T, parts


def count_macs(model):
    """Multiply-accumulates per image of every convolution, dense layer and DTA block.

    Args:
        model: a functional `keras.Model` (e.g. from `keras_dta.models.ms_resnet18`).

    Returns:
        A dict, in graph order, `{name: entry}` where entry is a dict with
        `"kind"` (`"conv"`, `"dense"` or `"dta"`), `"time_steps"` (T, 1 for a layer that does
        not see a time axis), `"macs_per_step"`, `"macs"` (total over T), `"input"`
        (`"spikes"`, `"rate"` or `"real"`) and `"source"` (the feeding LIF layer's name, or
        None). DTA entries also hold `"parts"`, the MACs of each of its operations.

    Example:

    >>> macs = count_macs(keras_dta.models.ms_resnet18(T=6))
    >>> macs["stem_conv"]["macs_per_step"]  # 32 * 32 * 3 * 3 * 3 * 64
    1769472
    """
    _check_functional(model)
    result = {}
    for layer in _flat_layers(model):
        inner = layer.layer if isinstance(layer, TimeFold) else layer
        if isinstance(layer, DTA):
            T, parts = _dta_macs(layer)
            total = sum(parts.values())
            result[layer.name] = {
                "kind": "dta", "time_steps": T, "macs_per_step": total // T, "macs": total,
                "input": "real", "source": None, "parts": parts,
            }
            continue
        if isinstance(layer, TXA | TNA):
            logger.warning("count_macs: standalone %s '%s' is not counted.", type(layer).__name__, layer.name)
            continue
        if not (_is_conv(inner) or isinstance(inner, keras.layers.Dense)):
            continue
        in_shape, out_shape = tuple(layer.input.shape), tuple(layer.output.shape)
        if isinstance(layer, TimeFold):
            T = in_shape[1]
            in_shape, out_shape = (in_shape[0], *in_shape[2:]), (out_shape[0], *out_shape[2:])
        elif isinstance(inner, keras.layers.Dense) and len(in_shape) >= 3:
            T = in_shape[1]  # Dense on (batch, time, features): one product per step
        else:
            T = 1
        if any(d is None for d in (*in_shape[1:], *out_shape[1:])) or T is None:
            raise ValueError(
                f"count_macs needs static shapes. Received: {layer.name} input shape "
                f"{layer.input.shape}, output shape {layer.output.shape}"
            )
        if _is_conv(inner):
            kind, per_step = "conv", _conv_macs_per_sample(inner, in_shape, out_shape)
        else:
            # A Dense acts on the last axis; every other non-batch, non-time axis repeats it.
            middle = in_shape[1:-1] if T == 1 or isinstance(layer, TimeFold) else in_shape[2:-1]
            kind, per_step = "dense", math.prod(middle) * in_shape[-1] * inner.units
        source_kind, source = _input_source(layer)
        result[layer.name] = {
            "kind": kind, "time_steps": T, "macs_per_step": per_step, "macs": per_step * T,
            "input": source_kind, "source": source,
        }
    return result


# ---------------------------------------------------------------------------------------
# Synaptic operations and energy.


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


def format_macs_table(macs):
    """Formats the output of `count_macs` as a plain-text table.

    Args:
        macs: dict from `count_macs`.

    Returns:
        A string.
    """
    header = f"{'layer':<28} {'kind':<5} {'input':<6} {'T':>3} {'MACs/step':>12} {'MACs':>14}"
    lines = [header, "-" * len(header)]
    for name, e in macs.items():
        lines.append(
            f"{name:<28} {e['kind']:<5} {e['input']:<6} {e['time_steps']:>3} "
            f"{e['macs_per_step']:>12,} {e['macs']:>14,}"
        )
    per_step = sum(e["macs_per_step"] for e in macs.values())
    total = sum(e["macs"] for e in macs.values())
    lines += ["-" * len(header), f"{'total':<28} {'':<5} {'':<6} {'':>3} {per_step:>12,} {total:>14,}"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Logging and plots.


class FiringRateLogger(keras.callbacks.Callback):
    """Logs the firing rate of every LIF layer to TensorBoard during training.

    Every `every_n_epochs` epochs (and optionally at the end of training) the rates are
    measured on `data` in inference mode and written as scalars `firing_rate/<layer>` plus
    `firing_rate/mean`, with the epoch as the step. The latest rates are kept in
    `self.rates` and all of them in `self.history` (`{epoch: rates}`).

    Writing the event file needs TensorFlow (`tf.summary`), which is imported when the
    callback is created; measuring the rates is backend-neutral.

    Args:
        data: inputs to measure on: an array, a `tf.data.Dataset` or an iterable of batches.
            Use a fixed, small slice of the validation set.
        log_dir: str, the TensorBoard directory (a `firing_rates` sub-directory is used).
        every_n_epochs: positive int.
        steps: int or None, batches of `data` per measurement.
        batch_size: int, batch size when `data` is an array.
        on_train_end: bool, also measure after the last epoch if it was not just measured.

    Example:

    >>> logger = FiringRateLogger(x_val[:256], "runs/dta", every_n_epochs=5)
    >>> model.fit(train, epochs=250, callbacks=[logger])
    >>> plot_firing_rates(logger.rates, "runs/dta/firing_rates.png")
    """

    def __init__(self, data, log_dir, every_n_epochs=1, steps=None, batch_size=32, on_train_end=True):
        super().__init__()
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(
                f"`every_n_epochs` must be a positive integer. Received: every_n_epochs={every_n_epochs}"
            )
        if steps is not None and (not isinstance(steps, int) or steps < 1):
            raise ValueError(f"`steps` must be None or a positive integer. Received: steps={steps}")
        try:
            import tensorflow as tf  # noqa: PLC0415 - tf.summary writes the event file
        except ImportError as e:
            raise ImportError("FiringRateLogger writes TensorBoard files with TensorFlow.") from e
        self._tf = tf
        self.data = data
        self.log_dir = os.fspath(log_dir)
        self.every_n_epochs = every_n_epochs
        self.steps = steps
        self.batch_size = batch_size
        self.log_on_train_end = on_train_end
        self.rates = None
        self.history = {}
        self._writer = None
        self._probe = None
        self._last_epoch = None
        self._metadata = None

    def _measure(self, epoch):
        if self._probe is None:
            self._probe = _RateProbe(self.model)
        if self._writer is None:
            self._writer = self._tf.summary.create_file_writer(os.path.join(self.log_dir, "firing_rates"))
        sums, samples = _accumulate(self._probe, self.data, self.steps, self.batch_size)
        rates = {name: float(total.sum() / (samples * total.size * self._probe.neurons[name]))
                 for name, total in sums.items()}
        with self._writer.as_default():
            for name, rate in rates.items():
                self._scalar(f"firing_rate/{name}", rate, epoch)
            self._scalar("firing_rate/mean", float(np.mean(list(rates.values()))), epoch)
        self._writer.flush()
        self.rates = rates
        self.history[epoch] = rates
        self._last_epoch = epoch
        logger.debug("Epoch %d firing rates: %s", epoch, rates)

    def _scalar(self, tag, value, step):
        # tf.summary.scalar lives in the tensorboard package, which TensorFlow does not
        # require; tf.summary.write with the scalar plugin's metadata writes the same record.
        if self._metadata is None:
            from tensorflow.core.framework import summary_pb2  # noqa: PLC0415

            self._metadata = summary_pb2.SummaryMetadata(
                plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
                data_class=summary_pb2.DATA_CLASS_SCALAR,
            )
        self._tf.summary.write(tag, self._tf.constant(value, self._tf.float32), step=step,
                               metadata=self._metadata)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs == 0:
            self._measure(epoch)

    def on_train_end(self, logs=None):
        epoch = getattr(self, "_epoch_seen", None)
        if self.log_on_train_end and epoch is not None and epoch != self._last_epoch:
            self._measure(epoch)
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_seen = epoch


def plot_firing_rates(rates, path, title="Firing rate per LIF layer"):
    """Writes a bar chart of per-layer firing rates to an image file (PNG by extension).

    Uses Matplotlib's object API with the Agg canvas, so no global backend is changed.

    Args:
        rates: dict `{layer_name: rate}` from `firing_rates` (per-step arrays are averaged).
        path: str or path-like, the output file.
        title: str, the chart title.

    Returns:
        The path written, as a string.
    """
    if not rates:
        raise ValueError(f"`rates` is empty. Received: rates={rates}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    names = list(rates)
    values = [float(np.mean(rates[n])) for n in names]
    fig = Figure(figsize=(max(6.0, 0.35 * len(names) + 2.0), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(range(len(names)), values, color="tab:blue")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=75, ha="right", fontsize=7)
    ax.set_ylabel("spikes / neuron / step")
    ax.set_ylim(0, max(values + [1e-3]) * 1.15)
    ax.axhline(float(np.mean(values)), color="tab:red", linestyle="--", linewidth=1,
               label=f"mean {np.mean(values):.3f}")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    path = os.fspath(path)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
