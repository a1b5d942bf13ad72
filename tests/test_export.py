"""Tests of keras_dta.export: TFLite parity, int8, op list, SavedModel, atomic writes, CLI."""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from helpers import int8_weight_layers
from keras_dta import export
from keras_dta.export import flatbuffer
from keras_dta.layers import LIF
from keras_dta.models import ms_resnet18

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="export traces the model with TensorFlow"
)

REPO = pathlib.Path(__file__).resolve().parents[1]
T = 2
INPUT_SHAPE = (16, 16, 3)
NUM_CLASSES = 10


def _tiny_model():
    return ms_resnet18(
        attn="dta",
        T=T,
        num_classes=NUM_CLASSES,
        input_shape=INPUT_SHAPE,
        stem_filters=8,
        stage_filters=(8, 16, 16),
        stage_blocks=(1, 1, 1),
    )


def _prototype_data(n, seed):
    """A learnable task: each class is a fixed random image plus noise."""
    prototypes = np.random.default_rng(1234).uniform(0.0, 2.0, (NUM_CLASSES, *INPUT_SHAPE))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n)
    x = prototypes[labels] + rng.normal(0.0, 0.3, (n, *INPUT_SHAPE))
    return x.astype("float32"), labels


@pytest.fixture(scope="module")
def data():
    x_train, y_train = _prototype_data(256, seed=0)
    x_test, y_test = _prototype_data(48, seed=1)
    return x_train, y_train, x_test, y_test


@pytest.fixture(scope="module")
def model(data):
    # Briefly trained, so that the logits have margins and spikes carry the class: the int8
    # agreement of an untrained network measures nothing.
    keras.utils.set_random_seed(0)
    model = _tiny_model()
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    x_train, y_train, _, _ = data
    model.fit(x_train, y_train, batch_size=32, epochs=8, verbose=0)
    return model


@pytest.fixture(scope="module")
def float_export(model, data, tmp_path_factory):
    _, _, x_test, y_test = data
    output = tmp_path_factory.mktemp("float") / "model.tflite"
    report = export.export_tflite(
        model, str(output), quantize="none", eval_data=x_test, eval_labels=y_test, benchmark_runs=5
    )
    return report, output.read_bytes()


def test_float32_parity(model, data, float_export):
    _, _, x_test, y_test = data
    report, content = float_export
    assert report["max_abs_diff"] <= 1e-4
    assert report["top1_agreement"] == 1.0
    # Independently of the report: the written file against model.predict.
    expected = model.predict(x_test, verbose=0)
    actual = export.tflite_predict(content, x_test)
    np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(actual.argmax(-1), expected.argmax(-1))
    assert report["keras_accuracy"] == report["tflite_accuracy"] > 0.5  # the fixture learnt
    assert report["size_bytes"] == len(content)
    assert report["median_ms"] > 0 and report["p90_ms"] >= report["median_ms"]
    table = export.format_report([report])
    assert "top-1 agree" in table and "none" in table.splitlines()[2]


def test_ops_are_builtin_with_unrolled_spikes(model, float_export):
    _, content = float_export
    ops = export.check_builtin_ops(content)
    assert not [op for op in ops if op.startswith("Flex")]
    assert "WHILE" not in ops
    # Spikes are MUL + RELU6 stages (surrogates.exact_gains; one stage in float graphs),
    # and nothing is left that
    # XNNPACK does not run: no GREATER or bool CAST, no UNPACK/PACK (the time steps), TILE
    # (repeating the image) or 1x1 MAX_POOL_2D (the strided shortcut), so the whole float32
    # model is one XNNPACK partition.
    num_lif = sum(isinstance(layer, LIF) for layer in model.layers)
    assert num_lif == 8  # stem, two per block, head
    assert len(flatbuffer.spike_tensors(content)) == num_lif * T
    assert not {"GREATER", "CAST", "UNPACK", "PACK", "TILE", "MAX_POOL_2D"} & set(ops)
    interpreter, delegate = export.make_interpreter(content, threads=1)
    assert delegate == "xnnpack"
    assert export.delegate_summary(interpreter)["partitions"] == 1


