"""MS-ResNet-18 and MS-ResNet-34 with an optional DTA block after the stem."""

import keras
from keras import layers

from keras_dta.layers import DTA, LIF, Int8GridConv2D, MeanOverTime, RepeatTime, Subsample2D, TimeFold

ATTENTION_KINDS = ("dta", "txa", "tna", "none")


def _batch_norm(name):
    # PyTorch's defaults: eps 1e-5, momentum 0.1 (0.9 in Keras's convention). On a
    # (batch, time, height, width, channels) tensor the statistics are taken over
    # batch x time x height x width, as the reference's time-folded BatchNorm2d does.
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _conv(x, filters, kernel_size, stride, name, int8_grid=False):
    """Conv2D on every time step, no bias, padded as PyTorch pads `kernel_size // 2`
    (`Int8GridConv2D` with `int8_grid`)."""
    if kernel_size == 1:
        if stride > 1:
            # A 1x1 conv with stride s is a 1x1 conv on every s-th pixel (see Subsample2D).
            x = TimeFold(Subsample2D(stride), name=f"{name}_subsample")(x)
            stride = 1
        padding = "valid"
    elif stride == 1:
        padding = "same"
    else:
        # Keras 'same' pads a strided convolution asymmetrically (0 before, 1 after for a
        # 3x3/2 on an even size); PyTorch pads both sides. Pad explicitly to match weights
        # trained by the authors' code.
        pad = kernel_size // 2
        x = TimeFold(layers.ZeroPadding2D(pad), name=f"{name}_pad")(x)
        padding = "valid"
    conv_class = Int8GridConv2D if int8_grid else layers.Conv2D
    conv = conv_class(filters, kernel_size, strides=stride, padding=padding, use_bias=False)
    return TimeFold(conv, name=name)(x)


def apply_ms_block(x, filters, stride, name, lif_kwargs=None, int8_grid=False):
    """One membrane-shortcut basic block.

    `y = BN(conv3x3(LIF(x), stride)); y = BN(conv3x3(LIF(y))); out = y + shortcut(x)`, where
    the shortcut is `x` itself or `BN(conv1x1(x, stride))` when the stride or width changes
    (on the membrane input `x`, not on spikes).

    Args:
        x: tensor `(batch, time, height, width, channels)`.
        filters: int, output channels.
        stride: int, stride of the first convolution and of the shortcut.
        name: str, prefix of the block's layer names, e.g. `"stage2_block1"`.
        lif_kwargs: dict of `LIF` arguments.
        int8_grid: bool, train the two spike-fed convolutions on the int8 grid
            (`Int8GridConv2D`).

    Returns:
        Tensor `(batch, time, height / stride, width / stride, filters)`.
    """
    lif_kwargs = lif_kwargs or {}
    y = LIF(name=f"{name}_lif1", **lif_kwargs)(x)
    y = _conv(y, filters, 3, stride, f"{name}_conv1", int8_grid)
    y = _batch_norm(f"{name}_bn1")(y)
    y = LIF(name=f"{name}_lif2", **lif_kwargs)(y)
    y = _conv(y, filters, 3, 1, f"{name}_conv2", int8_grid)
    y = _batch_norm(f"{name}_bn2")(y)
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv(x, filters, 1, stride, f"{name}_shortcut_conv")
        shortcut = _batch_norm(f"{name}_shortcut_bn")(shortcut)
    return layers.Add(name=f"{name}_add")([y, shortcut])


def _check_positive_ints(name, values):
    values = tuple(values)
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        raise ValueError(f"`{name}` must be a non-empty list of positive integers. Received: {name}={values}")
    return values


