"""Reading a TFLite flatbuffer: its operators, their tensor types, and the builtin-only check.

Everything here reads the model's bytes with the flatbuffer schema, without an interpreter,
so it works on models the interpreter could not load.
"""

import collections
import functools

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