def test_flex_ops_are_rejected():
    import tensorflow as tf

    fn = tf.function(
        lambda x: tf.linalg.det(tf.reshape(x, (1, 2, 2))),
        input_signature=[tf.TensorSpec((1, 4), tf.float32)],
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    content = converter.convert()
    assert any(op.startswith("Flex") for op in export.list_ops(content))
    with pytest.raises(export.ExportCheckError, match="Flex ops"):
        export.check_builtin_ops(content)


@pytest.mark.parametrize("int8_io", [False, True])
def test_int8(model, data, tmp_path, int8_io):
    x_train, _, x_test, y_test = data
    output = tmp_path / "int8.tflite"
    report = export.export_tflite(
        model,
        str(output),
        quantize="int8",
        int8_io=int8_io,
        calibration_data=x_train,
        num_calibration=32,
        eval_data=x_test,
        eval_labels=y_test,
        benchmark_runs=3,
    )
    assert report["top1_agreement"] >= 0.9
    assert report["tflite_accuracy"] >= report["keras_accuracy"] - 0.1
    # One spike tensor per LIF layer and step, each holding 0 and 1 exactly in int8.
    assert report["spike_tensors"] == 8 * T and report["inexact_spike_tensors"] == []
    for tensor in flatbuffer.spike_tensors(output.read_bytes()):
        assert tensor["scale"] == pytest.approx(1 / 255) and tensor["zero_point"] == -128
    content = output.read_bytes()
    export.check_builtin_ops(content)
    interpreter, _ = export.make_interpreter(content)
    expected = np.int8 if int8_io else np.float32
    assert interpreter.get_input_details()[0]["dtype"] == expected
    assert interpreter.get_output_details()[0]["dtype"] == expected
    # Full integer: convolutions carry int8 weights; only the spike's cast stays in float.
    assert "CONV_2D" not in report["float_ops"]
    assert set(report["float_ops"]) <= {"CAST", "SUB", "PACK", "DEQUANTIZE"}


def test_int8_with_a_larger_static_batch(model, data):
    """A batch-4 int8 model is the batch-1 model four times over: the same calibration gives
    the same quantized graph, so every held-out input gets the batch-1 model's logits."""
    x_train, _, x_test, _ = data

    def convert_and_run(batch_size):
        content = export.convert_to_tflite(model, quantize="int8", calibration_data=x_train,
                                           num_calibration=32, batch_size=batch_size)
        interpreter, _ = export.make_interpreter(content)
        detail = interpreter.get_input_details()[0]
        assert tuple(detail["shape"]) == (batch_size, *x_test.shape[1:])
        out = []
        for start in range(0, len(x_test), batch_size):
            interpreter.set_tensor(detail["index"], x_test[start:start + batch_size].astype("float32"))
            interpreter.invoke()
            out.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
        return np.concatenate(out)

    batched = convert_and_run(4)
    np.testing.assert_allclose(batched, convert_and_run(1), atol=1e-6)
    expected = model.predict(x_test, verbose=0)
    assert (batched.argmax(-1) == expected.argmax(-1)).mean() >= export.DEFAULT_MIN_AGREEMENT["int8"]
    with pytest.raises(ValueError, match="at least one full batch of 4"):
        export.convert_to_tflite(model, quantize="int8", calibration_data=x_train, num_calibration=3, batch_size=4)


def test_int8_grid_is_the_converters_own_rounding():
    """`int8_grid` rounds as the converter does: the dynamic-range model's int8 weights and
    scales are the grid's integers and scales, for any weights and after snapping alike."""
    from ai_edge_litert import schema_py_generated as schema

    import tensorflow as tf

    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 6, 16))
    model = keras.Model(inputs, keras.layers.Conv2D(24, 3, use_bias=False, name="conv")(inputs))
    kernel = model.get_layer("conv").kernel.numpy() * np.linspace(0.1, 3.0, 24, dtype="float32")
    model.get_layer("conv").kernel.assign(kernel)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    content = converter.convert()
    tflite = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    (weights,) = [t for t in tflite.subgraphs[0].tensors if t.type == schema.TensorType.INT8]
    ints = np.frombuffer(bytes(tflite.buffers[weights.buffer].data), np.int8).reshape(weights.shape)
    scales = np.asarray(weights.quantization.scale, "float32")
    # TFLite's filters are (out, h, w, in): the grid value is the int times its channel's scale.
    converted = (ints.astype("float32") * scales[:, None, None, None]).transpose(1, 2, 3, 0)
    snapped = export.int8_grid(kernel)
    np.testing.assert_array_equal(converted, snapped)
    assert np.abs(ints).max() == 127
    np.testing.assert_array_equal(export.int8_grid(snapped), snapped)
    with pytest.raises(ValueError, match="kernel.shape=\\(5,\\)"):
        export.int8_grid(np.ones(5))


