import json

import keras
import numpy as np
import pytest

from helpers import FIXTURES, assert_grad_close, channels_last, load_fixture, params, vjp
from keras_dta import convert, layers, models

# The reference's trainable parameter counts without attention (REFERENCE.md, paper Table 2).
PLAIN = {10: 12_502_090, 100: 12_548_260}


def trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def attention_params(attn, T, C=64):
    D = T * C
    txa = 3 * T * T + 6 * C * C + 2
    tna = 3 * D * D + 63 * D
    return {"none": 0, "txa": txa, "tna": tna, "dta": txa + tna}[attn]


def tiny(**kwargs):
    args = dict(attn="dta", T=2, num_classes=3, input_shape=(8, 8, 3), stem_filters=8,
                stage_filters=(8, 16), stage_blocks=(1, 1), stage_strides=(1, 2))
    args.update(kwargs)
    return models.ms_resnet18(**args)


@pytest.mark.parametrize("attn", ["dta", "txa", "tna", "none"])
@pytest.mark.parametrize("T", [4, 6])
@pytest.mark.parametrize("num_classes", [10, 100])
def test_ms_resnet18_parameter_counts(attn, T, num_classes):
    model = models.ms_resnet18(attn=attn, T=T, num_classes=num_classes)
    assert trainable(model) == PLAIN[num_classes] + attention_params(attn, T)


def test_paper_parameter_counts():
    assert trainable(models.ms_resnet18(attn="dta", T=6, num_classes=10)) == 12_993_336
    assert trainable(models.ms_resnet18(attn="dta", T=6, num_classes=100)) == 13_039_506
    assert attention_params("dta", 6) == 491_246


@pytest.mark.parametrize(
    "key,build",
    [
        ("DTA_SNN_18_T10_C10_dvs", lambda: models.ms_resnet18(T=10, num_classes=10, input_shape=(10, 48, 48, 2))),
        ("DTA_SNN_34_T4_C1000", lambda: models.ms_resnet34(T=4)),
    ],
)
def test_counts_match_reference_state_dicts(key, build):
    path = FIXTURES / "reference_state_dict_keys.json"
    if not path.exists():
        pytest.skip(f"reference fixture {path} is absent")
    expected = json.loads(path.read_text())[key]["trainable_parameters"]
    assert trainable(build()) == expected


def test_event_frame_input_counts():
    # 2 input channels instead of 3: 64 * 9 fewer stem weights.
    model = models.ms_resnet18(attn="none", T=10, num_classes=10, input_shape=(10, 48, 48, 2))
    assert trainable(model) == PLAIN[10] - 64 * 9
    assert model.input_shape == (None, 10, 48, 48, 2)


def test_ms_resnet34_follows_table1():
    model = models.ms_resnet34(attn="none", T=1, num_classes=5)
    assert model.get_layer("stem_pool").output.shape[2:4] == (56, 56)
    assert model.get_layer("stage4_block3_add").output.shape[2:4] == (7, 7)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_output_shapes(return_sequences):
    model = tiny(return_sequences=return_sequences)
    y = model(np.random.rand(2, 8, 8, 3).astype("float32"))
    assert tuple(y.shape) == ((2, 2, 3) if return_sequences else (2, 3))


def test_mean_over_time_of_sequences():
    seq = tiny(return_sequences=True)
    mean = tiny()
    mean.set_weights(seq.get_weights())
    x = np.random.rand(2, 8, 8, 3).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(mean(x)),
                               keras.ops.convert_to_numpy(seq(x)).mean(axis=1), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"attn": "se"}, "attn='se'"),
        ({"T": 0}, "T=0"),
        ({"input_shape": (8, 8)}, r"input_shape=\(8, 8\)"),
        ({"input_shape": (3, 8, 8, 2)}, "T=2"),
        ({"input_shape": (8, 8, 0)}, r"input_shape=\(8, 8, 0\)"),
        ({"input_shape": (8, None, 3)}, "positive integers"),
        ({"num_classes": 0}, "num_classes=0"),
        ({"stage_blocks": (1, 1, 1)}, "same length"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)


def test_keras_round_trip_safe_mode(tmp_path):
    model = tiny()
    assert not any(isinstance(l, keras.layers.Lambda) for l in model.layers)
    x = np.random.rand(2, 8, 8, 3).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)))


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_step(jit_compile):
    model = tiny()
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True), jit_compile=jit_compile)
    x = np.random.rand(4, 8, 8, 3).astype("float32")
    y = np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_batchnorm_training_and_inference_differ():
    model = tiny()
    x = np.random.rand(2, 8, 8, 3).astype("float32") * 5
    train = keras.ops.convert_to_numpy(model(x, training=True))
    infer = keras.ops.convert_to_numpy(model(x, training=False))
    assert not np.allclose(train, infer)


