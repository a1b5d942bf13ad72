"""MS-ResNet models."""

from keras_dta.models.ms_resnet import apply_ms_block, ms_resnet, ms_resnet18, ms_resnet34

__all__ = ["apply_ms_block", "ms_resnet", "ms_resnet18", "ms_resnet34"]
