"""Datasets and augmentation for training DTA-SNNs.

- `keras_dta.data.datasets`: the dataset registry (digits, CIFAR-10/100,
  ImageNet, CIFAR10-DVS); the training recipes live in
  `keras_dta.training.presets`.
- `keras_dta.data.mixing`: batch-level MixUp / CutMix for `tf.data`.
- `keras_dta.data.cifar10_dvs`: CIFAR10-DVS from the raw recordings.

Submodules are imported on demand, so importing this package stays cheap.
"""
