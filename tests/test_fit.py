import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest
from absl import app, flags

from keras_dta import training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_cli():
    spec = importlib.util.spec_from_file_location(
        "keras_dta_fit_cli", os.path.join(REPO, "trainers", "fit.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fit = _load_cli()


class _SmallImages:
    """A dataset spec's model-facing part, for building a model without data."""

    num_classes = 10

    def input_shape(self, T=None):
        return (16, 16, 3)


@pytest.fixture
def parse():
    def _parse(*args):
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["fit.py", *args])
        return flags.FLAGS

    yield _parse
    flags.FLAGS.unparse_flags()


def test_defaults_train_digits_with_its_preset(parse):
    parse()
    config = fit.config_from_flags()
    assert config.dataset == "digits"
    assert config.model_dir == os.path.join("runs", "digits")
    assert config.jit_compile is None  # XLA on GPUs only
    assert config.epochs == 30 and config.T == 2


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--jit_compile=false"], False),
        (["--jit_compile=False"], False),
        (["--nojit_compile"], False),
        (["--jit_compile"], True),
        (["--jit_compile=true"], True),
    ],
)
def test_bool_flags_parse_false_as_false(parse, args, expected):
    parse(*args)
    assert fit.config_from_flags().jit_compile is expected


def test_preset_and_dataset_option_flags(parse, tmp_path):
    parse("--dataset=image_folder", f"--data_dir={tmp_path}", "--preset=cpu_small", "--image_size=24",
          "--test_fraction=0.2", "--skip_bad")
    config = fit.config_from_flags()
    assert config.preset == "cpu_small" and config.T == 2 and config.model_kwargs["stage_filters"] == [32, 64, 128]
    assert "int8_grid" not in config.model_kwargs
    parse("--dataset=image_folder", f"--data_dir={tmp_path}", "--preset=cpu_small", "--int8_grid")
    grid = fit.config_from_flags()
    assert grid.model_kwargs == {**config.model_kwargs, "int8_grid": True}
    assert training.build_model(grid, spec=_SmallImages()).int8_grid is True
    parse("--dataset=image_folder", f"--data_dir={tmp_path}", "--preset=cpu_small", "--image_size=24",
          "--test_fraction=0.2", "--skip_bad")
    assert config.dataset_kwargs == {"cutmix": False, "augment": False, "image_size": 24, "test_fraction": 0.2,
                                     "skip_bad": True}
    parse("--dataset=cifar10", "--preset=cpu_small", "--cutmix")
    assert fit.config_from_flags().dataset_kwargs == {"cutmix": True}
    parse("--dataset=digits", "--cutmix")
    with pytest.raises(ValueError, match="does not take these options"):
        fit.config_from_flags()
    parse("--dataset=cifar10_dvs", "--split_order=numeric")
    assert fit.config_from_flags().dataset_kwargs == {"order": "numeric"}
    parse("--dataset=cifar10", "--test_fraction=0.2")
    with pytest.raises(ValueError, match="does not take these options"):
        fit.config_from_flags()
    parse("--preset=huge")
    with pytest.raises(ValueError, match="preset='huge'"):
        fit.config_from_flags()


def test_flags_override_the_preset(parse):
    parse(
        "--dataset=cifar100", "--T=4", "--attn=txa", "--epochs=3", "--batch_size=128",
        "--learning_rate=0.2", "--weight_decay=0", "--loss=tet", "--backup_freq=50",
        "--mixed_precision=mixed_bfloat16", "--distribute=none", "--seed=3",
    )
    config = fit.config_from_flags()
    assert (config.dataset, config.T, config.attn, config.epochs) == ("cifar100", 4, "txa", 3)
    assert config.scaled_learning_rate == pytest.approx(0.2 * 128 / 64)
    assert (config.weight_decay, config.loss, config.backup_freq) == (0.0, "tet", 50)
    assert (config.mixed_precision, config.distribute, config.seed) == ("mixed_bfloat16", "none", 3)


@pytest.mark.parametrize(
    "args",
    [["--attn=sdt"], ["--distribute=tpu"], ["--mixed_precision=float16"], ["--loss=mse"],
     ["--epochs=two"], ["--jit_compile=maybe"], ["--no_such_flag=1"]],
)
def test_unknown_flag_values_are_refused(parse, args):
    with pytest.raises(flags.Error):
        parse(*args)


