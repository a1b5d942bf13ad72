import csv
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_dta import training
from keras_dta.data import datasets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = {
    "stem_filters": 4,
    "stage_filters": [8, 8, 8],
    "stage_blocks": [1, 1, 1],
    "stage_strides": [1, 2, 2],
}


def tiny_config(tmp_path, dataset="digits", **overrides):
    values = dict(
        model_kwargs=dict(TINY),
        T=2,
        epochs=2,
        batch_size=8,
        steps_per_epoch=3,
        eval_steps=2,
        model_dir=str(tmp_path / "run"),
        jit_compile=False,
        distribute="none",
        export=False,  # exporting costs seconds; the tests that check it turn it on
    )
    values.update(overrides)
    return training.make_config(dataset, **values)


# --- optimizer ----------------------------------------------------------------


@pytest.mark.parametrize("nesterov", [False, True])
def test_coupled_sgd_matches_pytorch_update(nesterov):
    """Several steps of CoupledSGD against torch.optim.SGD's closed form in numpy."""
    lr0, momentum, wd, steps = 0.1, 0.9, 0.05, 6
    schedule = keras.optimizers.schedules.CosineDecay(lr0, decay_steps=steps)
    optimizer = training.CoupledSGD(schedule, momentum=momentum, l2_weight_decay=wd, nesterov=nesterov)
    rng = np.random.default_rng(0)
    target = rng.normal(size=(3, 2)).astype("float32")
    w0 = rng.normal(size=(3, 2)).astype("float32")
    var = keras.Variable(w0)

    w, buf = w0.astype("float64"), np.zeros_like(w0, dtype="float64")
    for step in range(steps):
        grad = 2 * (var.numpy() - target)  # d/dw of sum((w - target)^2)
        optimizer.apply_gradients([(tf.constant(grad), var)])
        # torch.optim.SGD(lr, momentum, weight_decay, nesterov), dampening 0:
        lr = lr0 * 0.5 * (1 + np.cos(np.pi * step / steps))
        g = 2 * (w - target) + wd * w
        buf = momentum * buf + g
        w = w - lr * (g + momentum * buf if nesterov else buf)
        np.testing.assert_allclose(var.numpy(), w, rtol=1e-5, atol=1e-6)
    assert int(optimizer.iterations) == steps


def test_coupled_sgd_differs_from_keras_decoupled_decay():
    w0 = np.ones((2,), "float32")
    coupled, decoupled = keras.Variable(w0), keras.Variable(w0)
    opt_c = training.CoupledSGD(0.1, momentum=0.9, l2_weight_decay=0.1)
    opt_d = keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=0.1)
    for _ in range(3):
        opt_c.apply_gradients([(tf.zeros(2), coupled)])
        opt_d.apply_gradients([(tf.zeros(2), decoupled)])
    assert not np.allclose(coupled.numpy(), decoupled.numpy())


def test_coupled_sgd_config_round_trip():
    opt = training.CoupledSGD(0.05, momentum=0.9, l2_weight_decay=5e-5)
    clone = training.CoupledSGD.from_config(opt.get_config())
    assert clone.l2_weight_decay == 5e-5 and clone.momentum == 0.9
    with pytest.raises(ValueError, match="l2_weight_decay"):
        training.CoupledSGD(0.1, l2_weight_decay=-1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        training.CoupledSGD(0.1, weight_decay=0.1)


# --- losses and metrics ------------------------------------------------------------


def _np_ce(labels, logits):
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -(labels * logp).sum(-1)


def test_tet_loss_is_mean_of_per_step_cross_entropy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 4, 5)).astype("float32")
    labels = rng.dirichlet(np.ones(5), size=3).astype("float32")
    loss = training.TETLoss()(labels, logits)
    expected = np.mean([_np_ce(labels, logits[:, t]).mean() for t in range(4)])
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_mean_over_time_accuracy():
    logits = np.zeros((2, 3, 4), "float32")
    logits[0, :, 1] = 1.0
    logits[1, 0, 2] = 5.0  # one step wins the mean
    logits[1, 1:, 3] = 1.0
    metric = training.MeanOverTimeAccuracy()
    metric.update_state(np.eye(4, dtype="float32")[[1, 2]], logits)
    assert float(metric.result()) == 1.0


