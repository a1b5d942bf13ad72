"""Training DTA-SNNs: the recipe of the paper (Table 4) on Keras 3, on the TensorFlow or
the JAX backend.

`train(config)` builds the dataset, the model, the optimizer and the callbacks
from a `TrainConfig`, runs `model.fit`, and leaves a run directory (see
`keras_dta.training.run_dir`).

Recipe: SGD with momentum and weight decay coupled as in `torch.optim.SGD`
(`CoupledSGD`), cosine decay from the learning rate to 0 over the whole run,
cross-entropy on the mean over time of the logits (or TET, `loss="tet"`).
The learning rate is scaled linearly with the global batch size:
`lr = learning_rate * batch_size / base_batch_size`, where `base_batch_size`
is the preset's batch size.

A run killed at any point and restarted with the same configuration resumes
from its step checkpoint (`keras_dta.training.checkpoint`), and ends with the same
number of epochs, optimizer iterations and learning-rate schedule as an
uninterrupted run (seeded, on one device: the same weights, as the input pipeline
continues its stream); its files describe the same epochs after a kill at any point.

Modules: `config` (TrainConfig, make_config), `presets` (the recipes),
`distribute` (strategy, chief, XLA, multi-worker fit), `jax_parallel` (data-parallel
on JAX devices), `run_dir` (the run
directory), `checkpoint` (the step checkpoint, the commit order of a run's files),
`callbacks`, `loop` (`train`).
"""

from keras_dta.losses import MeanOverTimeAccuracy, TETLoss
from keras_dta.optimizers import CoupledSGD
from keras_dta.training.callbacks import (
    NonFiniteLossError,
    RunCheckpoint,
    StopOnNonFiniteLoss,
)
from keras_dta.training.checkpoint import StepCheckpoint
from keras_dta.training.config import (
    ATTN_KINDS,
    DISTRIBUTE_KINDS,
    LOSSES,
    PRECISIONS,
    TrainConfig,
    config_fields,
    make_config,
)
from keras_dta.training.distribute import (
    MultiWorkerUnsupportedError,
    cluster_task,
    make_strategy,
)
from keras_dta.training.loop import (
    SPIKE_STATS_BATCHES,
    build_model,
    compile_model,
    dtype_policy,
    make_loss,
    make_optimizer,
    train,
)
from keras_dta.training.presets import available_presets, get_preset, register_preset
from keras_dta.training.run_dir import RunPaths, prepare_run_dir

# The name the tests and earlier code used.
_cluster_task = cluster_task

__all__ = [
    "ATTN_KINDS",
    "CoupledSGD",
    "DISTRIBUTE_KINDS",
    "LOSSES",
    "MeanOverTimeAccuracy",
    "MultiWorkerUnsupportedError",
    "NonFiniteLossError",
    "PRECISIONS",
    "RunCheckpoint",
    "RunPaths",
    "SPIKE_STATS_BATCHES",
    "StepCheckpoint",
    "StopOnNonFiniteLoss",
    "TETLoss",
    "TrainConfig",
    "available_presets",
    "build_model",
    "cluster_task",
    "compile_model",
    "config_fields",
    "dtype_policy",
    "get_preset",
    "make_config",
    "make_loss",
    "make_optimizer",
    "make_strategy",
    "prepare_run_dir",
    "register_preset",
    "train",
]