@pytest.mark.parametrize(
    "args, match",
    [
        (["--dataset=mnist"], "dataset='mnist'"),
        (["--epochs=0"], "epochs=0"),
        (["--batch_size=-4"], "batch_size=-4"),
        (["--learning_rate=0"], "learning_rate=0"),
        (["--steps_per_epoch=0"], "steps_per_epoch=0"),
        (["--backup_freq=often"], "backup_freq='often'"),
    ],
)
def test_bad_values_are_usage_errors(parse, tmp_path, args, match):
    parse(f"--model_dir={tmp_path / 'run'}", *args)
    with pytest.raises(app.UsageError, match=match):
        fit.main(["fit.py"])
    assert not (tmp_path / "run" / "config.json").exists()


def test_model_dir_of_another_run_is_refused(parse, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    previous = {"dataset": "digits", "epochs": 99}
    (run / "config.json").write_text(json.dumps(previous))
    parse(f"--model_dir={run}", "--epochs=1")
    with pytest.raises(app.UsageError, match="another configuration.*--overwrite"):
        fit.main(["fit.py"])
    assert json.loads((run / "config.json").read_text()) == previous  # nothing lost


def test_command_line_run(tmp_path):
    run = tmp_path / "run"
    cmd = [
        sys.executable, os.path.join(REPO, "trainers", "fit.py"), f"--model_dir={run}",
        "--epochs=1", "--steps_per_epoch=2", "--eval_steps=1", "--batch_size=8",
        "--noexport", "--jit_compile=false",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Test accuracy:" in proc.stderr
    assert str(run / "best.keras") in proc.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["jit_compile"] is False and config["epochs"] == 1
    results = json.loads((run / "results.json").read_text())
    assert results["optimizer_iterations"] == 2


def test_bad_input_found_when_training_starts_is_one_line(tmp_path):
    # The folder is checked when the dataset is prepared, inside train(): no traceback.
    cmd = [
        sys.executable, os.path.join(REPO, "trainers", "fit.py"), "--dataset=image_folder",
        f"--data_dir={tmp_path / 'missing'}", f"--model_dir={tmp_path / 'run'}",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "missing" in proc.stderr


def _free_ports(n):
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_on_two_local_processes(tmp_path):
    """Two workers on loopback train one model with MultiWorkerMirroredStrategy."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    run_dir = tmp_path / "run"
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(REPO, "trainers", "fit.py"), "--distribute=multi_worker",
             f"--model_dir={run_dir}", "--epochs=1", "--steps_per_epoch=2", "--eval_steps=1",
             "--batch_size=8", "--export=false"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [proc.communicate(timeout=240)[0] for proc in procs]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-3000:]
    assert "MultiWorkerMirroredStrategy with cluster_spec" in outputs[0]
    results = json.loads((run_dir / "results.json").read_text())  # written by the chief alone
    # Both workers end with the same trainable weights (the chief's are the ones saved).
    # BatchNorm's moving statistics are each worker's own (README).
    fingerprints = [re.findall(r"Final trainable weights fingerprint: (\w+)", out) for out in outputs]
    assert fingerprints == [[results["trainable_weights_fingerprint"]]] * 2
    assert results["num_replicas"] == 2 and results["optimizer_iterations"] == 2
    assert (run_dir / "best.keras").exists() and (run_dir / "spike_stats.json").exists()
    assert not (run_dir / "workers").exists()  # the other worker cleaned up after itself


def test_help_lists_the_flags_and_start_up_is_quiet(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    fit_py = os.path.join(REPO, "trainers", "fit.py")
    proc = subprocess.run([sys.executable, fit_py, "--help"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert "--model_dir" in proc.stdout and "--backup_freq" in proc.stdout  # absl exits 1 on --help
    proc = subprocess.run([sys.executable, fit_py, f"--model_dir={tmp_path / 'run'}", "--epochs=0"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "epochs=0" in proc.stderr
    assert "oneDNN" not in proc.stderr and "absl::InitializeLog" not in proc.stderr
