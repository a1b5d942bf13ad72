import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from helpers import FIXTURES
from keras_dta import convert, models

BUILDERS = {
    "DTA_SNN_18_T6_C100": lambda: models.ms_resnet18(T=6, num_classes=100),
    "DTA_SNN_18_T10_C10_dvs": lambda: models.ms_resnet18(T=10, num_classes=10, input_shape=(10, 48, 48, 2)),
    "DTA_SNN_34_T4_C1000": lambda: models.ms_resnet34(T=4),
}


def reference_keys():
    path = FIXTURES / "reference_state_dict_keys.json"
    if not path.exists():
        pytest.skip(f"reference fixture {path} is absent")
    return json.loads(path.read_text())


def random_state_dict(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return {k: np.asarray(rng.normal(size=s), dtype="float32") for k, s in shapes.items()}


@pytest.fixture(scope="module")
def cifar_model():
    return BUILDERS["DTA_SNN_18_T6_C100"]()


@pytest.mark.parametrize("key", ["DTA_SNN_18_T10_C10_dvs", "DTA_SNN_34_T4_C1000"])
def test_loads_every_reference_architecture(key):
    shapes = reference_keys()[key]["state_dict"]
    model = BUILDERS[key]()
    state = random_state_dict(shapes)
    convert.load_reference_weights(model, state)
    head = "fc.layer.module" if "input_conv.layer.module.weight" in shapes else "fc1_s.layer.module"
    np.testing.assert_array_equal(model.get_layer("head_dense").kernel.numpy(), state[f"{head}.weight"].T)


def test_layouts_and_values(cifar_model):
    state = random_state_dict(reference_keys()["DTA_SNN_18_T6_C100"]["state_dict"])
    convert.load_reference_weights(cifar_model, state)
    get = cifar_model.get_layer
    np.testing.assert_array_equal(get("stem_conv").layer.kernel.numpy(), state["input_conv.layer.module.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(get("stage2_block1_shortcut_conv").layer.kernel.numpy(),
                                  state["layer2.0.downsample.layer.module.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(get("stage3_block2_bn2").moving_variance.numpy(), state["layer3.1.bn2.bn.running_var"])
    tna = get("dta").tna
    np.testing.assert_array_equal(tna.local_depthwise_kernel.numpy(),
                                  state["encoding.T_NA.tca.LTCA.0.weight"].transpose(2, 3, 0, 1))
    np.testing.assert_array_equal(get("dta").txa.conv_c.numpy(), state["encoding.T_XA.conv_c.weight"].transpose(2, 1, 0))


def test_accepts_either_alias_and_dataparallel_prefix(cifar_model):
    shapes = reference_keys()["DTA_SNN_18_T6_C100"]["state_dict"]
    state = random_state_dict(shapes, seed=1)
    # Keep only the `*_s.layer.module` / `seqbn.module` names.
    alias_only = {k: v for k, v in state.items()
                  if not (k.endswith("conv1.weight") and "layer1.0" in k) and ".bn1.bn." not in k}
    alias_only = {f"module.{k}": v for k, v in alias_only.items()}
    convert.load_reference_weights(cifar_model, alias_only)
    np.testing.assert_array_equal(cifar_model.get_layer("stage1_block1_conv1").layer.kernel.numpy(),
                                  state["layer1.0.conv1_s.layer.module.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(cifar_model.get_layer("stage1_block2_bn1").gamma.numpy(),
                                  state["layer1.1.bn1.seqbn.module.weight"])


def test_bad_state_dict_names_every_offender_and_changes_nothing(cifar_model):
    state = random_state_dict(reference_keys()["DTA_SNN_18_T6_C100"]["state_dict"], seed=2)
    del state["fc.layer.module.bias"]
    del state["encoding.T_XA.scale_t"]
    state["extra.weight"] = np.zeros(3, "float32")
    state["layer1.0.conv2.weight"] = np.zeros((128, 128, 5, 5), "float32")
    before = [v.numpy().copy() for v in cifar_model.weights]
    with pytest.raises(ValueError) as info:
        convert.load_reference_weights(cifar_model, state)
    message = str(info.value)
    for name in ("fc.layer.module.bias", "encoding.T_XA.scale_t", "extra.weight", "layer1.0.conv2.weight"):
        assert name in message
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, cifar_model.weights))


def test_non_finite_checkpoints_are_refused(cifar_model):
    state = random_state_dict(reference_keys()["DTA_SNN_18_T6_C100"]["state_dict"], seed=3)
    for key in [k for k in state if k.startswith("layer2.0.conv1")]:  # both aliases
        state[key] = np.full_like(state[key], np.nan)
    for key in [k for k in state if k.startswith("fc.") and k.endswith("bias")]:
        state[key][0] = np.inf
    before = [v.numpy().copy() for v in cifar_model.weights]
    with pytest.raises(ValueError, match=r"NaN or infinite values \(2\): .*layer2\.0\.conv1"):
        convert.load_reference_weights(cifar_model, state)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, cifar_model.weights))


def test_channel_count_mismatch():
    shapes = reference_keys()["DTA_SNN_18_T6_C100"]["state_dict"]  # RGB stem, 100 classes
    model = models.ms_resnet18(T=6, num_classes=100, input_shape=(6, 32, 32, 2))
    with pytest.raises(ValueError, match=r"input_conv\.layer\.module\.weight: checkpoint \(64, 3, 3, 3\)"):
        convert.load_reference_weights(model, random_state_dict(shapes))


def test_cli_round_trip_with_torch(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is optional: `pip install 'keras_dta[torch]'`")
    shapes = reference_keys()["DTA_SNN_18_T10_C10_dvs"]["state_dict"]
    state = {k: torch.from_numpy(v) for k, v in random_state_dict(shapes, seed=3).items()}
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "ckpt.pth.tar")
    out = tmp_path / "model.keras"
    subprocess.run([sys.executable, "-m", "keras_dta.convert", str(tmp_path / "ckpt.pth.tar"), "--T", "10",
                    "--num_classes", "10", "--input_shape", "10,48,48,2", "--output", str(out)], check=True)
    model = keras.saving.load_model(out, safe_mode=True)
    np.testing.assert_array_equal(model.get_layer("head_dense").bias.numpy(), state["fc.layer.module.bias"].numpy())


def test_cli_errors(tmp_path):
    run = lambda *args: subprocess.run([sys.executable, "-m", "keras_dta.convert", *args],
                                       capture_output=True, text=True)
    result = run(str(tmp_path / "missing.pth"), "--output", str(tmp_path / "m.keras"))
    assert result.returncode != 0
    assert "No checkpoint file" in result.stderr  # with or without torch
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    result = run(str(tmp_path / "notes.pth"), "--output", str(tmp_path / "m.keras"))
    assert result.returncode != 0 and "notes.pth" in result.stderr
    assert not (tmp_path / "m.keras").exists()
    result = run(str(tmp_path / "x.pth"), "--output", str(tmp_path / "m.h5"))
    assert result.returncode != 0 and "--output must end with .keras" in result.stderr
    assert not (tmp_path / "m.keras").exists()


def test_cli_main_in_process(tmp_path):
    """The converter's flags, main and checkpoint reader on a file in torch.save's format,
    with or without torch installed."""
    import collections

    from absl import flags

    import torch_format
    from keras_dta.cli import convert as cli

    shapes = reference_keys()["DTA_SNN_18_T10_C10_dvs"]["state_dict"]
    state = random_state_dict(shapes, seed=3)
    path = tmp_path / "ckpt.pth.tar"
    torch_format.save({"state_dict": collections.OrderedDict(state), "epoch": 3, "best_acc": 71.5}, path)
    flag_values = flags.FlagValues()
    cli.define_flags(flag_values)
    out = tmp_path / "model.keras"
    argv = flag_values(["convert", str(path), "--T", "10", "--num_classes", "10",
                        "--input_shape", "10,48,48,2", f"--output={out}"])
    assert cli.main(argv, flag_values) == 0
    model = keras.saving.load_model(out, safe_mode=True)
    np.testing.assert_array_equal(model.get_layer("head_dense").bias.numpy(), state["fc.layer.module.bias"])
    np.testing.assert_array_equal(model.get_layer("head_dense").kernel.numpy(), state["fc.layer.module.weight"].T)


def test_pth_reader_rebuilds_tensors_of_every_layout(tmp_path):
    from keras_dta import pth

    import torch_format

    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 4)).astype("float32")
    tensors = {
        "f32": base, "f64": base.astype("float64"), "f16": base.astype("float16"),
        "i64": np.arange(6, dtype="int64").reshape(2, 3), "scalar": np.asarray(7, "int64"),
        "bool": base > 0, "empty": np.zeros((0, 3), "float32"),
        "transposed": np.asfortranarray(base),  # written contiguous, read back equal
    }
    torch_format.save({"model": tensors, "epoch": 2, "name": "run", "lrs": [0.1, 0.01]}, tmp_path / "c.pth")
    loaded = pth.load(tmp_path / "c.pth")
    assert loaded["epoch"] == 2 and loaded["name"] == "run" and loaded["lrs"] == [0.1, 0.01]
    for key, value in tensors.items():
        assert loaded["model"][key].dtype == value.dtype and loaded["model"][key].shape == value.shape, key
        np.testing.assert_array_equal(loaded["model"][key], value, err_msg=key)
    assert set(convert.read_checkpoint(str(tmp_path / "c.pth"))) == set(tensors)


