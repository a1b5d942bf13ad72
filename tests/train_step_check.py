"""One SGD step of a tiny ms_resnet18, run on whichever Keras backend is active.

`python tests/train_step_check.py WEIGHTS OUT` loads WEIGHTS (a .weights.h5 file), takes one
training step on fixed data and writes the loss, logits and new weights to OUT (.npz).
"""

import sys

import numpy as np


def build():
    from keras_dta import models

    return models.ms_resnet18(attn="dta", T=2, num_classes=3, input_shape=(8, 8, 3), stem_filters=8,
                              stage_filters=(8, 16), stage_blocks=(1, 1), stage_strides=(1, 2))


def data():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, (4, 8, 8, 3)).astype("float32")
    y = np.eye(3, dtype="float32")[[0, 1, 2, 1]]
    return x, y


def step(weights_path):
    import keras

    model = build()
    model.load_weights(weights_path)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    x, y = data()
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    loss = model.train_on_batch(x, y)
    return {"loss": np.asarray(loss), "logits": logits,
            **{f"w{i}": w for i, w in enumerate(model.get_weights())}}


if __name__ == "__main__":
    np.savez(sys.argv[2], **step(sys.argv[1]))