# --- configuration -------------------------------------------------------------------


def test_make_config_uses_the_preset_and_scales_the_learning_rate():
    config = training.make_config("cifar100", batch_size=256)
    assert (config.model, config.T, config.epochs) == ("ms_resnet18", 6, 250)
    assert config.base_batch_size == 64
    assert config.scaled_learning_rate == pytest.approx(0.1 * 256 / 64)
    assert config.model_dir == os.path.join("runs", "cifar100")
    config.validate()


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs", 0),
        ("batch_size", -8),
        ("T", 0),
        ("steps_per_epoch", 0),
        ("learning_rate", 0.0),
        ("learning_rate", float("nan")),
        ("momentum", 1.0),
        ("weight_decay", -1e-4),
        ("attn", "sdt"),
        ("loss", "mse"),
        ("mixed_precision", "float16"),
        ("distribute", "tpu"),
        ("backup_freq", 0),
        ("jit_compile", "yes"),
    ],
)
def test_bad_config_values(field, value):
    config = training.make_config("digits", **{field: value})
    with pytest.raises(ValueError, match=f"Received: {field}="):
        config.validate()


def test_unknown_dataset_and_field():
    with pytest.raises(ValueError, match="dataset='mnist'"):
        training.make_config("mnist")
    with pytest.raises(ValueError, match="lr"):
        training.make_config("digits", lr=0.1)


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        training.make_strategy("multi_worker")


def test_run_dir_refuses_another_configuration(tmp_path):
    config = tiny_config(tmp_path)
    assert training.prepare_run_dir(config) == "new"
    assert training.prepare_run_dir(config) == "resume"
    # Execution details may change on a restart.
    assert training.prepare_run_dir(tiny_config(tmp_path, distribute="auto")) == "resume"
    marker = tmp_path / "run" / "last.keras"
    marker.write_text("previous run")
    other = tiny_config(tmp_path, epochs=5)
    with pytest.raises(ValueError, match="another configuration.*epochs: 2 -> 5"):
        training.prepare_run_dir(other)
    assert marker.exists()  # nothing lost
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["epochs"] == 2
    other.overwrite = True
    assert training.prepare_run_dir(other) == "new"
    assert not marker.exists()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 5


# --- training --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("digits")
    config = tiny_config(tmp_path, export=True)
    return config, training.train(config, verbose=0)