def _build_graph(
    stage_filters,
    stage_blocks,
    stage_strides,
    stem,
    attn,
    T,
    num_classes,
    input_shape,
    return_sequences,
    stem_filters,
    lif_kwargs,
    int8_grid,
):
    """Validates the arguments and builds the functional graph: `(inputs, outputs)`."""
    if attn not in ATTENTION_KINDS:
        raise ValueError(f"`attn` must be one of {ATTENTION_KINDS}. Received: attn={attn!r}")
    if not isinstance(T, int) or isinstance(T, bool) or T < 1:
        raise ValueError(f"`T` must be a positive integer. Received: T={T}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"`num_classes` must be a positive integer. Received: num_classes={num_classes}")
    if stem not in ("cifar", "imagenet"):
        raise ValueError(f"`stem` must be 'cifar' or 'imagenet'. Received: stem={stem!r}")
    stage_filters = _check_positive_ints("stage_filters", stage_filters)
    stage_blocks = _check_positive_ints("stage_blocks", stage_blocks)
    stage_strides = _check_positive_ints("stage_strides", stage_strides)
    if not len(stage_filters) == len(stage_blocks) == len(stage_strides):
        raise ValueError(
            "`stage_filters`, `stage_blocks` and `stage_strides` must have the same length. "
            f"Received: stage_filters={stage_filters}, stage_blocks={stage_blocks}, "
            f"stage_strides={stage_strides}"
        )
    _check_positive_ints("stem_filters", [stem_filters])
    if not isinstance(int8_grid, bool):
        raise ValueError(f"`int8_grid` must be True or False. Received: int8_grid={int8_grid!r}")
    input_shape = tuple(input_shape)
    if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in input_shape):
        raise ValueError(
            f"`input_shape` must hold positive integers. Received: input_shape={input_shape}"
        )
    if len(input_shape) == 3:
        inputs = keras.Input(input_shape, name="images")
        x = RepeatTime(T, name="repeat_time")(inputs)
    elif len(input_shape) == 4:
        if input_shape[0] != T:
            raise ValueError(
                "Event-frame inputs must have T time steps. "
                f"Received: input_shape={input_shape} with T={T}"
            )
        inputs = keras.Input(input_shape, name="frames")
        x = inputs
    else:
        raise ValueError(
            "`input_shape` must be (height, width, channels) or (T, height, width, channels). "
            f"Received: input_shape={input_shape}"
        )
    lif_kwargs = dict(lif_kwargs or {})

    if stem == "cifar":
        x = _conv(x, stem_filters, 3, 1, "stem_conv")
        x = _batch_norm("stem_bn")(x)
    else:
        x = _conv(x, stem_filters, 7, 2, "stem_conv")
        x = _batch_norm("stem_bn")(x)
        # Table 1 of the paper (112 -> 56): the reference omits this pool.
        x = TimeFold(layers.MaxPooling2D(3, strides=2, padding="same"), name="stem_pool")(x)
    if attn != "none":
        spikes = LIF(name="stem_lif", **lif_kwargs)(x)
        x = DTA(use_txa=attn in ("dta", "txa"), use_tna=attn in ("dta", "tna"), name="dta")([x, spikes])

    for stage, (filters, blocks, stride) in enumerate(zip(stage_filters, stage_blocks, stage_strides), 1):
        for block in range(1, blocks + 1):
            x = apply_ms_block(
                x, filters, stride if block == 1 else 1, f"stage{stage}_block{block}", lif_kwargs, int8_grid
            )

    x = LIF(name="head_lif", **lif_kwargs)(x)
    x = TimeFold(layers.GlobalAveragePooling2D(), name="head_pool")(x)
    # float32 logits under mixed precision, as Keras recommends for the last layer.
    outputs = layers.Dense(num_classes, dtype="float32", name="head_dense")(x)
    if not return_sequences:
        outputs = MeanOverTime(dtype="float32", name="time_mean")(outputs)
    return inputs, outputs




