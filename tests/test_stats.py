"""Tests for keras_dta.stats: firing rates, MAC counts, SOPs, energy, logging and plots."""

import glob
import os

import keras
import numpy as np
import pytest

import keras_dta
from keras_dta import stats
from keras_dta.layers import LIF, TimeFold

T = 4
# Constant inputs to a LIF with tau = 0.5, V_th = 1 (hard reset) and the spikes they give:
#   1.5: u = 1.5 > 1 every step                      -> 1 1 1 1
#   0.8: u = 0.8, 1.2 (fire, reset), 0.8, 1.2 (fire) -> 0 1 0 1
#   0.6: u = 0.6, 0.9, 1.05 (fire), 0.6              -> 0 0 1 0
#   0.0: never                                       -> 0 0 0 0
#   1.0: u = 1.0, 1.5 (fire; strict threshold)       -> 0 1 0 1
CURRENTS = np.array([1.5, 0.8, 0.6, 0.0, 1.0], dtype="float32")
SPIKES = np.array([[1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 1]], "float32")


def _two_lif_model():
    """LIF -> 1x1 conv (weight 2, no bias) -> LIF: the second layer copies the first's spikes.

    A spike (1) becomes a current of 2 > V_th, which fires at once and resets to 0; no spike
    gives 0, which leaves a reset membrane at 0. So both layers spike at the same places.
    """
    inputs = keras.Input((T, 1, len(CURRENTS), 1))
    s1 = LIF(name="lif_a")(inputs)
    conv = keras.layers.Conv2D(3, 1, use_bias=False, kernel_initializer="zeros")
    y = TimeFold(conv, name="conv")(s1)
    conv.kernel.assign(np.full((1, 1, 1, 3), 2.0, "float32"))
    s2 = LIF(name="lif_b")(y)
    return keras.Model(inputs, s2)


def _currents(batch, silent_rows=()):
    x = np.broadcast_to(CURRENTS[None, None, None, :, None], (batch, T, 1, len(CURRENTS), 1)).copy()
    for row in silent_rows:
        x[row] = 0.0
    return x


def test_lif_spike_pattern_is_what_the_rates_assume():
    spikes = keras.ops.convert_to_numpy(LIF()(_currents(1)))
    np.testing.assert_array_equal(spikes[0, :, 0, :, 0], SPIKES.T)


def test_firing_rates_known_by_construction():
    model = _two_lif_model()
    x = _currents(6, silent_rows=(1, 4))  # 4 active samples of 6
    expected = SPIKES.sum() * 4 / (6 * T * len(CURRENTS))  # 9 spikes per active sample
    rates = stats.firing_rates(model, x, batch_size=4)  # batches of 4 and 2
    assert list(rates) == ["lif_a", "lif_b"]
    assert rates["lif_a"] == pytest.approx(expected, abs=1e-9)
    assert rates["lif_b"] == pytest.approx(expected, abs=1e-9)


def test_firing_rates_per_step_steps_and_datasets():
    model = _two_lif_model()
    x = _currents(4)
    per_step = stats.firing_rates(model, x, per_time_step=True)
    np.testing.assert_allclose(per_step["lif_a"], SPIKES.mean(axis=0), atol=1e-9)
    # `steps` limits the batches: the second batch (silent) is never seen.
    batches = [(_currents(2), np.zeros(2)), (np.zeros_like(_currents(2)), np.zeros(2))]
    assert stats.firing_rates(model, batches, steps=1)["lif_a"] == pytest.approx(SPIKES.sum() / 20)
    assert stats.firing_rates(model, batches)["lif_a"] == pytest.approx(SPIKES.sum() / 40)
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(4))).batch(3)
    assert stats.firing_rates(model, dataset)["lif_a"] == pytest.approx(SPIKES.sum() / 20)


def test_firing_rates_rejects_bad_input():
    with pytest.raises(ValueError, match="steps"):
        stats.firing_rates(_two_lif_model(), _currents(2), steps=0)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no LIF"):
        stats.firing_rates(plain, np.zeros((2, 4)))


def _small_resnet():
    return keras_dta.models.ms_resnet18(
        attn="dta", T=2, num_classes=5, input_shape=(8, 8, 3), stem_filters=8,
        stage_filters=(8, 16), stage_blocks=(1, 1), stage_strides=(1, 2),
    )