def test_spike_fed_layers_are_the_block_convolutions(model):
    assert export.spike_fed_layers(model) == [
        f"stage{s}_block1_conv{i}" for s in (1, 2, 3) for i in (1, 2)
    ]


def test_snapped_dynamic_export_computes_what_the_float_export_computes(model, data, tmp_path):
    """On the int8 grid, the spike-fed convolutions' int8 products are exact: the dynamic-range
    model's logits are the float32 model's. (Off the grid they are not: with the snapping
    left out, this test fails.)"""
    _, _, x_test, y_test = data
    output = tmp_path / "dynamic.tflite"
    report = export.export_tflite(
        model, str(output), quantize="dynamic", eval_data=x_test, eval_labels=y_test,
        benchmark_runs=0, spike_report=False, snap_to_int8_grid=True,
    )
    snap = report["snap"]
    assert snap["layers"] == export.spike_fed_layers(model)
    assert snap["model"] == str(tmp_path / "dynamic.int8_grid.keras")
    snapped = export.load_model(snap["model"])
    assert export.off_grid_layers(snapped) == [] and export.off_grid_layers(model) == snap["layers"]
    reference = snapped.predict(x_test, verbose=0)
    assert snap["top1_agreement_with_original"] == np.mean(
        reference.argmax(-1) == model.predict(x_test, verbose=0).argmax(-1))

    dynamic = output.read_bytes()
    # Only the spike-fed convolutions hold int8 weights (those of >= 1024 weights: the
    # converter leaves smaller ones in float); the stem, shortcuts, DTA and classifier are float.
    assert int8_weight_layers(dynamic, snapped) == {
        name for name in snap["layers"] if snapped.get_layer(name).layer.kernel.shape.num_elements() >= 1024}
    float_snapped = export.tflite_predict(export.convert_to_tflite(snapped), x_test)
    np.testing.assert_allclose(export.tflite_predict(dynamic, x_test), float_snapped, atol=1e-5, rtol=0)
    np.testing.assert_allclose(float_snapped, reference, atol=1e-4, rtol=0)

    with pytest.raises(ValueError, match="snap_to_int8_grid=True"):
        export.export_tflite(model, str(tmp_path / "f.tflite"), quantize="float16", eval_data=x_test,
                             snap_to_int8_grid=True)


def test_dynamic_export_keeps_layers_fed_by_real_values_in_float():
    """A convolution on real values keeps float weights in the dynamic-range model (its input
    would be quantized on the fly); the one on spikes gets int8 weights, exact on the grid."""
    from keras_dta.layers import MeanOverTime, RepeatTime, TimeFold

    keras.utils.set_random_seed(5)
    inputs = keras.Input((8, 8, 16), name="images")
    x = RepeatTime(2)(inputs)
    x = TimeFold(keras.layers.Conv2D(16, 3, padding="same", use_bias=False), name="real_conv")(x)
    x = LIF(name="lif1")(x)
    x = TimeFold(keras.layers.Conv2D(16, 3, padding="same", use_bias=False), name="spike_conv")(x)
    x = LIF(name="lif2")(x)
    x = TimeFold(keras.layers.GlobalAveragePooling2D())(x)
    model = keras.Model(inputs, MeanOverTime()(keras.layers.Dense(10)(x)))
    assert export.snap_to_int8_grid(model) == ["spike_conv"]
    x = np.random.default_rng(0).uniform(0.0, 2.0, (16, 8, 8, 16)).astype("float32")
    dynamic = export.convert_to_tflite(model, quantize="dynamic")
    assert int8_weight_layers(dynamic, model) == {"spike_conv"}
    np.testing.assert_allclose(
        export.tflite_predict(dynamic, x), export.tflite_predict(export.convert_to_tflite(model), x), atol=1e-5, rtol=0)


def test_saved_model_serves(model, data, tmp_path):
    import tensorflow as tf

    _, _, x_test, _ = data
    output = tmp_path / "saved"
    export.export_saved_model(model, str(output))
    served = tf.saved_model.load(str(output))
    assert {"serve", "serving_default"} <= set(served.signatures)
    logits = served.signatures["serve"](images=tf.constant(x_test[:3]))["output_0"].numpy()
    np.testing.assert_allclose(logits, model.predict(x_test[:3], verbose=0), atol=1e-5)
    spec = served.signatures["serve"].structured_input_signature[1]["images"]
    assert spec.shape.as_list() == [None, *INPUT_SHAPE]  # any batch size
    assert sorted(os.listdir(tmp_path)) == ["saved"]  # no staging directory left behind


