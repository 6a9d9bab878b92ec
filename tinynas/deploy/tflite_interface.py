"""Give a quantized ``.tflite`` with a float or uint8 interface its int8 interface.

The TFLite converter's default full-integer recipe (``optimizations=[DEFAULT]``
with a representative dataset, but no ``inference_input_type``) keeps float32
input and output: the int8 network sits between a QUANTIZE and a DEQUANTIZE.
A ``uint8`` interface is the same with QUANTIZE ops that shift by 128. That is
how most tutorials' ``.tflite`` files come out, and the firmware templates, the
MLPerf Tiny protocol and the front ends all feed int8. Removing those edge ops
leaves exactly the int8 network the converter calibrated, with the scale and
zero point of its own first and last int8 tensors, so nothing is re-quantized.
This is what TensorFlow's ``modify_model_interface`` tool does; the pip wheel
does not ship it, so it is done here on the flatbuffer's object API
(``flatbuffer.py``; no TensorFlow import).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinynas.deploy.flatbuffer import pack, unpack
from tinynas.deploy.interpreter import TENSOR_TYPES
from tinynas.errors import ModelFileError

_INT8 = 9  # TensorType.INT8
_QUANTIZE, _DEQUANTIZE = 114, 6  # BuiltinOperator codes


@dataclass(frozen=True)
class InterfaceChange:
    """What ``int8_interface`` removed, for the log and metrics.json."""

    input_was: str
    output_was: str
    removed_ops: tuple[str, ...]

    def describe(self) -> str:
        return (f"its {self.input_was} input and {self.output_was} output were replaced by the int8 tensors "
                f"inside (removed {' and '.join(self.removed_ops)}); the firmware feeds and reads int8")

    def to_json(self) -> dict[str, Any]:
        return {"input_was": self.input_was, "output_was": self.output_was, "removed_ops": list(self.removed_ops)}


def _op_code(model: Any, op: Any) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(int(code.builtinCode), int(code.deprecatedBuiltinCode))  # codes < 127 live in the deprecated field


def _uses(graph: Any, tensor: int) -> list[int]:
    return [i for i, op in enumerate(graph.operators) if tensor in [int(t) for t in op.inputs]]


def _fail(source: str, graph: Any, why: str) -> ModelFileError:
    kinds = [TENSOR_TYPES.get(graph.tensors[int(t)].type, "non-int8") for t in (graph.inputs[0], graph.outputs[0])]
    return ModelFileError(
        f"{source}: input is {kinds[0]} and output is {kinds[1]}, and {why}, so it is not a full-integer model "
        "that TFLite Micro can run in int8; convert it with a representative dataset, TFLITE_BUILTINS_INT8 and "
        "inference_input_type/inference_output_type = tf.int8, or pass the .keras model so tinynas quantizes it"
    )


def int8_interface(model_bytes: bytes, *, source: str = "model") -> tuple[bytes, InterfaceChange | None]:
    """(the model with an int8 input and output, what was removed), or (the bytes, None) when already int8.

    Only a QUANTIZE from the input into an int8 tensor and a DEQUANTIZE (or
    QUANTIZE) from an int8 tensor to the output are removed, and only when
    nothing else reads the float or uint8 tensors. A float network (no
    quantized activations) or a dynamic-range one raises ModelFileError with
    the converter settings that make a full-integer model.
    """
    model = unpack(model_bytes, source=source)
    if len(model.subgraphs or []) != 1 or len(model.subgraphs[0].inputs) != 1 or len(model.subgraphs[0].outputs) != 1:
        raise ModelFileError(f"{source}: deploy takes a model of one subgraph with one input and one output")
    graph = model.subgraphs[0]
    tensors = graph.tensors
    inp, out = int(graph.inputs[0]), int(graph.outputs[0])
    if tensors[inp].type == _INT8 and tensors[out].type == _INT8:
        return bytes(model_bytes), None

    remove: list[int] = []
    removed_names: list[str] = []
    new_in, new_out = inp, out
    if tensors[inp].type != _INT8:
        readers = _uses(graph, inp)
        first = graph.operators[readers[0]] if len(readers) == 1 else None
        if first is None or _op_code(model, first) != _QUANTIZE or tensors[int(first.outputs[0])].type != _INT8:
            raise _fail(source, graph, "the input does not go straight into one QUANTIZE to int8 (a float or "
                                       "dynamic-range model)")
        remove.append(readers[0])
        removed_names.append("the input's QUANTIZE")
        new_in = int(first.outputs[0])
    if tensors[out].type != _INT8:
        writers = [i for i, op in enumerate(graph.operators) if out in [int(t) for t in op.outputs]]
        last = graph.operators[writers[0]] if len(writers) == 1 else None
        if (last is None or _op_code(model, last) not in (_QUANTIZE, _DEQUANTIZE)
                or tensors[int(last.inputs[0])].type != _INT8 or _uses(graph, int(last.inputs[0])) != writers):
            raise _fail(source, graph, "the output does not come straight from one DEQUANTIZE or QUANTIZE of an "
                                       "int8 tensor")
        remove.append(writers[0])
        removed_names.append(f"the output's {'QUANTIZE' if _op_code(model, last) == _QUANTIZE else 'DEQUANTIZE'}")
        new_out = int(last.inputs[0])

    change = InterfaceChange(input_was=TENSOR_TYPES.get(tensors[inp].type, "non-int8"),
                             output_was=TENSOR_TYPES.get(tensors[out].type, "non-int8"),
                             removed_ops=tuple(removed_names))
    graph.operators = [op for i, op in enumerate(graph.operators) if i not in remove]
    graph.inputs, graph.outputs = [new_in], [new_out]
    _drop_unused_tensors(model, graph, renamed={new_in: tensors[inp].name, new_out: tensors[out].name})
    _drop_unused_op_codes(model, graph)
    return pack(model), change


def _drop_unused_tensors(model: Any, graph: Any, *, renamed: dict[int, bytes]) -> None:
    """Remove tensors no operator or interface uses and renumber the rest (signatures included).

    The interface tensors take the old interface's names, so a runtime that
    looks the input up by name (a signature runner) still finds it."""
    used = {int(t) for op in graph.operators for t in list(op.inputs) + list(op.outputs) if int(t) >= 0}
    used |= {int(graph.inputs[0]), int(graph.outputs[0])}
    old_to_new = {old: new for new, old in enumerate(sorted(used))}
    for old, name in renamed.items():
        graph.tensors[old].name = name
    graph.tensors = [graph.tensors[old] for old in sorted(used)]

    def remap(indices: Any) -> list[int]:
        return [old_to_new[int(t)] if int(t) >= 0 else -1 for t in indices]

    for op in graph.operators:
        op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
        if op.intermediates is not None and len(op.intermediates):
            op.intermediates = remap(op.intermediates)
    graph.inputs, graph.outputs = remap(graph.inputs), remap(graph.outputs)
    for signature in model.signatureDefs or []:
        for entry, tensor in ((signature.inputs or [], graph.inputs[0]), (signature.outputs or [], graph.outputs[0])):
            for item in entry:
                item.tensorIndex = tensor


def _drop_unused_op_codes(model: Any, graph: Any) -> None:
    """Keep only the operator codes still used, so the generated op resolver does not register QUANTIZE."""
    used = sorted({int(op.opcodeIndex) for op in graph.operators})
    old_to_new = {old: new for new, old in enumerate(used)}
    model.operatorCodes = [model.operatorCodes[old] for old in used]
    for op in graph.operators:
        op.opcodeIndex = old_to_new[int(op.opcodeIndex)]