def test_count_macs_against_hand_calculation():
    macs = stats.count_macs(_small_resnet())
    Tn, H, C, D = 2, 8, 8, 16  # T-NA merges D = T * C channels; its hidden width is 16 // 4 = 4
    expected_per_step = {
        "stem_conv": 8 * 8 * 3 * 3 * 3 * 8,
        "dta": (C * 3 * Tn * Tn + Tn * 6 * C * C  # T-XA conv_t, conv_c
                + 3 * H * H * D * D + H * H * 25 * D + 2 * D * 4) // Tn,  # T-NA
        "stage1_block1_conv1": 8 * 8 * 9 * 8 * 8,
        "stage1_block1_conv2": 8 * 8 * 9 * 8 * 8,
        "stage2_block1_conv1": 4 * 4 * 9 * 8 * 16,
        "stage2_block1_conv2": 4 * 4 * 9 * 16 * 16,
        "stage2_block1_shortcut_conv": 4 * 4 * 8 * 16,
        "head_dense": 16 * 5,
    }
    assert list(macs) == list(expected_per_step)
    for name, per_step in expected_per_step.items():
        assert macs[name]["macs_per_step"] == per_step, name
        assert macs[name]["macs"] == per_step * Tn, name
    assert macs["dta"]["parts"]["tna_encoding"] == H * H * D * D
    sources = {name: (m["input"], m["source"]) for name, m in macs.items()}
    assert sources["stem_conv"] == ("real", None)
    assert sources["dta"] == ("real", None)
    assert sources["stage1_block1_conv1"] == ("spikes", "stage1_block1_lif1")
    # Through the explicit ZeroPadding2D of the strided conv.
    assert sources["stage2_block1_conv1"] == ("spikes", "stage2_block1_lif1")
    assert sources["stage2_block1_shortcut_conv"] == ("real", None)
    assert sources["head_dense"] == ("rate", "head_lif")


def test_count_macs_full_model_stem():
    macs = stats.count_macs(keras_dta.models.ms_resnet18(attn="none", T=4))
    assert "dta" not in macs
    assert macs["stem_conv"]["macs_per_step"] == 32 * 32 * 3 * 3 * 3 * 64
    assert macs["stage3_block2_conv2"]["macs_per_step"] == 8 * 8 * 9 * 512 * 512
    assert macs["head_dense"]["macs"] == 512 * 10 * 4


def test_sops_and_energy_arithmetic():
    model = _small_resnet()
    macs = stats.count_macs(model)
    rates = {layer.name: 0.1 for layer in stats.lif_layers(model)}
    rates["stage1_block1_lif1"] = 0.25
    sops = stats.synaptic_operations(model, rates, macs=macs)
    assert sops["stem_conv"] == macs["stem_conv"]["macs"]
    assert sops["stage1_block1_conv1"] == pytest.approx(0.25 * macs["stage1_block1_conv1"]["macs"])
    assert sops["stage1_block1_conv2"] == pytest.approx(0.1 * macs["stage1_block1_conv2"]["macs"])

    report = stats.energy(model, rates)
    spiking = [n for n, m in macs.items() if m["input"] == "spikes"]
    real = [n for n in macs if n not in spiking]
    acs = sum(macs[n]["macs"] * rates[macs[n]["source"]] for n in spiking)
    real_macs = sum(macs[n]["macs"] for n in real)
    assert report.total_acs == pytest.approx(acs)
    assert report.total_real_macs == real_macs
    assert report.total_sops == pytest.approx(sum(sops.values()))
    assert report.snn_energy_pj == pytest.approx(0.9 * acs + 4.6 * real_macs)
    assert report.ann_energy_pj == pytest.approx(4.6 * sum(m["macs"] for m in macs.values()))
    as_dict = report.to_dict()
    assert as_dict["energy_ratio_ann_over_snn"] == pytest.approx(report.ann_energy_pj / report.snn_energy_pj)
    table = stats.format_energy_table(report)
    assert "stage1_block1_conv1" in table and "0.2500" in table
    assert "total" in stats.format_macs_table(macs)

    # Silent network: only the real-valued layers cost energy.
    silent = stats.energy(model, {name: 0.0 for name in rates})
    assert silent.snn_energy_pj == pytest.approx(4.6 * real_macs)
    with pytest.raises(ValueError, match="No firing rate"):
        stats.energy(model, {"stem_lif": 0.1})
    with pytest.raises(ValueError, match="e_ac_pj"):
        stats.energy(model, rates, e_ac_pj=0)


