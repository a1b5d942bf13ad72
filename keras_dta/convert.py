"""Load weights trained with the authors' PyTorch implementation of DTA-SNN.

The authors' state dicts name every module twice in places (`layer1.0.conv1` and
`layer1.0.conv1_s.layer.module` are one tensor; so are `bn1.bn` and `bn1.seqbn.module`); any of
the aliases is accepted. Layouts are converted from PyTorch's channels-first to Keras's
channels-last: conv kernels OIHW -> HWIO, depthwise OIHW (I = 1) -> HW(C, 1), Conv1d OIK -> KIO,
Linear (out, in) -> (in, out).

Command line:

    python -m keras_dta.convert CHECKPOINT --arch ms_resnet18 --T 6 --num_classes 100 \
        --output model.keras

(the program is `keras_dta.cli.convert`, also installed as `keras-dta-convert`).
"""

import logging
import os
import pickle

import numpy as np

logger = logging.getLogger(__name__)

_BN_PARAMS = (
    ("weight", "gamma"),
    ("bias", "beta"),
    ("running_mean", "moving_mean"),
    ("running_var", "moving_variance"),
)


def _conv2d(w):
    return np.transpose(w, (2, 3, 1, 0))


def _depthwise(w):
    return np.transpose(w, (2, 3, 0, 1))


def _conv1d(w):
    return np.transpose(w, (2, 1, 0))


def _linear(w):
    return np.transpose(w)


def _flatten(w):
    return np.reshape(w, (-1,))


def _same(w):
    return w


def _to_numpy(value):
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


class _Naming:
    """The reference's module names for one architecture family."""

    def __init__(self, state_dict):
        keys = set(state_dict)
        self.cifar = any(k.startswith("input_conv.") for k in keys)
        # The CIFAR model numbers its stages layer1..layer3, the ImageNet one layer0..layer3.
        self.stage_offset = 0 if self.cifar else 1
        self.head = "fc.layer.module" if self.cifar else "fc1_s.layer.module"

    def stem_conv(self):
        if self.cifar:
            return ["input_conv.layer.module"]
        return ["conv1", "conv1_s.layer.module"]

    def stem_bn(self):
        if self.cifar:
            return ["input_conv.bn.bn", "input_conv.bn.seqbn.module"]
        return ["bn1.bn", "bn1.seqbn.module", "conv1_s.bn.bn", "conv1_s.bn.seqbn.module"]

    def block(self, stage, block):
        return f"layer{stage - self.stage_offset}.{block - 1}"


def _strip_dataparallel(state_dict):
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state_dict.items()}


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _conv_targets(model, layer_name, prefixes):
    kernel = model.get_layer(layer_name).layer.kernel
    yield kernel, [f"{p}.weight" for p in prefixes], _conv2d


def _bn_targets(model, layer_name, prefixes):
    layer = model.get_layer(layer_name)
    for ref, attr in _BN_PARAMS:
        yield getattr(layer, attr), [f"{p}.{ref}" for p in prefixes], _same


def _block_targets(model, block_name, prefix):
    """The weights of one MS block, e.g. `stage1_block1` <- `layer1.0`."""
    for i in (1, 2):
        conv = _join(prefix, f"conv{i}")
        yield from _conv_targets(model, f"{block_name}_conv{i}", [conv, f"{conv}_s.layer.module"])
        yield from _bn_targets(
            model,
            f"{block_name}_bn{i}",
            [_join(prefix, f"bn{i}.bn"), _join(prefix, f"bn{i}.seqbn.module"),
             f"{conv}_s.bn.bn", f"{conv}_s.bn.seqbn.module"],
        )
    if any(layer.name == f"{block_name}_shortcut_conv" for layer in model.layers):
        down = _join(prefix, "downsample")
        yield from _conv_targets(model, f"{block_name}_shortcut_conv", [f"{down}.layer.module"])
        yield from _bn_targets(
            model, f"{block_name}_shortcut_bn", [f"{down}.bn.bn", f"{down}.bn.seqbn.module"]
        )


def _dta_targets(layer, prefix):
    """The weights of a `DTA` layer <- `T_XA.*` and `T_NA.*`."""
    if layer.txa is not None:
        txa, p = layer.txa, _join(prefix, "T_XA")
        yield txa.conv_t, [f"{p}.conv_t.weight"], _conv1d
        yield txa.conv_c, [f"{p}.conv_c.weight"], _conv1d
        yield txa.scale_t, [f"{p}.scale_t"], _same
        yield txa.scale_c, [f"{p}.scale_c"], _same
    if layer.tna is not None:
        tna, p = layer.tna, _join(prefix, "T_NA")
        for variable, key, layout in (
            (tna.encoding_kernel, "encoding.0.weight", _conv2d),
            (tna.encoding_bias, "encoding.0.bias", _same),
            (tna.local_depthwise_kernel, "tca.LTCA.0.weight", _depthwise),
            (tna.local_depthwise_bias, "tca.LTCA.0.bias", _same),
            (tna.local_scale, "tca.LTCA.1.weight", _flatten),
            (tna.local_shift, "tca.LTCA.1.bias", _same),
            (tna.local_pointwise_kernel, "tca.LTCA.2.weight", _conv2d),
            (tna.local_pointwise_bias, "tca.LTCA.2.bias", _same),
            (tna.global_squeeze, "tca.MLP_block.0.weight", _linear),
            (tna.global_excite, "tca.MLP_block.2.weight", _linear),
            (tna.decoding_kernel, "decoding.weight", _conv2d),
            (tna.decoding_bias, "decoding.bias", _same),
        ):
            yield variable, [f"{p}.{key}"], layout


