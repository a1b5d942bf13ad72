"""The fastest TensorFlow inference graph: BatchNorm folded, weights frozen into constants.

`tf.function(lambda x: model(x, training=False))` reads every weight from its variable on each
call. With the weights as constants of the graph, TensorFlow's oneDNN convolutions prepare
(reorder) each kernel once instead of on every call; on MS-ResNet-18 at T = 6 (batch 1, two
cores) that and BatchNorm folded into the convolutions (`fold_batchnorm`) take the graph from
127.5 to 113.5 ms (`benchmarks/inference.py --modes graph,graph_frozen`, whose docstring has
the figures). The values are the model's up to float rounding (the folding).
"""

from keras_dta.export._common import input_spec, require_tensorflow_backend
from keras_dta.export.fold import fold_batchnorm, foldable_pairs


def inference_function(model, batch_size=1, fold=True):
    """The model's inference as a frozen TensorFlow graph.

    The weights are copied into the graph when this is called: later changes to the model's
    weights do not reach the function (call it again after training).

    Args:
        model: a functional `keras.Model` with one input (TensorFlow backend).
        batch_size: int, the static batch size, or None for any.
        fold: bool, fold BatchNorm into the convolutions first (`fold_batchnorm`).

    Returns:
        A callable taking a float32 array or tensor of the model's input shape and returning
        the model's output(s) as tensors (a list for a model with several outputs).

    Example:

    >>> predict = keras_dta.export.inference_function(model)
    >>> logits = predict(images[:1]).numpy()
    """
    require_tensorflow_backend()
    import tensorflow as tf
    # Public since TF 2.0 under this path only; the TFLite converter freezes with it too.
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = input_spec(model, batch_size)
    if fold and foldable_pairs(model):
        model = fold_batchnorm(model)
    concrete = tf.function(lambda x: model(x, training=False), input_signature=[spec]).get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    several = len(model.outputs) > 1

    def predict(inputs):
        outputs = frozen(tf.convert_to_tensor(inputs, tf.float32))
        return list(outputs) if several else outputs[0]

    predict.graph = frozen.graph
    return predict
