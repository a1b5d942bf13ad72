"""Reading a TFLite flatbuffer: its operators, their tensor types, and the builtin-only check.

Everything here reads the model's bytes with the flatbuffer schema, without an interpreter,
so it works on models the interpreter could not load.
"""

import collections
import functools

import numpy as np

from keras_dta.export._common import ExportCheckError


@functools.lru_cache(maxsize=None)
def builtin_names():
    """`{builtin operator code: name}` from the TFLite schema."""
    from ai_edge_litert import schema_py_generated as schema

    return {
        value: name
        for name, value in vars(schema.BuiltinOperator).items()
        if not name.startswith("_") and isinstance(value, int)
    }


def iter_ops(model_content):
    """Yields `(name, op, subgraph)` for every operator of every subgraph.

    `name` is the builtin name (`CONV_2D`, `GREATER`) or, for a custom op (Flex ops
    included), its custom code (`FlexErf`). `op` and `subgraph` are the schema objects.
    """
    from ai_edge_litert import schema_py_generated as schema

    names = builtin_names()
    tfl = schema.Model.GetRootAsModel(model_content, 0)
    codes = []
    for i in range(tfl.OperatorCodesLength()):
        code = tfl.OperatorCodes(i)
        # Old models keep the code in the deprecated int8 field; the larger one is right.
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            codes.append((code.CustomCode() or b"<unnamed custom>").decode())
        else:
            codes.append(names.get(builtin, f"BUILTIN_{builtin}"))
    for g in range(tfl.SubgraphsLength()):
        subgraph = tfl.Subgraphs(g)
        for o in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(o)
            yield codes[op.OpcodeIndex()], op, subgraph


def list_ops(model_content):
    """Counts the operators of a TFLite model by name, over all subgraphs.

    Args:
        model_content: bytes of a `.tflite` model.

    Returns:
        A `collections.Counter` of op names (see `iter_ops`).
    """
    return collections.Counter(name for name, _, _ in iter_ops(model_content))


def float_ops(model_content):
    """Counts the ops of a TFLite model whose output is float32, by name.

    For a full-integer model these are the ops left in float, with the QUANTIZE/DEQUANTIZE
    ops at their borders.
    """
    from ai_edge_litert import schema_py_generated as schema

    return collections.Counter(
        name
        for name, op, subgraph in iter_ops(model_content)
        if op.OutputsLength() and subgraph.Tensors(op.Outputs(0)).Type() == schema.TensorType.FLOAT32
    )


def check_builtin_ops(model_content):
    """Raises `ExportCheckError` unless the model holds TFLite builtin ops only.

    A Flex op (from `SELECT_TF_OPS`) needs the TensorFlow runtime on the device; any custom
    op needs a kernel the device does not have; a `WHILE` means the LIF loop was not unrolled.

    Args:
        model_content: bytes of a `.tflite` model.

    Returns:
        The op counts, as `list_ops`.
    """
    ops = list_ops(model_content)
    names = set(builtin_names().values())
    flex = sorted(op for op in ops if op.startswith("Flex"))
    custom = sorted(op for op in ops if op not in names and op not in flex)
    if flex or custom:
        raise ExportCheckError(
            f"The TFLite model needs ops outside the builtin set: Flex ops {flex}, custom ops "
            f"{custom}. Every layer of a DTA-SNN should lower to builtins."
        )
    if "WHILE" in ops:
        raise ExportCheckError(
            "The TFLite model holds a WHILE loop: the LIF time loop was not unrolled. "
            "Export models with a static number of time steps T."
        )
    return ops