def test_failed_conversion_keeps_existing_output(model, data, float_export, tmp_path, monkeypatch):
    _, _, x_test, _ = data
    output = tmp_path / "model.tflite"
    output.write_bytes(b"previous")

    def broken(*args, **kwargs):
        raise RuntimeError("converter crashed")

    with monkeypatch.context() as patch:
        patch.setattr(export.tflite, "convert_to_tflite", broken)
        with pytest.raises(RuntimeError, match="crashed"):
            export.export_tflite(model, str(output), eval_data=x_test[:2])
    assert output.read_bytes() == b"previous"
    # A conversion that fails its check writes nothing either: here the converted model is
    # the trained one, checked against an untrained Keras model of the same architecture.
    keras.utils.set_random_seed(1)
    other = _tiny_model()
    monkeypatch.setattr(export.tflite, "convert_to_tflite", lambda *args, **kwargs: float_export[1])
    with pytest.raises(export.ExportCheckError, match="max_abs_diff=0.0001"):
        export.export_tflite(other, str(output), eval_data=x_test, min_agreement=0.0)
    assert output.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["model.tflite"]


def test_failed_saved_model_keeps_existing_dir(model, tmp_path, monkeypatch):
    output = tmp_path / "saved"
    output.mkdir()
    (output / "marker").write_text("old")

    def broken(model, path, batch_size):
        os.makedirs(path)
        pathlib.Path(path, "partial").write_text("x")
        raise RuntimeError("export crashed")

    monkeypatch.setattr(export.saved_model, "write_saved_model", broken)
    with pytest.raises(RuntimeError, match="crashed"):
        export.export_saved_model(model, str(output))
    assert os.listdir(output) == ["marker"]
    assert os.listdir(tmp_path) == ["saved"]


def test_bad_inputs(model, data, tmp_path):
    x_train, _, x_test, _ = data
    with pytest.raises(ValueError, match="model='.*missing.keras'"):
        export.load_model(str(tmp_path / "missing.keras"))
    with pytest.raises(ValueError, match="quantize='int4'"):
        export.convert_to_tflite(model, quantize="int4")
    with pytest.raises(ValueError, match="quantize='int4'"):
        export.export_tflite(model, str(tmp_path / "m.tflite"), quantize="int4", eval_data=x_test)
    wrong = np.zeros((4, 8, 8, 3), "float32")
    with pytest.raises(ValueError, match=r"calibration_data.shape=\(4, 8, 8, 3\)"):
        export.convert_to_tflite(model, quantize="int8", calibration_data=wrong)
    with pytest.raises(ValueError, match="calibration_data=None"):
        export.convert_to_tflite(model, quantize="int8")
    with pytest.raises(ValueError, match=r"samples.shape=\(4, 8, 8, 3\)"):
        export.prepare_export_data(model, quantize="int8", samples=wrong)
    with pytest.raises(ValueError, match="samples=.*nope.npy"):
        export.prepare_export_data(model, samples=str(tmp_path / "nope.npy"))
    with pytest.raises(ValueError, match="only 16"):
        export.prepare_export_data(model, quantize="int8", samples=x_train[:16], num_calibration=16)
    with pytest.raises(ValueError, match=r"labels.shape=\(3,\)"):
        export.prepare_export_data(model, samples=x_train[:4], labels=np.zeros(3))
    assert not os.path.exists(tmp_path / "m.tflite")


def test_prepare_export_data_holds_out_calibration(model, data):
    x_train, y_train, _, _ = data
    prepared = export.prepare_export_data(
        model, quantize="int8", samples=x_train[:40], labels=y_train[:40], num_calibration=30
    )
    np.testing.assert_array_equal(prepared["calibration_data"], x_train[:30])
    np.testing.assert_array_equal(prepared["eval_data"], x_train[30:40])
    np.testing.assert_array_equal(prepared["eval_labels"], y_train[30:40])
    prepared = export.prepare_export_data(model, samples=x_train[:40], num_eval=5)
    assert prepared["calibration_data"] is None and len(prepared["eval_data"]) == 5


