"""Optimizers: SGD with PyTorch's coupled weight decay, which the paper trained with."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_dta")
class CoupledSGD(keras.optimizers.SGD):
    """SGD with momentum and L2 weight decay exactly as `torch.optim.SGD` does it.

    For each variable `w` with gradient `g`, learning rate `lr`, momentum `mu`
    and weight decay `wd` (PyTorch's defaults: no dampening, no Nesterov):

    ```
    g = g + wd * w          # coupled L2: added to the gradient, before momentum
    b = mu * b + g          # b starts at 0, so the first step has b = g
    w = w - lr * b
    ```

    Keras's `weight_decay` argument is decoupled (`w -= lr * wd * w` apart from
    the gradient), and Keras's SGD keeps the momentum buffer already multiplied
    by the learning rate, which differs from PyTorch while the learning rate
    changes (cosine decay). The reference trains with `torch.optim.SGD`, so
    this optimizer keeps PyTorch's buffer.

    Args:
        learning_rate: float or a `keras.optimizers.schedules` schedule.
        momentum: momentum `mu` in [0, 1).
        l2_weight_decay: coupled weight decay `wd` >= 0, applied to every
            trainable variable (as the reference does).
        nesterov: PyTorch's Nesterov variant (`g = g + mu * b`).
        **kwargs: other `keras.optimizers.Optimizer` arguments; its decoupled
            `weight_decay` is refused to avoid applying decay twice.
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.0,
        l2_weight_decay=0.0,
        nesterov=False,
        name="coupled_sgd",
        **kwargs,
    ):
        if kwargs.get("weight_decay"):
            raise ValueError(
                "CoupledSGD applies `l2_weight_decay` itself; do not also pass the "
                f"decoupled `weight_decay`. Received: weight_decay={kwargs['weight_decay']!r}"
            )
        kwargs.pop("weight_decay", None)
        super().__init__(
            learning_rate=learning_rate,
            momentum=float(momentum),
            nesterov=nesterov,
            name=name,
            **kwargs,
        )
        if not isinstance(l2_weight_decay, (int, float)) or l2_weight_decay < 0:
            raise ValueError(
                "`l2_weight_decay` must be a number >= 0. "
                f"Received: l2_weight_decay={l2_weight_decay!r}"
            )
        self.l2_weight_decay = float(l2_weight_decay)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.l2_weight_decay:
            decay = ops.cast(self.l2_weight_decay, variable.dtype)
            gradient = ops.add(gradient, ops.multiply(decay, variable))
        if self.momentum != 0:
            momentum = ops.cast(self.momentum, variable.dtype)
            buf = self.momentums[self._get_variable_index(variable)]
            self.assign(buf, ops.add(ops.multiply(momentum, buf), gradient))
            if self.nesterov:
                gradient = ops.add(gradient, ops.multiply(momentum, buf))
            else:
                gradient = buf
        self.assign_sub(variable, ops.multiply(learning_rate, gradient))

    def get_config(self):
        config = super().get_config()
        config["l2_weight_decay"] = self.l2_weight_decay
        config.pop("weight_decay", None)
        return config