def test_train_digits_writes_the_run_directory(digits_run):
    config, results = digits_run
    run = config.model_dir
    for name in ("config.json", "best.keras", "best.json", "last.keras", "history.csv", "results.json"):
        assert os.path.isfile(os.path.join(run, name)), name
    assert os.path.isfile(os.path.join(run, "saved_model", "saved_model.pb"))
    assert os.listdir(os.path.join(run, "logs"))
    assert not os.path.exists(os.path.join(run, "backup"))  # removed once complete
    assert results["optimizer_iterations"] == config.epochs * config.steps_per_epoch
    assert 0.0 <= results["test_accuracy"] <= 1.0
    assert results == json.loads(open(os.path.join(run, "results.json")).read())
    with open(os.path.join(run, "history.csv")) as f:
        assert len(list(csv.DictReader(f))) == config.epochs

    model = keras.saving.load_model(os.path.join(run, "best.keras"))
    x = np.random.default_rng(0).random((2, 8, 8, 1)).astype("float32")
    assert model(x).shape == (2, 10)
    exported = tf.saved_model.load(os.path.join(run, "saved_model"))
    np.testing.assert_allclose(exported.serve(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4)

    # Spike statistics of the best model: rates per LIF layer, energy, plot, TensorBoard.
    from keras_dta import stats

    with open(os.path.join(run, "spike_stats.json")) as f:
        spike_stats = json.load(f)
    rates = spike_stats["firing_rates"]
    assert set(rates) == {layer.name for layer in stats.lif_layers(model)}
    assert all(0.0 <= r <= 1.0 for r in rates.values()) and max(rates.values()) > 0
    assert results["mean_firing_rate"] == pytest.approx(np.mean(list(rates.values())))
    assert spike_stats["energy"]["ann_energy_pj"] > 0
    with open(os.path.join(run, "firing_rates.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(os.path.join(run, "logs", "firing_rates"))

    # The same configuration again: finished, so nothing is retrained.
    assert training.train(config, verbose=0) == results


def test_resume_after_interruption_matches_uninterrupted(tmp_path, digits_run):
    uninterrupted_config, uninterrupted = digits_run

    class Preempt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 1:
                raise KeyboardInterrupt("preempted")

    # Backups every 2 steps: the last one is in the middle of epoch 2.
    config = tiny_config(tmp_path, backup_freq=2)
    with pytest.raises(KeyboardInterrupt):
        training.train(config, callbacks=[Preempt()], verbose=0)
    backup_dir = os.path.join(config.model_dir, "backup")
    assert os.path.exists(backup_dir)
    assert not os.path.exists(os.path.join(config.model_dir, "results.json"))

    resumed = training.train(config, verbose=0)
    assert resumed["optimizer_iterations"] == uninterrupted["optimizer_iterations"]
    assert resumed["optimizer_iterations"] == config.epochs * config.steps_per_epoch
    with open(os.path.join(config.model_dir, "history.csv")) as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1]
    # The schedule ran to its end: the last learning rate is 0.
    model = keras.saving.load_model(os.path.join(config.model_dir, "last.keras"))
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-8)
    # The interrupted run ends where the uninterrupted one does: the same weights (BatchNorm
    # statistics included) and optimizer state (momentum, step). A resume that re-initialised
    # the weights, zeroed the momentum or restarted the data stream would differ.
    reference = keras.saving.load_model(os.path.join(uninterrupted_config.model_dir, "last.keras"))
    for got, want in zip(model.weights, reference.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=got.path)
    for got, want in zip(model.optimizer.variables, reference.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=got.path)


def test_tet_loss_trains_and_exports_mean_logits(tmp_path):
    config = tiny_config(tmp_path, loss="tet", epochs=1, export=True)
    results = training.train(config, verbose=0)
    model = keras.saving.load_model(results["paths"]["best_model"])
    assert model.output_shape == (None, 2, 10)
    exported = tf.saved_model.load(results["paths"]["saved_model"])
    x = np.zeros((3, 8, 8, 1), "float32")
    assert exported.serve(x).shape == (3, 10)


class _PoisonedDigits(datasets.Digits):
    """Digits whose training labels turn NaN from the 5th batch on."""

    name = "poisoned_digits"

    def load(self, split, *, training, **kwargs):
        ds = super().load(split, training=training, **kwargs)
        if not training:
            return ds

        def poison(i, batch):
            x, y = batch
            return x, tf.where(i >= 4, y * np.nan, y)

        return ds.enumerate().map(poison)


@pytest.fixture
def poisoned_dataset():
    datasets.register_dataset("poisoned_digits", _PoisonedDigits)
    training.register_preset("poisoned_digits", training.get_preset("digits"))
    yield "poisoned_digits"
    datasets._REGISTRY.pop("poisoned_digits")


def test_nan_loss_stops_with_the_step_and_keeps_checkpoints(tmp_path, poisoned_dataset):
    config = tiny_config(tmp_path, dataset=poisoned_dataset)
    with pytest.raises(training.NonFiniteLossError, match=r"step 5 \(epoch 2, batch 2\)"):
        training.train(config, verbose=0)
    run = config.model_dir
    # Epoch 1's models and backup are kept, untouched by the NaN weights.
    assert os.path.isfile(os.path.join(run, "best.keras"))
    assert os.path.isfile(os.path.join(run, "backup", "latest.weights.h5"))
    model = keras.saving.load_model(os.path.join(run, "last.keras"))
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert int(model.optimizer.iterations) == 3


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_train_cifar_through_tfds(name, tmp_path):
    config = tiny_config(
        tmp_path, dataset=name, epochs=1, steps_per_epoch=2, eval_steps=None, batch_size=4,
        data_dir=str(tmp_path / "tfds"),
    )
    with tfds.testing.mock_data(num_examples=6):
        results = training.train(config, verbose=0)
    assert results["optimizer_iterations"] == 2
    model = keras.saving.load_model(results["paths"]["best_model"])
    assert model.output_shape == (None, 10 if name == "cifar10" else 100)
    assert model.input_shape == (None, 32, 32, 3)


def test_mirrored_on_two_logical_cpus(tmp_path):
    # Logical devices must be configured before TensorFlow initialises: a
    # fresh interpreter.
    script = textwrap.dedent(
        f"""
        import json, logging
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        logging.basicConfig(level=logging.WARNING)
        from keras_dta import training
        config = training.make_config(
            "digits", model_kwargs={TINY!r}, T=2, epochs=1, batch_size=8,
            steps_per_epoch=3, eval_steps=2, model_dir={str(tmp_path / "run")!r},
            distribute="mirrored", jit_compile=True,
        )
        print("RESULTS", json.dumps(training.train(config, verbose=0)))
        """
    )
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULTS")][0]
    results = json.loads(line[len("RESULTS "):])
    assert results["num_replicas"] == 2
    assert results["optimizer_iterations"] == 3
    # Global batch 8 against the preset's 32: the learning rate is scaled.
    assert results["learning_rate"] == pytest.approx(0.05 * 8 / 32)
    assert "training without XLA" in proc.stderr


def test_mixed_float16_trains_and_restores_the_policy(tmp_path):
    config = tiny_config(tmp_path, mixed_precision="mixed_float16", epochs=1)
    results = training.train(config, verbose=0)
    assert results["optimizer_iterations"] == 3
    assert keras.mixed_precision.global_policy().name == "float32"
    model = keras.saving.load_model(results["paths"]["best_model"], compile=False)
    policies = {layer.dtype_policy.name for layer in model.layers if layer.weights}
    assert "mixed_float16" in policies


@pytest.mark.parametrize(
    "tf_config, expected",
    [
        (None, (None, 0, True)),
        ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, ("worker", 0, True)),
        ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, ("worker", 1, False)),
        ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, ("worker", 0, False)),
        ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, ("chief", 0, True)),
    ],
)
def test_only_the_chief_writes_the_run_directory(monkeypatch, tf_config, expected):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert training._cluster_task() == expected


