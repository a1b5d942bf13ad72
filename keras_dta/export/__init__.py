"""Export of trained DTA-SNNs: TF SavedModel for serving, TFLite (LiteRT) for edge devices.

Modules, one job each:

- `saved_model`: the SavedModel with a `serve` signature.
- `tflite`: conversion to TFLite builtin ops, and `export_tflite`, the checked pipeline the
  CLI runs (convert, check ops, compare with Keras, write atomically, time).
- `flatbuffer`: reading a `.tflite` file: its ops, their types, the builtin-only check, the
  ops fed by spikes, and giving the others their float weights back.
- `litert`: the LiteRT interpreter (XNNPACK), prediction and timing.
- `parity`: the thresholds an export must pass, the logit comparison, the report table.
- `inputs`: the calibration and held-out data of an export.
- `spikes`: per-LIF-layer spike agreement of an export with the Keras model.
- `fold`: BatchNorm folded into the convolutions, the faster TensorFlow inference graph.
- `frozen`: the fastest TensorFlow inference graph (BatchNorm folded, weights as constants).
- `stepwise`: the inference graph evaluated one time step at a time (the dynamic-range
  TFLite graph: no slicing and joining of spikes between a LIF and its convolution).
- `winograd`: 3x3 convolutions as Winograd F(2x2, 3x3), the faster float32 TFLite graph.
- `graph`: a functional model's wiring layer by layer, and a clone with layers replaced (for
  `fold`, `stepwise` and `winograd`).
- `grid`: the spike-fed layers, and rounding their weights onto the int8 grid, which makes
  the dynamic-range export compute what the float model computes.

Example:

>>> model = keras.saving.load_model("runs/digits/best.keras")
>>> report = keras_dta.export.export_tflite(
...     model, "digits_int8.tflite", quantize="int8",
...     calibration_data=x_train[:100], eval_data=x_test, eval_labels=y_test)
>>> print(keras_dta.export.format_report([report]))
"""

from keras_dta.data.arrays import load_dataset_arrays
from keras_dta.export._common import (
    QUANTIZE_MODES,
    SERVING_ENDPOINT,
    ExportCheckError,
    check_inputs,
    load_model,
)
from keras_dta.export.flatbuffer import check_builtin_ops, float_ops, list_ops
from keras_dta.export.fold import fold_batchnorm, foldable_pairs
from keras_dta.export.frozen import inference_function
from keras_dta.export.grid import int8_grid, off_grid_layers, snap_to_int8_grid, spike_fed_layers
from keras_dta.export.inputs import prepare_export_data
from keras_dta.export.litert import benchmark_tflite, delegate_summary, make_interpreter, tflite_predict
from keras_dta.export.parity import (
    DEFAULT_MAX_ABS_DIFF,
    DEFAULT_MIN_AGREEMENT,
    DEFAULT_MIN_LOGIT_MATCH,
    compare_logits,
    format_report,
    format_spike_agreement,
)
from keras_dta.export.saved_model import export_saved_model
from keras_dta.export.stepwise import stepwise_call
from keras_dta.export.winograd import winograd_convolutions
from keras_dta.export.tflite import convert_to_tflite, export_tflite

__all__ = [
    "DEFAULT_MAX_ABS_DIFF",
    "DEFAULT_MIN_AGREEMENT",
    "DEFAULT_MIN_LOGIT_MATCH",
    "QUANTIZE_MODES",
    "SERVING_ENDPOINT",
    "ExportCheckError",
    "benchmark_tflite",
    "check_builtin_ops",
    "check_inputs",
    "compare_logits",
    "convert_to_tflite",
    "delegate_summary",
    "export_saved_model",
    "export_tflite",
    "float_ops",
    "fold_batchnorm",
    "foldable_pairs",
    "format_report",
    "format_spike_agreement",
    "inference_function",
    "int8_grid",
    "list_ops",
    "load_dataset_arrays",
    "load_model",
    "make_interpreter",
    "off_grid_layers",
    "prepare_export_data",
    "snap_to_int8_grid",
    "spike_fed_layers",
    "stepwise_call",
    "tflite_predict",
    "winograd_convolutions",
]