# Ops whose int8 weights with float input make a "hybrid" (dynamic-range) kernel.
_WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def restore_float_weights(model_content, float_content, select):
    """Gives chosen dynamic-range ops their float32 weights back.

    A dynamic-range model keeps weights in int8 and activations in float; XNNPACK runs such
    convolutions and dense layers as int8 matrix products on activations it quantizes on the
    fly. That is exact for an input of spikes (0 and 1) but not for real values, and XNNPACK
    has no such kernel for depthwise convolutions at all. The chosen ops get the weights of
    the same tensor in `float_content`, the float32 conversion of the same SavedModel, and
    run in float inside XNNPACK.

    Args:
        model_content: bytes of the dynamic-range `.tflite` model.
        float_content: bytes of the float32 conversion of the same model (same tensor names).
        select: callable `(op_name, weight_tensor_name) -> bool` choosing the ops.

    Returns:
        `(model_content, names)`: the new model, and the names of the weight tensors stored
        in float.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    def unpack(content):
        return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))

    model, source = unpack(model_content), unpack(float_content)
    originals = {tensor.name: tensor for tensor in source.subgraphs[0].tensors}
    names = builtin_names()
    changed = []
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode))
            if name not in _WEIGHTED_OPS or len(op.inputs) < 2:
                continue
            data, weights = (subgraph.tensors[i] for i in op.inputs[:2])
            hybrid = data.type == schema.TensorType.FLOAT32 and weights.type == schema.TensorType.INT8
            if not hybrid or not select(name, weights.name.decode()):
                continue
            original = originals.get(weights.name)
            if original is None or original.type != schema.TensorType.FLOAT32 or list(original.shape) != list(weights.shape):
                raise ValueError(
                    "`float_content` must be the float32 conversion of the same model: it has no "
                    f"float32 tensor {weights.name.decode()!r} of shape {list(weights.shape)}"
                )
            model.buffers[weights.buffer].data = source.buffers[original.buffer].data
            weights.type = schema.TensorType.FLOAT32
            weights.quantization = None
            changed.append(weights.name.decode())
    builder = flatbuffers.Builder(2 * len(model_content))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), changed


def _constant(model, subgraph, index):
    """The float value(s) of a constant tensor, or None for a computed one."""
    from ai_edge_litert import schema_py_generated as schema

    tensor = subgraph.Tensors(index)
    data = model.Buffers(tensor.Buffer()).DataAsNumpy()
    if not isinstance(data, np.ndarray) or data.size == 0:
        return None
    if tensor.Type() == schema.TensorType.FLOAT32:
        return np.frombuffer(data.tobytes(), np.float32)
    if tensor.Type() == schema.TensorType.INT8:
        quant = tensor.Quantization()
        return (np.frombuffer(data.tobytes(), np.int8).astype("int32") - quant.ZeroPoint(0)) * quant.Scale(0)
    return None


def _fused_activation(op):
    """The fused activation of a MUL op (`ActivationFunctionType`)."""
    from ai_edge_litert import schema_py_generated as schema

    table = op.BuiltinOptions()
    if table is None:
        return schema.ActivationFunctionType.NONE
    options = schema.MulOptions()
    options.Init(table.Bytes, table.Pos)
    return options.FusedActivationFunction()


def spike_tensors(model_content):
    """The spike tensors of an exported DTA-SNN and whether int8 holds 0 and 1 exactly.

    A spike (`surrogates.heaviside` with gains) ends in a `MINIMUM` with 1 (one gain stage)
    or in a `MUL` with a fused `RELU_N1_TO_1` fed by a `MUL` with a fused `RELU` (the chain of
    small stages of int8 and float16 models). In an int8 model its output must represent both
    0 and 1 exactly (0 is the zero point; 1 needs `1 / scale + zero_point` to be an integer
    code), or every spike the next convolution sees is off.

    Returns:
        A list of dicts with `name`, `scale` and `zero_point` (None for float tensors) and
        `exact` (whether 0 and 1 are both representable).
    """
    from ai_edge_litert import schema_py_generated as schema

    act = schema.ActivationFunctionType
    model = schema.Model.GetRootAsModel(model_content, 0)
    ops = list(iter_ops(model_content))
    producers = {}
    for name, op, subgraph in ops:
        for k in range(op.OutputsLength()):
            producers[(id(subgraph), op.Outputs(k))] = (name, op)
    found = []
    for name, op, subgraph in ops:
        if op.InputsLength() != 2:
            continue
        constants = [_constant(model, subgraph, op.Inputs(i)) for i in range(2)]
        if name == "MINIMUM":
            is_spike = any(c is not None and c.size == 1 and float(c[0]) == 1.0 for c in constants)
        elif name == "MUL" and _fused_activation(op) == act.RELU_N1_TO_1:
            data = [op.Inputs(i) for i in range(2) if constants[i] is None]
            source = producers.get((id(subgraph), data[0])) if len(data) == 1 else None
            is_spike = source is not None and source[0] == "MUL" and _fused_activation(source[1]) == act.RELU
        else:
            continue
        if not is_spike:
            continue
        tensor = subgraph.Tensors(op.Outputs(0))
        quant = tensor.Quantization()
        scale = zero = None
        exact = True
        if tensor.Type() == schema.TensorType.INT8 and quant is not None and quant.ScaleLength():
            scale, zero = float(quant.Scale(0)), int(quant.ZeroPoint(0))
            one = 1.0 / scale + zero
            exact = abs(one - round(one)) < 1e-3 and -128 <= round(one) <= 127 and -128 <= zero <= 127
        found.append({"name": tensor.Name().decode(), "scale": scale, "zero_point": zero, "exact": exact})
    return found