def test_train_imagenet_through_tfds(tmp_path):
    data_dir = tmp_path / "tfds"
    manual = data_dir / "downloads" / "manual"
    manual.mkdir(parents=True)
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"):
        (manual / name).touch()  # the trainer's manual-download check; mock_data supplies the images
    config = training.make_config(
        "imagenet2012", data_dir=str(data_dir), model_dir=str(tmp_path / "run"), T=1, epochs=1,
        batch_size=2, steps_per_epoch=1, eval_steps=1, jit_compile=False, distribute="none",
        export=False,
        model_kwargs=dict(stem_filters=16, stage_filters=(16, 32), stage_blocks=(1, 1), stage_strides=(1, 2)),
    )
    with tfds.testing.mock_data(num_examples=4):
        results = training.train(config, verbose=0)
    assert results["optimizer_iterations"] == 1
    model = keras.saving.load_model(results["paths"]["best_model"])
    assert model.input_shape == (None, 224, 224, 3) and model.output_shape == (None, 1000)


def test_multi_worker_fix_is_guarded_by_the_keras_version(caplog):
    from keras_dta.training import distribute

    # What the workaround swaps must still exist in this Keras.
    from keras.src.backend.tensorflow import trainer as tf_trainer

    assert callable(tf_trainer.reduce_per_replica)
    assert distribute.check_multi_worker_fix_version("3.15.1")
    with caplog.at_level("WARNING"):
        assert not distribute.check_multi_worker_fix_version("3.99.0")
    assert "checked on Keras up to 3.15" in caplog.text


def test_model_dir_that_is_a_file_or_unwritable_is_named(tmp_path):
    from keras_dta import training

    existing = tmp_path / "file"
    existing.write_text("x")
    config = training.make_config("digits", model_dir=str(existing)).validate()
    with pytest.raises(ValueError, match="names a file"):
        training.prepare_run_dir(config)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        config = training.make_config("digits", model_dir=str(locked / "run")).validate()
        if os.access(locked, os.W_OK):  # root writes anywhere: check a read-only place instead
            config = training.make_config("digits", model_dir="/proc/keras_dta_run").validate()
        with pytest.raises(ValueError, match="Cannot write the run directory"):
            training.prepare_run_dir(config)
    finally:
        locked.chmod(0o700)