@keras.saving.register_keras_serializable(package="keras_dta")
class MSResNet(keras.Model):
    """An MS-ResNet: a functional model, with an optional attention block after the stem,
    that knows how it was built.

    `ms_resnet18` and `ms_resnet34` build the paper's two; this class takes the sizes. The
    construction arguments are attributes (`model.T`, `model.attn`, `model.num_classes`, ...)
    and are what `get_config` saves: a `.keras` file rebuilds the same graph and carries them,
    so export and statistics read `T` from the model instead of guessing it from input shapes
    (as keras-hub's backbones do).

    Args:
        stage_filters: list of ints, the width of each stage.
        stage_blocks: list of ints, the number of blocks of each stage.
        stage_strides: list of ints, the stride of each stage's first block.
        stem: `"cifar"` (conv3x3 + BN) or `"imagenet"` (conv7x7/2 + BN + max pool 3x3/2).
        attn: one of `"dta"`, `"txa"`, `"tna"`, `"none"`.
        T: positive int, the number of time steps.
        num_classes: positive int.
        input_shape: `(height, width, channels)` for static images, repeated T times, or
            `(T, height, width, channels)` for event frames, used as they are.
        return_sequences: bool; if True the output is the per-step logits
            `(batch, T, num_classes)`, else their mean over time `(batch, num_classes)`.
        stem_filters: int, the stem's width.
        lif_kwargs: dict of `LIF` arguments shared by every neuron.
        int8_grid: bool, train the blocks' spike-fed convolutions on the int8 grid
            (`keras_dta.layers.Int8GridConv2D`): the model is then its own int8 model, its
            dynamic-range TFLite export computes what it computes (`keras_dta.export.grid`).
        name: str, the model's name.
        policy: str, the dtype policy the layers are built under (default: the global one;
            saved with the model).

    Call arguments:
        inputs: images `(batch, height, width, channels)` or event frames
            `(batch, T, height, width, channels)`.

    Returns:
        The logits, `(batch, num_classes)`, or `(batch, T, num_classes)` with
        `return_sequences`.
    """

    def __init__(
        self,
        stage_filters,
        stage_blocks,
        stage_strides,
        *,
        stem,
        attn="dta",
        T=6,
        num_classes=10,
        input_shape=(32, 32, 3),
        return_sequences=False,
        stem_filters=64,
        lif_kwargs=None,
        int8_grid=False,
        name="ms_resnet",
        policy=None,
        **kwargs,
    ):
        # The dtype policy the layers are built under (the global one by default): saved, so
        # that a model trained in mixed precision loads with its layers' policies.
        policy = policy or keras.mixed_precision.global_policy().name
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(policy)
        try:
            inputs, outputs = _build_graph(
                stage_filters, stage_blocks, stage_strides, stem, attn, T, num_classes, input_shape,
                return_sequences, stem_filters, lif_kwargs, int8_grid,
            )
        finally:
            keras.mixed_precision.set_global_policy(previous)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.policy = policy
        self.stage_filters = [int(v) for v in stage_filters]
        self.stage_blocks = [int(v) for v in stage_blocks]
        self.stage_strides = [int(v) for v in stage_strides]
        self.stem = stem
        self.attn = attn
        self.T = T
        self.num_classes = num_classes
        self.image_shape = tuple(input_shape)
        self.return_sequences = bool(return_sequences)
        self.stem_filters = stem_filters
        self.lif_kwargs = dict(lif_kwargs or {})
        self.int8_grid = bool(int8_grid)

    def get_config(self):
        return {
            "stage_filters": self.stage_filters,
            "stage_blocks": self.stage_blocks,
            "stage_strides": self.stage_strides,
            "stem": self.stem,
            "attn": self.attn,
            "T": self.T,
            "num_classes": self.num_classes,
            "input_shape": list(self.image_shape),
            "return_sequences": self.return_sequences,
            "stem_filters": self.stem_filters,
            "lif_kwargs": self.lif_kwargs,
            "int8_grid": self.int8_grid,
            "name": self.name,
            "policy": self.policy,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def ms_resnet18(
    attn="dta",
    T=6,
    num_classes=10,
    input_shape=(32, 32, 3),
    return_sequences=False,
    stem_filters=64,
    stage_filters=(128, 256, 512),
    stage_blocks=(3, 3, 2),
    stage_strides=(1, 2, 2),
    lif_kwargs=None,
    int8_grid=False,
    name=None,
):
    """MS-ResNet-18 for CIFAR and CIFAR10-DVS, with DTA after the stem.

    The authors' CIFAR network: a 3x3 stem of 64 channels, then stages of (128, 3 blocks,
    stride 1), (256, 3, 2) and (512, 2, 2). Defaults give the paper's model; the width and
    depth arguments exist for small experiments.

    Args:
        attn: `"dta"` (the paper's model), `"txa"` or `"tna"` (one branch, the ablation), or
            `"none"` (plain MS-ResNet).
        T: positive int, the number of time steps.
        num_classes: positive int.
        input_shape: `(height, width, channels)` for static images (repeated T times) or
            `(T, height, width, channels)` for event frames (CIFAR10-DVS: `(10, 48, 48, 2)`).
        return_sequences: bool, return the per-step logits `(batch, T, num_classes)` instead
            of their mean `(batch, num_classes)`.
        stem_filters: int, the stem's width.
        stage_filters: list of ints, the width of each stage.
        stage_blocks: list of ints, the blocks in each stage.
        stage_strides: list of ints, the first stride of each stage.
        lif_kwargs: dict of `LIF` arguments (`tau`, `v_threshold`, `alpha`).
        int8_grid: bool, train the spike-fed convolutions on the int8 grid
            (`keras_dta.layers.Int8GridConv2D`), for an exact int8 export.
        name: the model's name; defaults to `"ms_resnet18_<attn>"`.

    Returns:
        A functional `keras.Model` that outputs logits.

    Example:

    >>> model = keras_dta.models.ms_resnet18(attn="dta", T=6, num_classes=100)
    >>> sum(int(np.prod(w.shape)) for w in model.trainable_weights)  # as the reference: 13,039,506

    Reference:
        Kim, Kim and Yang, "DTA: Dual Temporal-channel-wise Attention for Spiking Neural
        Networks", WACV 2025.
    """
    return MSResNet(
        stage_filters,
        stage_blocks,
        stage_strides,
        stem="cifar",
        attn=attn,
        T=T,
        num_classes=num_classes,
        input_shape=input_shape,
        return_sequences=return_sequences,
        stem_filters=stem_filters,
        lif_kwargs=lif_kwargs,
        int8_grid=int8_grid,
        name=name or f"ms_resnet18_{attn}",
    )


def ms_resnet34(
    attn="dta",
    T=6,
    num_classes=1000,
    input_shape=(224, 224, 3),
    return_sequences=False,
    stem_filters=64,
    stage_filters=(64, 128, 256, 512),
    stage_blocks=(3, 4, 6, 3),
    stage_strides=(1, 2, 2, 2),
    lif_kwargs=None,
    int8_grid=False,
    name=None,
):
    """MS-ResNet-34 for ImageNet, with DTA after the stem.

    Follows Table 1 of the paper (224 -> 112 -> 56 -> 28 -> 14 -> 7): a 7x7/2 stem with BN, a
    3x3/2 max pool, then stages (64, 3), (128, 4), (256, 6), (512, 3) with strides 1, 2, 2, 2.
    The authors' ImageNet code omits the pool and uses strides 1, 1, 2, 2 (and its forward
    pass does not run); the parameter count is the same either way.

    Args:
        attn: `"dta"`, `"txa"`, `"tna"` or `"none"`.
        T: positive int, the number of time steps.
        num_classes: positive int.
        input_shape: `(height, width, channels)` or `(T, height, width, channels)`.
        return_sequences: bool, return per-step logits.
        stem_filters: int, the stem's width.
        stage_filters: list of ints, the width of each stage.
        stage_blocks: list of ints, the blocks in each stage.
        stage_strides: list of ints, the first stride of each stage.
        lif_kwargs: dict of `LIF` arguments.
        int8_grid: bool, train the spike-fed convolutions on the int8 grid
            (`keras_dta.layers.Int8GridConv2D`), for an exact int8 export.
        name: the model's name; defaults to `"ms_resnet34_<attn>"`.

    Returns:
        A functional `keras.Model` that outputs logits.
    """
    return MSResNet(
        stage_filters,
        stage_blocks,
        stage_strides,
        stem="imagenet",
        attn=attn,
        T=T,
        num_classes=num_classes,
        input_shape=input_shape,
        return_sequences=return_sequences,
        stem_filters=stem_filters,
        lif_kwargs=lif_kwargs,
        int8_grid=int8_grid,
        name=name or f"ms_resnet34_{attn}",
    )