def _block_model():
    inputs = keras.Input((4, 8, 8, 64))
    return keras.Model(inputs, models.apply_ms_block(inputs, 128, 2, name="block"))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_ms_block_matches_reference_fixture(mode):
    f = load_fixture("ms_block_64_128_s2.npz")
    model = _block_model()
    convert.load_reference_block_weights(model, "block", params(f))
    y, (x_grad,), var_grads = vjp(model, channels_last(f["x"]), channels_last(f[f"{mode}/upstream_grad"]),
                                  training=mode == "train")
    np.testing.assert_allclose(y, channels_last(f[f"{mode}/y"]), atol=1e-5)
    assert_grad_close(x_grad, channels_last(f[f"{mode}/x_grad"]))
    grads = {id(v): g for v, g in zip(model.trainable_variables, var_grads)}
    checked = 0
    for variable, aliases, layout in convert._block_targets(model, "block", ""):
        key = f"{mode}/param_grad/{aliases[0]}"
        if variable.trainable and key in f.files:
            assert_grad_close(grads[id(variable)], layout(f[key]))
            checked += 1
    assert checked == len(model.trainable_variables) == 9


def test_ms_block_running_statistics_after_training_step():
    f = load_fixture("ms_block_64_128_s2.npz")
    model = _block_model()
    convert.load_reference_block_weights(model, "block", params(f))
    model(channels_last(f["x"]), training=True)
    for name, ref in [("block_bn1", "bn1.bn"), ("block_bn2", "bn2.bn"), ("block_shortcut_bn", "downsample.bn.bn")]:
        bn = model.get_layer(name)
        # The moving mean follows the same update in both (float rounding apart). Keras updates
        # the moving variance with the biased batch variance, PyTorch with the unbiased one:
        # within 1% (REFERENCE.md).
        np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), f[f"train/after/{ref}.running_mean"], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), f[f"train/after/{ref}.running_var"], rtol=1e-2)


def test_time_layers():
    x = np.random.rand(2, 3, 4, 4, 5).astype("float32")
    assert tuple(layers.RepeatTime(3)(x[:, 0]).shape) == (2, 3, 4, 4, 5)
    folded = layers.TimeFold(keras.layers.Conv2D(7, 3, padding="same"))(x)
    assert tuple(folded.shape) == (2, 3, 4, 4, 7)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layers.MeanOverTime()(x)), x.mean(axis=1), atol=1e-6)
    with pytest.raises(ValueError, match="T=0"):
        layers.RepeatTime(0)


def test_saved_model_loads_in_a_fresh_process_after_import(tmp_path):
    import subprocess
    import sys

    from keras_dta.losses import MeanOverTimeAccuracy, TETLoss
    from keras_dta.optimizers import CoupledSGD

    # A trainer-style checkpoint: per-step logits, TET loss, the coupled-decay optimizer.
    model = tiny(return_sequences=True)
    model.compile(optimizer=CoupledSGD(0.1, momentum=0.9, l2_weight_decay=1e-4), loss=TETLoss(),
                  metrics=[MeanOverTimeAccuracy()])
    model.fit(np.random.rand(2, 8, 8, 3).astype("float32"), np.eye(3, dtype="float32")[[0, 1]], verbose=0)
    model.save(tmp_path / "m.keras")
    code = ("import sys, keras, keras_dta; "
            "m = keras.saving.load_model(sys.argv[1], safe_mode=True); "
            "print(m.output_shape, type(m.optimizer).__name__, int(m.optimizer.iterations))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.keras")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(None, 2, 3) CoupledSGD 1" in result.stdout


@pytest.mark.parametrize(
    "layer",
    [layers.RepeatTime(4, name="r"), layers.MeanOverTime(name="m"),
     layers.TimeFold(keras.layers.Conv2D(5, 3, use_bias=False), name="f")],
)
def test_time_layer_config_round_trip(layer):
    import copy

    config = keras.layers.serialize(layer)
    clone = keras.layers.deserialize(copy.deepcopy(config))  # Wrapper.from_config pops keys
    assert type(clone) is type(layer) and keras.layers.serialize(clone) == config


def test_a_saved_model_carries_its_construction_arguments(tmp_path):
    model = tiny(attn="txa", T=3, num_classes=4)
    assert isinstance(model, models.MSResNet)
    assert (model.T, model.attn, model.num_classes) == (3, "txa", 4)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded, models.MSResNet)
    assert loaded.get_config() == model.get_config()
    x = np.random.default_rng(0).uniform(size=(2, *model.input_shape[1:])).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
