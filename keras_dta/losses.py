"""Losses and metrics for spiking models whose logits have a time axis."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_dta")
class TETLoss(keras.losses.Loss):
    """TET loss: the mean over time of the cross-entropy of each step's logits.

    `y_pred` is `(batch, time, classes)` logits, `y_true` one-hot or soft
    `(batch, classes)` labels (Deng et al., "Temporal Efficient Training of
    Spiking Neural Network via Gradient Re-weighting", ICLR 2022, without its
    MSE regulariser).
    """

    def __init__(self, name="tet_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        steps = ops.shape(y_pred)[1]
        y_true = ops.repeat(ops.expand_dims(y_true, 1), steps, axis=1)
        per_step = keras.losses.categorical_crossentropy(y_true, y_pred, from_logits=True)
        return ops.mean(per_step, axis=1)


@keras.saving.register_keras_serializable(package="keras_dta")
class MeanOverTimeAccuracy(keras.metrics.CategoricalAccuracy):
    """Categorical accuracy of the mean over time when `y_pred` has a time axis."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        if len(y_pred.shape) == 3:
            y_pred = ops.mean(y_pred, axis=1)
        return super().update_state(y_true, y_pred, sample_weight=sample_weight)