def _run_cli(*args):
    return subprocess.run(
        [sys.executable, str(REPO / "export" / "tflite.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


def _cli_files(model, data, tmp_path):
    """The model saved, and 24 training samples and labels as `.npy`, for the CLI: their paths."""
    x_train, y_train, _, _ = data
    model_path = tmp_path / "model.keras"
    model.save(model_path)
    np.save(tmp_path / "x.npy", x_train[:24])
    np.save(tmp_path / "y.npy", y_train[:24])
    return model_path, tmp_path / "x.npy", tmp_path / "y.npy"


def test_cli(model, data, tmp_path):
    model_path, _, _ = _cli_files(model, data, tmp_path)
    output = tmp_path / "model.tflite"
    result = _run_cli(
        f"--model={model_path}",
        f"--output={output}",
        f"--samples={tmp_path / 'x.npy'}",
        f"--labels={tmp_path / 'y.npy'}",
        "--runs=3",
        "--threads=1",
        f"--report_json={tmp_path / 'report.json'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "top-1 agree" in result.stdout and "100.00%" in result.stdout
    assert output.exists() and (tmp_path / "report.json").exists()

    bad = _run_cli(f"--model={model_path}", f"--output={output}", "--quantize=int4")
    assert bad.returncode != 0
    assert "--quantize" in bad.stderr and "int4" in bad.stderr


def test_cli_snaps_to_the_int8_grid(model, data, tmp_path):
    model_path, _, _ = _cli_files(model, data, tmp_path)
    output = tmp_path / "dyn.tflite"
    result = _run_cli(f"--model={model_path}", f"--output={output}", "--quantize=dynamic", "--runs=0",
                      "--nospike_report", f"--samples={tmp_path / 'x.npy'}", f"--labels={tmp_path / 'y.npy'}",
                      "--snap_to_int8_grid", f"--report_json={tmp_path / 'report.json'}")
    assert result.returncode == 0, result.stderr[-3000:]
    snapped = tmp_path / "dyn.int8_grid.keras"
    assert "Snapped 6 spike-fed layers to the int8 grid" in result.stdout and str(snapped) in result.stdout
    assert export.off_grid_layers(export.load_model(str(snapped))) == []
    bad = _run_cli(f"--model={model_path}", f"--output={output}", "--snap_to_int8_grid")
    assert bad.returncode != 0 and "snap_to_int8_grid" in bad.stderr and "'none'" in bad.stderr


def test_cli_winograd_flag(model, data, tmp_path):
    model_path, _, _ = _cli_files(model, data, tmp_path)
    output = tmp_path / "f.tflite"
    result = _run_cli(f"--model={model_path}", f"--output={output}", "--runs=0", "--nospike_report",
                      f"--samples={tmp_path / 'x.npy'}", "--winograd")
    assert result.returncode == 0, result.stderr[-3000:]
    # The test model is narrower than `min_channels`: the flag reaches the export, which says
    # that no convolution qualifies.
    assert "Winograd F(2x2, 3x3) in 0 convolutions" in result.stdout + result.stderr
    bad = _run_cli(f"--model={model_path}", f"--output={output}", "--quantize=dynamic", "--winograd",
                   f"--samples={tmp_path / 'x.npy'}")
    assert bad.returncode != 0 and "`winograd` is for float32 exports" in bad.stderr


def test_an_off_grid_dynamic_export_names_the_layers_it_rounds(caplog):
    from keras_dta.layers import MeanOverTime, RepeatTime, TimeFold

    keras.utils.set_random_seed(6)
    inputs = keras.Input((6, 6, 16))
    x = TimeFold(keras.layers.Conv2D(16, 3, padding="same", use_bias=False), name="real_conv")(RepeatTime(2)(inputs))
    x = TimeFold(keras.layers.Conv2D(16, 3, padding="same", use_bias=False), name="spike_conv")(LIF()(x))
    x = TimeFold(keras.layers.GlobalAveragePooling2D())(LIF()(x))
    model = keras.Model(inputs, MeanOverTime()(keras.layers.Dense(4)(x)))
    with caplog.at_level("WARNING", logger="keras_dta.export.tflite"):
        export.convert_to_tflite(model, quantize="dynamic")
    assert "1 of 1 spike-fed layers have weights off the int8 grid" in caplog.text and "spike_conv" in caplog.text


def test_logit_match_counts_inputs_beyond_the_tolerance():
    reference = np.zeros((100, 3), "float32")
    candidate = reference.copy()
    candidate[7] += 0.04  # one input whose spike flipped at the threshold
    candidate[8] += 5e-5  # rounding within tolerance
    result = export.compare_logits(reference, candidate, atol=1e-4)
    assert result["logit_match"] == pytest.approx(0.99)
    assert result["max_abs_diff"] == pytest.approx(0.04)
    assert export.compare_logits(reference, candidate)["logit_match"] is None


def test_min_logit_match_is_checked(model, data, tmp_path):
    _, _, x_test, _ = data
    with pytest.raises(ValueError, match="min_logit_match=1.5"):
        export.export_tflite(model, str(tmp_path / "m.tflite"), eval_data=x_test[:2], min_logit_match=1.5)


@pytest.mark.parametrize("mode", export.QUANTIZE_MODES)
def test_every_mode_passes_its_default_gates(model, data, tmp_path, mode):
    x_train = data[0]
    # Enough held-out inputs for the defaults to be rates: with 48, 0.98 would allow no flip.
    x_test, y_test = _prototype_data(200, seed=2)
    report = export.export_tflite(
        model, str(tmp_path / f"{mode}.tflite"), quantize=mode, calibration_data=x_train, num_calibration=32,
        eval_data=x_test, eval_labels=y_test, benchmark_runs=1, spike_report=False,
    )
    assert report["min_agreement"] == export.DEFAULT_MIN_AGREEMENT[mode]
    assert report["max_abs_diff_allowed"] == export.DEFAULT_MAX_ABS_DIFF[mode]
    assert report["top1_agreement"] >= report["min_agreement"]
    assert report["delegate"] == "xnnpack" and report["median_ms"] > 0
    if mode != "int8":  # int8 elementwise ops with scales XNNPACK refuses stay outside it
        assert report["partitions"] == 1, report["ops_outside"]


@pytest.mark.parametrize("mode", export.QUANTIZE_MODES)
def test_the_agreement_gate_fails_a_model_that_disagrees(model, data, tmp_path, monkeypatch, mode):
    # The "converted" model is an untrained network of the same architecture: its answers
    # agree with the trained Keras model's at about chance, which every mode's gate refuses.
    x_train, _, x_test, y_test = data
    keras.utils.set_random_seed(7)
    stranger = export.convert_to_tflite(_tiny_model())
    monkeypatch.setattr(export.tflite, "convert_to_tflite", lambda *args, **kwargs: stranger)
    output = tmp_path / "m.tflite"
    with pytest.raises(export.ExportCheckError, match="top-1 agreement"):
        export.export_tflite(model, str(output), quantize=mode, calibration_data=x_train, eval_data=x_test)
    assert not output.exists()


def test_non_finite_inputs_are_refused(model, data):
    x_train, _, x_test, _ = data
    bad = x_test.copy()
    bad[0, 0, 0, 0] = np.nan
    bad[1, 1, 1, 1] = np.inf
    with pytest.raises(ValueError, match="2 value"):
        export.check_inputs(model, bad, "eval_data")
    with pytest.raises(ValueError, match="calibration_data"):
        export.convert_to_tflite(model, quantize="int8", calibration_data=bad)


def test_saved_model_cli_and_the_export_entry_point(model, data, tmp_path):
    import tensorflow as tf

    _, _, x_test, _ = data
    model_path = tmp_path / "model.keras"
    model.save(model_path)
    output = tmp_path / "served"
    result = subprocess.run(
        [sys.executable, str(REPO / "export" / "saved_model.py"), f"--model={model_path}", f"--output={output}"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = tf.saved_model.load(str(output)).signatures["serve"]
    np.testing.assert_allclose(
        served(images=tf.constant(x_test[:4]))["output_0"].numpy(), model.predict(x_test[:4], verbose=0), atol=1e-5
    )
    # The same program as keras-dta-export; a bad format is a usage error naming the flag.
    bad = subprocess.run(
        [sys.executable, "-m", "keras_dta.cli.export", "--format=onnx", f"--model={model_path}", f"--output={output}"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert bad.returncode != 0 and "--format" in bad.stderr and "onnx" in bad.stderr


def test_truncated_or_foreign_model_files_are_named(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"not a `\.keras` archive.*truncated\.keras"):
        export.load_model(str(truncated))
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    with pytest.raises(ValueError, match=r"notes\.keras"):
        export.load_model(str(text))
