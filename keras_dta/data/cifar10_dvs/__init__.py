"""CIFAR10-DVS from the raw event recordings, as a `tf.data` pipeline.

The dataset is read from the raw release: ten zips, one per class, of files
`cifar10_<class>_<i>.aedat` (`i` = 0..999). `DIR` may hold either the zips
(`DIR/airplane.zip`, ...) or the extracted class folders
(`DIR/airplane/cifar10_airplane_0.aedat`, ...); nothing is downloaded.

The first call integrates every recording into `T` frames ("split by
number", see `keras_dta.data.aedat.integrate_frames`), resizes them and caches
them under `DIR/keras_dta_cache/T{T}_{image_size}_{order}/` as ZLIB-compressed
TFRecord files, one per split. Later calls only stream the cache. Each cache
file is written to a temporary name and moved into place with `os.replace`,
and `meta.json`, written last, marks the cache complete; delete the folder to
rebuild it.

Split: there is no official one. The one every published number uses (the
DTA authors' included) is SpikingJelly's `split_to_train_test_set(0.9, ...)`
over its `DatasetFolder`, which lists each class's files sorted by name as
strings (`cifar10_airplane_0`, `_1`, `_10`, `_100`, ...): per class the first
`ceil(0.9 n)` in that order train, the rest test. That is the default
(`order="name"`, the split SpikingJelly and the published results use);
`order="numeric"` sorts by the integer `i` instead, which gives a different
test tenth.

Example:

```python
from keras_dta.data import cifar10_dvs

train = cifar10_dvs.load("/data/cifar10_dvs", "train", T=10, seed=0)
test = cifar10_dvs.load("/data/cifar10_dvs", "test", T=10)
steps = math.ceil(cifar10_dvs.num_examples("/data/cifar10_dvs", "train") / 64)
```

Modules: `recordings` (listing and the split), `frames` (decoding and resizing),
`cache` (the TFRecord cache), `augmentation` (event augmentation), `pipeline` (`load`).

Reference:
    - [CIFAR10-DVS: An Event-Stream Dataset for Object Classification](
      https://doi.org/10.3389/fnins.2017.00309) (Li et al., 2017)
    - [Neuromorphic Data Augmentation for Training Spiking Neural Networks](
      https://arxiv.org/abs/2203.06145) (Li et al., 2022): the event
      augmentation policy.
"""

from keras_dta.data.cifar10_dvs.augmentation import (
    AUGMENT_OPS,
    CUTOUT_AREA,
    ROTATE_MAX_DEGREES,
    SHEAR_MAX,
    TRANSLATE_MAX,
    apply_op,
    augment,
)
from keras_dta.data.cifar10_dvs.cache import CACHE_DIRNAME, build_cache, cache_dir, num_examples
from keras_dta.data.cifar10_dvs.frames import (
    CHANNELS,
    input_shape,
    recording_to_frames,
    resize_frames,
)
from keras_dta.data.cifar10_dvs.pipeline import (
    CUTMIX_ALPHA,
    MIX_PROB,
    MIX_SWITCH_PROB,
    MIXUP_ALPHA,
    load,
)
from keras_dta.data.cifar10_dvs.recordings import (
    CLASSES,
    NUM_CLASSES,
    SPLIT_ORDERS,
    SPLITS,
    list_recordings,
    split_recordings,
)

__all__ = [
    "AUGMENT_OPS",
    "CACHE_DIRNAME",
    "CHANNELS",
    "CLASSES",
    "CUTMIX_ALPHA",
    "CUTOUT_AREA",
    "MIXUP_ALPHA",
    "MIX_PROB",
    "MIX_SWITCH_PROB",
    "NUM_CLASSES",
    "ROTATE_MAX_DEGREES",
    "SHEAR_MAX",
    "SPLITS",
    "SPLIT_ORDERS",
    "TRANSLATE_MAX",
    "apply_op",
    "augment",
    "build_cache",
    "cache_dir",
    "input_shape",
    "list_recordings",
    "load",
    "num_examples",
    "recording_to_frames",
    "resize_frames",
    "split_recordings",
]