def test_pth_reader_refuses_code_and_other_files(tmp_path):
    from keras_dta import pth

    import torch_format

    marker = tmp_path / "ran"
    payload = torch_format.Reduced(torch_format.Global("os", "system"), (f"touch {marker}",))
    torch_format.save_pickle({"state_dict": {}, "evil": payload}, tmp_path / "evil.pth")
    with pytest.raises(pth.UnsupportedCheckpointError, match="os.system"):
        pth.load(tmp_path / "evil.pth")
    assert not marker.exists()
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(pth.UnsupportedCheckpointError, match="not a zip-format PyTorch checkpoint"):
        pth.load(tmp_path / "text.pth")


def test_pth_reader_agrees_with_torch(tmp_path):
    torch = pytest.importorskip("torch", reason="compares keras_dta.pth with torch.load; torch is optional")
    from keras_dta import pth

    weight = torch.randn(4, 3, 3, 3)
    state = {
        "conv.weight": torch.nn.Parameter(weight), "t": weight.permute(1, 0, 2, 3),  # a strided view
        "half": weight.half(), "bf16": weight.bfloat16(), "slice": weight[1:3],
        "steps": torch.tensor(5), "mask": weight > 0,
    }
    torch.save({"state_dict": state, "epoch": 1}, tmp_path / "t.pth")
    loaded = pth.load(tmp_path / "t.pth")["state_dict"]
    for key, value in state.items():
        expected = value.detach().float().numpy() if key == "bf16" else value.detach().numpy()
        np.testing.assert_array_equal(loaded[key], expected, err_msg=key)
