"""Per-LIF-layer spike agreement of an export (keras_dta.export.spikes)."""

import keras
import numpy as np
import pytest

from keras_dta import export
from keras_dta.export import spikes
from keras_dta.layers import LIF, MeanOverTime, RepeatTime, TimeFold


def _two_lif_model(second_threshold):
    """An identity channel mix, then two LIF layers; inputs on a 1/4 grid keep float32 exact."""
    inputs = keras.Input((4, 4, 2), name="images")
    x = RepeatTime(3, name="repeat")(inputs)
    x = keras.layers.Dense(2, use_bias=False, kernel_initializer="identity", name="mix")(x)
    x = keras.layers.Add(name="add")([LIF(name="lif_a")(x), LIF(v_threshold=second_threshold, name="lif_b")(x)])
    x = TimeFold(keras.layers.GlobalAveragePooling2D(), name="pool")(x)
    x = keras.layers.Dense(3, name="dense")(x)
    return keras.Model(inputs, MeanOverTime(name="mean")(x))


def _inputs(count=6):
    return (np.random.default_rng(0).integers(0, 12, size=(count, 4, 4, 2)) / 4.0).astype("float32")


def test_the_probe_outputs_every_lif_in_graph_order():
    probe, names = spikes.lif_probe(_two_lif_model(1.0))
    assert names == ["lif_a", "lif_b"]
    assert len(probe.outputs) == 3


def test_a_model_without_lif_is_refused():
    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="no LIF"):
        spikes.lif_probe(keras.Model(inputs, keras.layers.Dense(2)(inputs)))


def test_agreement_is_the_share_of_equal_spikes_per_layer():
    # The exported model differs from the Keras one in lif_b's threshold only, so lif_a
    # agrees everywhere and lif_b exactly where the two thresholds give the same spikes.
    reference, names = spikes.lif_probe(_two_lif_model(1.0))
    changed, _ = spikes.lif_probe(_two_lif_model(0.5))
    changed.set_weights(reference.get_weights())
    x = _inputs()
    expected_b = np.mean(reference.predict(x, verbose=0)[2] == changed.predict(x, verbose=0)[2])
    assert 0.0 < expected_b < 1.0
    content = export.convert_to_tflite(changed)
    agreement = spikes.spike_agreement(reference, content, x, names, threads=1)
    assert list(agreement) == ["lif_a", "lif_b"]
    assert agreement["lif_a"] == 1.0
    assert agreement["lif_b"] == pytest.approx(expected_b, abs=1e-12)


def test_export_reports_spike_agreement(tmp_path):
    keras.utils.set_random_seed(0)
    model = _two_lif_model(1.0)
    x = _inputs(8)
    report = export.export_tflite(model, str(tmp_path / "m.tflite"), eval_data=x, benchmark_runs=0)
    assert report["spike_agreement"] == {"lif_a": 1.0, "lif_b": 1.0}
    assert "lif_b" in export.format_spike_agreement(report)
    quiet = export.export_tflite(model, str(tmp_path / "m.tflite"), eval_data=x, benchmark_runs=0, spike_report=False)
    assert quiet["spike_agreement"] is None
