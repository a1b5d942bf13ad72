"""`FiringRateLogger`: the firing rate of every LIF layer, logged to TensorBoard while training."""

import logging
import os

import keras
import numpy as np

from keras_dta._checks import check_int
from keras_dta.stats.rates import RateProbe

logger = logging.getLogger(__name__)


class FiringRateLogger(keras.callbacks.Callback):
    """Logs the firing rate of every LIF layer to TensorBoard during training.

    Every `every_n_epochs` epochs (and optionally at the end of training) the rates are
    measured on `data` in inference mode and written as scalars `firing_rate/<layer>` plus
    `firing_rate/mean`, with the epoch as the step. The latest rates are kept in
    `self.rates` and all of them in `self.history` (`{epoch: rates}`).

    Writing the event file needs TensorFlow (`tf.summary`), which is imported when the
    callback is created; measuring the rates is backend-neutral.

    Args:
        data: inputs to measure on: an array, a `tf.data.Dataset` or an iterable of batches.
            Use a fixed, small slice of the validation set.
        log_dir: str, the TensorBoard directory (a `firing_rates` sub-directory is used).
        every_n_epochs: positive int.
        steps: int or None, batches of `data` per measurement.
        batch_size: int, batch size when `data` is an array.
        on_train_end: bool, also measure after the last epoch if it was not just measured.

    Example:

    >>> logger = FiringRateLogger(x_val[:256], "runs/dta", every_n_epochs=5)
    >>> model.fit(train, epochs=250, callbacks=[logger])
    >>> plot_firing_rates(logger.rates, "runs/dta/firing_rates.png")
    """

    def __init__(self, data, log_dir, every_n_epochs=1, steps=None, batch_size=32, on_train_end=True):
        super().__init__()
        check_int("every_n_epochs", every_n_epochs)
        check_int("steps", steps, allow_none=True)
        try:
            import tensorflow as tf  # noqa: PLC0415 - tf.summary writes the event file
        except ImportError as e:
            raise ImportError("FiringRateLogger writes TensorBoard files with TensorFlow.") from e
        self._tf = tf
        self.data = data
        self.log_dir = os.fspath(log_dir)
        self.every_n_epochs = every_n_epochs
        self.steps = steps
        self.batch_size = batch_size
        self.log_on_train_end = on_train_end
        self.rates = None
        self.history = {}
        self._writer = None
        self._probe = None
        self._last_epoch = None
        self._metadata = None

    def _measure(self, epoch):
        if self._probe is None:
            self._probe = RateProbe(self.model)
        if self._writer is None:
            self._writer = self._tf.summary.create_file_writer(os.path.join(self.log_dir, "firing_rates"))
        rates, _ = self._probe.rates(self.data, self.steps, self.batch_size)
        with self._writer.as_default():
            for name, rate in rates.items():
                self._scalar(f"firing_rate/{name}", rate, epoch)
            self._scalar("firing_rate/mean", float(np.mean(list(rates.values()))), epoch)
        self._writer.flush()
        self.rates = rates
        self.history[epoch] = rates
        self._last_epoch = epoch
        logger.debug("Epoch %d firing rates: %s", epoch, rates)

    def _scalar(self, tag, value, step):
        # tf.summary.scalar lives in the tensorboard package, which TensorFlow does not
        # require; tf.summary.write with the scalar plugin's metadata writes the same record.
        if self._metadata is None:
            from tensorflow.core.framework import summary_pb2  # noqa: PLC0415

            self._metadata = summary_pb2.SummaryMetadata(
                plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
                data_class=summary_pb2.DATA_CLASS_SCALAR,
            )
        self._tf.summary.write(tag, self._tf.constant(value, self._tf.float32), step=step,
                               metadata=self._metadata)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs == 0:
            self._measure(epoch)

    def on_train_end(self, logs=None):
        epoch = getattr(self, "_epoch_seen", None)
        if self.log_on_train_end and epoch is not None and epoch != self._last_epoch:
            self._measure(epoch)
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_seen = epoch
