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


def restore_float_weights(model_content, float_content, keep_int8):
    """Gives the dynamic-range ops not chosen to stay int8 their float32 weights back.

    A dynamic-range model keeps weights in int8 and activations in float; XNNPACK runs such
    convolutions and dense layers as int8 matrix products on activations it quantizes on the
    fly. That is exact for an input of spikes (0 and 1) but not for real values, and XNNPACK
    has no such kernel for depthwise convolutions at all. Every other hybrid op gets the
    weights of the op at the same place in `float_content`, the float32 conversion of the same
    SavedModel (the converter emits the same ops in the same order; checked), and runs in
    float inside XNNPACK. A weight tensor several ops share (a convolution run once per time
    step) is restored once.

    Args:
        model_content: bytes of the dynamic-range `.tflite` model.
        float_content: bytes of the float32 conversion of the same SavedModel.
        keep_int8: set of `(subgraph index, op index)` of the ops that keep int8 weights
            (`spike_fed_ops`); depthwise convolutions are restored whatever it says.

    Returns:
        `(model_content, names)`: the new model, and the names of the weight tensors stored
        in float.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    def unpack(content):
        return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))

    model, source = unpack(model_content), unpack(float_content)
    names = builtin_names()

    def op_name(tfl, op):
        code = tfl.operatorCodes[op.opcodeIndex]
        return names.get(max(code.builtinCode, code.deprecatedBuiltinCode))

    mismatch = ValueError(
        "`float_content` must be the float32 conversion of the same SavedModel: its ops differ "
        "from the dynamic-range model's"
    )
    if len(model.subgraphs) != len(source.subgraphs):
        raise mismatch
    changed = []
    for g, (subgraph, float_subgraph) in enumerate(zip(model.subgraphs, source.subgraphs)):
        if len(subgraph.operators) != len(float_subgraph.operators):
            raise mismatch
        for o, (op, float_op) in enumerate(zip(subgraph.operators, float_subgraph.operators)):
            name = op_name(model, op)
            if name != op_name(source, float_op):
                raise mismatch
            if name not in _WEIGHTED_OPS or len(op.inputs) < 2:
                continue
            data, weights = (subgraph.tensors[i] for i in op.inputs[:2])
            hybrid = data.type == schema.TensorType.FLOAT32 and weights.type == schema.TensorType.INT8
            if not hybrid or (name != "DEPTHWISE_CONV_2D" and (g, o) in keep_int8):
                continue
            original = float_subgraph.tensors[float_op.inputs[1]]
            if original.type != schema.TensorType.FLOAT32 or list(original.shape) != list(weights.shape):
                raise mismatch
            model.buffers[weights.buffer].data = source.buffers[original.buffer].data
            weights.type = schema.TensorType.FLOAT32
            weights.quantization = None
            changed.append(weights.name.decode())
    builder = flatbuffers.Builder(2 * len(model_content))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), changed


def _stored(model, subgraph, index):
    """Whether a tensor is a constant stored in the model (of any type)."""
    data = model.Buffers(subgraph.Tensors(index).Buffer()).DataAsNumpy()
    return isinstance(data, np.ndarray) and data.size > 0


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


def _spike_ops(model_content):
    """`(model, ops, keys, producers, spikes)`: the schema model, `[(name, op, subgraph)]`,
    their `_op_keys`, `_producers`, and the set of keys of the ops whose output is a spike.

    A spike (`surrogates.heaviside` with gains) ends in a `MINIMUM` with 1 (one gain stage)
    or in a `MUL` with a fused `RELU_N1_TO_1` fed by a `MUL` with a fused `RELU` (the chain of
    small stages of int8 and float16 models).
    """
    from ai_edge_litert import schema_py_generated as schema

    act = schema.ActivationFunctionType
    model = schema.Model.GetRootAsModel(model_content, 0)
    ops = list(iter_ops(model_content))
    keys = _op_keys(model)
    producers = _producers(keys, ops)
    spikes = set()
    for key, (name, op, subgraph) in zip(keys, ops):
        if op.InputsLength() != 2:
            continue
        constants = [_constant(model, subgraph, op.Inputs(i)) for i in range(2)]
        if name == "MINIMUM":
            is_spike = any(c is not None and c.size == 1 and float(c[0]) == 1.0 for c in constants)
        elif name == "MUL" and _fused_activation(op) == act.RELU_N1_TO_1:
            data = [op.Inputs(i) for i in range(2) if constants[i] is None]
            source = producers.get((key[0], data[0])) if len(data) == 1 else None
            is_spike = source is not None and ops[source][0] == "MUL" and _fused_activation(ops[source][1]) == act.RELU
        else:
            continue
        if is_spike:
            spikes.add(key)
    return model, ops, keys, producers, spikes


def _op_keys(model):
    """`(subgraph index, op index)` of every operator, in `iter_ops` order."""
    return [(g, o) for g in range(model.SubgraphsLength()) for o in range(model.Subgraphs(g).OperatorsLength())]


def _producers(keys, ops):
    """`{(subgraph index, tensor index): position in ops}` of every computed tensor."""
    producers = {}
    for position, ((g, _), (_, op, _)) in enumerate(zip(keys, ops)):
        for k in range(op.OutputsLength()):
            producers[(g, op.Outputs(k))] = position
    return producers


# Ops that only move values or pad with zeros (PAD; PADV2 takes a value): their output holds
# spikes when everything they read does.
_MOVES = ("RESHAPE", "PAD", "CONCATENATION", "STRIDED_SLICE", "SLICE")


def spike_fed_ops(model_content):
    """The weighted ops (convolutions, dense layers) whose data input holds spikes only.

    Found in the graph itself: the input is a spike op's output, or comes from spikes through
    ops that only move values (reshapes, zero padding, slices, concatenations of spikes).

    Returns:
        A set of `(subgraph index, op index)`.
    """
    model, ops, keys, producers, spikes = _spike_ops(model_content)
    memo = {}

    def holds_spikes(g, tensor):
        if (g, tensor) in memo:
            return memo[(g, tensor)]
        position = producers.get((g, tensor))
        result = False
        if position is not None:
            name, op, subgraph = ops[position]
            if keys[position] in spikes:
                result = True
            elif name in _MOVES:
                # The data operands; a slice's bounds and a pad's widths are stored constants.
                inputs = [op.Inputs(i) for i in range(op.InputsLength())]
                data = [t for t in inputs if not _stored(model, subgraph, t)]
                result = bool(data) and all(holds_spikes(g, t) for t in data)
        memo[(g, tensor)] = result
        return result

    return {
        key
        for key, (name, op, _) in zip(keys, ops)
        if name in _WEIGHTED_OPS and op.InputsLength() >= 2 and holds_spikes(key[0], op.Inputs(0))
    }


def spike_tensors(model_content):
    """The spike tensors of an exported DTA-SNN and whether int8 holds 0 and 1 exactly.

    In an int8 model a spike tensor must represent both 0 and 1 exactly (0 is the zero point;
    1 needs `1 / scale + zero_point` to be an integer code), or every spike the next
    convolution sees is off.

    Returns:
        A list of dicts with `name`, `scale` and `zero_point` (None for float tensors) and
        `exact` (whether 0 and 1 are both representable).
    """
    from ai_edge_litert import schema_py_generated as schema

    _, ops, keys, _, spikes = _spike_ops(model_content)
    found = []
    for key, (_, op, subgraph) in zip(keys, ops):
        if key not in spikes:
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