def _model_targets(model, state_dict):
    naming = _Naming(state_dict)
    yield from _conv_targets(model, "stem_conv", naming.stem_conv())
    yield from _bn_targets(model, "stem_bn", naming.stem_bn())
    for layer in model.layers:
        if layer.name.startswith("stage") and layer.name.endswith("_add"):
            block_name = layer.name[: -len("_add")]
            stage, block = (int(part[5:]) for part in block_name.split("_"))
            yield from _block_targets(model, block_name, naming.block(stage, block))
    if any(layer.name == "dta" for layer in model.layers):
        yield from _dta_targets(model.get_layer("dta"), "encoding")
    head = model.get_layer("head_dense")
    yield head.kernel, [f"{naming.head}.weight"], _linear
    yield head.bias, [f"{naming.head}.bias"], _same


def _assign(targets, state_dict, what):
    """Checks every target against the state dict, then assigns all or nothing."""
    used, missing, misshaped, non_finite, assignments = set(), [], [], [], []
    for variable, aliases, layout in targets:
        present = [k for k in aliases if k in state_dict]
        used.update(present)
        if not present:
            missing.append(aliases[0])
            continue
        source = _to_numpy(state_dict[present[0]])
        value = layout(source.astype(np.float32))
        if tuple(value.shape) != tuple(variable.shape):
            misshaped.append(
                f"{present[0]}: checkpoint {tuple(source.shape)} -> {tuple(value.shape)}, "
                f"model {tuple(variable.shape)} ({variable.path})"
            )
            continue
        if not np.isfinite(value).all():
            non_finite.append(present[0])
            continue
        assignments.append((variable, value))
    unexpected = sorted(
        k for k in state_dict if k not in used and not k.endswith("num_batches_tracked")
    )
    if missing or unexpected or misshaped or non_finite:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if misshaped:
            parts.append(f"mis-shaped keys ({len(misshaped)}): {'; '.join(misshaped)}")
        if non_finite:
            # A diverged training run saves NaN weights; a model built from them answers anyway.
            parts.append(f"keys holding NaN or infinite values ({len(non_finite)}): {', '.join(non_finite)}")
        raise ValueError(f"The state dict does not fit {what}: " + " | ".join(parts))
    for variable, value in assignments:
        variable.assign(value)
    logger.info("Loaded %d tensors into %s.", len(assignments), what)


def load_reference_weights(model, state_dict):
    """Loads a state dict of the authors' PyTorch implementation into a keras_dta model.

    The model must be built with the arguments the checkpoint was trained with
    (`ms_resnet18` for CIFAR and CIFAR10-DVS, `ms_resnet34` for ImageNet; the same `attn`,
    `T`, `num_classes` and input channels). BatchNorm running statistics are loaded too;
    `num_batches_tracked` is ignored.

    Args:
        model: a model from `keras_dta.models.ms_resnet18` / `ms_resnet34`.
        state_dict: mapping from the reference's key names to numpy arrays or torch tensors.
            A `module.` prefix (from `DataParallel`) is stripped.

    Returns:
        The model, with its weights replaced.

    Raises:
        ValueError: naming every missing, unexpected or mis-shaped key, before any weight is
            changed.
    """
    state_dict = _strip_dataparallel(state_dict)
    _assign(list(_model_targets(model, state_dict)), state_dict, f"model '{model.name}'")
    return model


def load_reference_block_weights(model, block_name, state_dict, prefix=""):
    """Loads one MS block's reference weights (`conv1`, `bn1`, ..., `downsample`).

    Args:
        model: a model holding a block built by `apply_ms_block(..., name=block_name)`.
        block_name: str, the block's name in `model`.
        state_dict: the reference block's state dict.
        prefix: str, the block's prefix in `state_dict` (e.g. `"layer1.0"`), if any.
    """
    state_dict = _strip_dataparallel(state_dict)
    _assign(list(_block_targets(model, block_name, prefix)), state_dict, f"block '{block_name}'")


def load_reference_dta_weights(layer, state_dict, prefix=""):
    """Loads the reference's `T_XA.*` / `T_NA.*` weights into a built `DTA` layer.

    Args:
        layer: a built `keras_dta.layers.DTA`.
        state_dict: the reference DTA module's state dict.
        prefix: str, the module's prefix in `state_dict` (e.g. `"encoding"`), if any.
    """
    state_dict = _strip_dataparallel(state_dict)
    _assign(list(_dta_targets(layer, prefix)), state_dict, f"layer '{layer.name}'")


def read_checkpoint(path):
    """Reads a `.pth` / `.pth.tar` checkpoint safely, with or without torch.

    With torch installed, `torch.load(weights_only=True)` reads it; without, `keras_dta.pth`
    reads `torch.save`'s zip format (PyTorch >= 1.6) with the same guarantee: nothing in the
    file but tensors, containers, numbers and strings is loaded.

    Args:
        path: the checkpoint file. A dict with a `state_dict`, `model` or `net` entry is
            unwrapped.

    Returns:
        A dict of numpy arrays.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No checkpoint file at {path!r}.")
    try:
        import torch  # noqa: PLC0415 - optional dependency
    except ImportError:
        from keras_dta import pth  # noqa: PLC0415

        checkpoint = pth.load(path)
    else:
        # weights_only=True never unpickles arbitrary objects.
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, pickle.UnpicklingError, EOFError, OSError) as error:
            raise ValueError(f"torch could not read the checkpoint {path!r} ({error}).") from None
    for key in ("state_dict", "model", "net"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, dict):
        raise ValueError(f"The checkpoint holds no state dict (found {type(checkpoint).__name__}). Received: {path!r}")
    return {k: _to_numpy(v) for k, v in checkpoint.items() if hasattr(v, "shape")}


if __name__ == "__main__":
    from keras_dta.cli import convert as _cli

    _cli.run()
