"""The time layers through the shared layer harness (values are in tests/test_models.py)."""

import keras
import pytest
from helpers import run_layer_test

from keras_dta.layers import MeanOverTime, RepeatTime, TimeFold


@pytest.mark.parametrize(
    "layer_cls, init_kwargs, input_shape, output_shape, num_weights",
    [
        (RepeatTime, {"T": 3}, (2, 4, 4, 5), (2, 3, 4, 4, 5), 0),
        (MeanOverTime, {"name": "mean"}, (2, 3, 4, 4, 5), (2, 4, 4, 5), 0),
        (TimeFold, {"layer": keras.layers.Conv2D(7, 3, padding="same")}, (2, 3, 4, 4, 5),
         (2, 3, 4, 4, 7), 2),
        # A wrapped layer that takes `training` (BatchNorm) and one that does not (pooling).
        (TimeFold, {"layer": keras.layers.BatchNormalization()}, (2, 3, 4, 4, 5),
         (2, 3, 4, 4, 5), 2),
        (TimeFold, {"layer": keras.layers.GlobalAveragePooling2D()}, (2, 3, 4, 4, 5), (2, 3, 5), 0),
    ],
)
def test_time_layer_harness(layer_cls, init_kwargs, input_shape, output_shape, num_weights, tmp_path):
    run_layer_test(
        layer_cls, init_kwargs, input_shape=input_shape, expected_output_shape=output_shape,
        expected_num_trainable_weights=num_weights, tmp_dir=tmp_path,
    )