def test_a_seeded_run_repeats_exactly(tmp_path):
    from keras_dta import training

    def run(name, seed):
        config = training.make_config(
            "digits", model_dir=str(tmp_path / name), epochs=2, steps_per_epoch=3, eval_steps=1, batch_size=8,
            firing_rate_freq=0, export=False, distribute="none", jit_compile=False, seed=seed,
        ).validate()
        training.train(config, verbose=0)
        return keras.saving.load_model(tmp_path / name / "last.keras", compile=False).get_weights()

    first, again, other = run("a", 5), run("b", 5), run("c", 6)
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert not all(np.array_equal(x, y) for x, y in zip(first, other))


def test_the_optimizer_that_trains_has_the_recipe(digits_run):
    # Read from the optimizer the run saved with its model, not from the config: a trainer
    # that dropped the weight decay or the batch-size scaling would show here.
    from keras_dta.optimizers import CoupledSGD

    config, results = digits_run
    model = keras.saving.load_model(os.path.join(config.model_dir, "last.keras"))
    optimizer = model.optimizer
    assert isinstance(optimizer, CoupledSGD)
    assert optimizer.l2_weight_decay == pytest.approx(config.weight_decay) and config.weight_decay > 0
    assert optimizer.momentum == pytest.approx(config.momentum)
    schedule = keras.optimizers.schedules.deserialize(optimizer.get_config()["learning_rate"])
    steps = config.epochs * config.steps_per_epoch
    # Cosine from the scaled rate (0.05 at batch 32, trained at batch 8: 0.0125) to 0.
    assert config.batch_size != config.base_batch_size
    assert float(schedule(0)) == pytest.approx(config.learning_rate * config.batch_size / config.base_batch_size)
    assert float(schedule(steps // 2)) == pytest.approx(float(schedule(0)) / 2, rel=1e-5)
    assert float(schedule(steps)) == pytest.approx(0.0, abs=1e-9)
    assert int(optimizer.iterations.numpy()) == results["optimizer_iterations"] == steps


def test_digits_images_and_labels_stay_paired_and_a_short_run_learns(tmp_path):
    from sklearn.datasets import load_digits

    from keras_dta.data import datasets

    # Evaluation batches against the source arrays: each image with its own label.
    spec = datasets.get_dataset("digits")
    x_test, y_test = spec._splits()["test"]
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in spec.load("test", batch_size=64, training=False)])
    np.testing.assert_array_equal(np.concatenate(images), x_test)
    np.testing.assert_array_equal(np.concatenate(labels).argmax(1), y_test)
    digits = load_digits()
    for image, label in zip(x_test[:5], y_test[:5]):
        match = np.flatnonzero((digits.images / 16.0 == image[..., 0]).all(axis=(1, 2)))
        assert match.size and (digits.target[match] == label).all()
    # Three epochs of the digits recipe (the preset's model, batch 32) beat chance (10%) clearly.
    config = training.make_config(
        "digits", model_dir=str(tmp_path / "run"), epochs=3, firing_rate_freq=0, export=False,
        distribute="none", jit_compile=False,
    ).validate()
    assert training.train(config, verbose=0)["test_accuracy"] > 0.6


def test_history_records_the_run_wall_time(digits_run):
    config, _ = digits_run
    with open(os.path.join(config.model_dir, "history.csv")) as f:
        elapsed = [float(r["elapsed_s"]) for r in csv.DictReader(f)]
    assert len(elapsed) == config.epochs and 0 < elapsed[0] < elapsed[-1]


def test_a_last_test_batch_that_does_not_split_over_jax_devices_is_left_out(tmp_path, caplog):
    from keras_dta.training import loop

    class Spec:
        eval_split = "test"
        size = 13

        def num_examples(self, split, data_dir=None, T=None):
            return self.size

    config = tiny_config(tmp_path, batch_size=4)
    batches = tf.data.Dataset.range(13).batch(4)  # 4, 4, 4, 1
    with caplog.at_level("WARNING"):
        kept = loop._whole_batches_for_jax(batches, Spec(), config, replicas=2)
    assert [len(b) for b in kept] == [4, 4, 4] and "Evaluating 12 of the 13 test examples" in caplog.text
    spec = Spec()
    spec.size = 14  # a last batch of 2 splits over 2 devices: every example is evaluated
    assert loop._whole_batches_for_jax(batches, spec, config, replicas=2) is batches