def test_firing_rate_logger_writes_event_file(tmp_path):
    model = _two_lif_model()
    model.compile(optimizer="sgd", loss="mse")
    x, y = _currents(4), np.zeros((4, T, 1, len(CURRENTS), 3), "float32")
    callback = stats.FiringRateLogger(x, tmp_path, every_n_epochs=2)
    model.fit(x, y, epochs=3, batch_size=2, verbose=0, callbacks=[callback])
    assert sorted(callback.history) == [1, 2]  # epoch 1 by schedule, epoch 2 at train end
    assert set(callback.rates) == {"lif_a", "lif_b"}
    events = glob.glob(os.path.join(tmp_path, "firing_rates", "events.out.tfevents.*"))
    assert events and os.path.getsize(events[0]) > 0

    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    logged = {}
    for record in tf.data.TFRecordDataset(events[0]):
        event = event_pb2.Event.FromString(record.numpy())
        for value in event.summary.value:
            assert value.metadata.plugin_data.plugin_name == "scalars"
            logged.setdefault(value.tag, []).append((event.step, tf.make_ndarray(value.tensor)))
    assert set(logged) == {"firing_rate/lif_a", "firing_rate/lif_b", "firing_rate/mean"}
    assert [step for step, _ in logged["firing_rate/lif_a"]] == [1, 2]
    # The weights do not change the LIFs' inputs here (the first LIF sees the data directly).
    assert float(logged["firing_rate/lif_a"][0][1]) == pytest.approx(SPIKES.sum() / 20)
    with pytest.raises(ValueError, match="every_n_epochs"):
        stats.FiringRateLogger(x, tmp_path, every_n_epochs=0)


def test_plot_firing_rates_writes_png(tmp_path):
    path = stats.plot_firing_rates({"lif_a": 0.3, "lif_b": np.array([0.1, 0.2])}, tmp_path / "sub" / "r.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="empty"):
        stats.plot_firing_rates({}, tmp_path / "x.png")


def test_readme_energy_figures_follow_from_the_model():
    """The README's energy figures for the digits model: the ANN figure is the model's own
    (no rates involved), and the SNN figure lies between the model silent and at the quoted
    mean rate's bounds (every spike-driven layer at rate 0 and at rate 1)."""
    import pathlib
    import re

    from keras_dta import training

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    quoted = re.search(
        r"digits model of the main command fires at ([\d.]+) spikes per neuron per step on average"
        r"\s+and is estimated at ([\d.]+) uJ per image against ([\d.]+) uJ for its ANN equivalent",
        readme,
    )
    assert quoted, "the README's digits energy sentence moved; update this test with it"
    rate, snn_uj, ann_uj = map(float, quoted.groups())
    model = training.build_model(training.make_config("digits"))
    names = [layer.name for layer in stats.lif_layers(model)]
    silent = stats.energy(model, dict.fromkeys(names, 0.0))
    at_mean = stats.energy(model, dict.fromkeys(names, rate))
    assert round(silent.ann_energy_pj / 1e6, 1) == ann_uj
    assert silent.snn_energy_pj / 1e6 <= snn_uj <= stats.energy(model, dict.fromkeys(names, 1.0)).snn_energy_pj / 1e6
    # Per-layer rates differ from their mean, but not so much that the estimate doubles.
    assert 0.5 < snn_uj / (at_mean.snn_energy_pj / 1e6) < 2


def test_readme_cifar_energy_follows_from_the_quoted_rates():
    """The README's CIFAR-10 run (`cpu_small`, 32x32, 10 classes): its energy figures are what
    `stats.energy` gives for the model with the per-layer firing rates the README quotes."""
    import pathlib
    import re

    from keras_dta import training

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    rates_line = re.search(r"firing rates of the best model: (.+)", readme)
    energy_line = re.search(r"energy per image: SNN ([\d.]+) uJ, ANN equivalent ([\d.]+) uJ", readme)
    assert rates_line and energy_line, "the README's CIFAR-10 curve moved; update this test with it"
    rates = {name: float(value) for name, value in (pair.rsplit(" ", 1) for pair in rates_line.group(1).split(", "))}

    class Cifar10Folder:
        num_classes = 10

        def input_shape(self, T=None):
            return (32, 32, 3)

    model = training.build_model(training.make_config("image_folder", preset="cpu_small"), Cifar10Folder())
    assert set(rates) == {layer.name for layer in stats.lif_layers(model)}
    report = stats.energy(model, rates)
    assert round(report.snn_energy_pj / 1e6, 1) == float(energy_line.group(1))
    assert round(report.ann_energy_pj / 1e6, 1) == float(energy_line.group(2))
