"""MS-ResNet models.

`keras_dta.models.ms_resnet` is the module; its generic builder, the `MSResNet` class, is
also exported as `build_ms_resnet`.
"""

from keras_dta.models import ms_resnet
from keras_dta.models.ms_resnet import ATTENTION_KINDS, MSResNet, apply_ms_block, ms_resnet18, ms_resnet34

build_ms_resnet = MSResNet

#: The model functions a configuration or the converter may name.
MODEL_NAMES = ("ms_resnet18", "ms_resnet34")

__all__ = [
    "ATTENTION_KINDS",
    "MODEL_NAMES",
    "MSResNet",
    "apply_ms_block",
    "build_ms_resnet",
    "ms_resnet",
    "ms_resnet18",
    "ms_resnet34",
]
