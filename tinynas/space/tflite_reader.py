"""Read an int8 ``.tflite`` flatbuffer into the same ``Graph`` the spaces build, without TensorFlow.

So any existing model (the MLPerf Tiny references, a user's own file) can be
costed on any board (`tinynas estimate`), and deploy/measure can learn a model's
input and output quantization (``tflite_info``). Uses the flatbuffer schema
module that ships in the ``tflite-micro`` wheel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinynas.errors import ModelFileError
from tinynas.space.graph import Graph, Op, Tensor

log = logging.getLogger(__name__)

# TFLite TensorType enum -> our dtype names (schema.fbs).
_DTYPES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16",
    9: "int8", 10: "float64",
}
_ACTIVATIONS = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh", 5: "sign_bit"}
_PADDING = {0: "same", 1: "valid"}
_QUANTIZED = ("int8", "uint8", "int16")
# Ops whose cost the cost model knows; any other builtin is costed generically (with a warning).
KNOWN_OPS = frozenset({
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN",
    "RESHAPE", "SOFTMAX", "ADD", "RELU", "RELU6", "QUANTIZE", "DEQUANTIZE", "MUL", "PAD", "CONCATENATION",
    "LOGISTIC", "TANH", "SQUEEZE", "EXPAND_DIMS", "STRIDED_SLICE", "SUB", "HARD_SWISH",
    "BATCH_MATMUL", "TRANSPOSE", "SQUARED_DIFFERENCE", "RSQRT",
})


@dataclass(frozen=True)
class TensorInfo:
    """An input or output of a model: what a caller must feed or will read, and its int8 mapping
    (``real = scale * (q - zero_point)``; scale 0 means not quantized)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "scale": self.scale, "zero_point": self.zero_point}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TensorInfo":
        return cls(name=str(data["name"]), shape=tuple(int(d) for d in data["shape"]), dtype=str(data["dtype"]),
                   scale=float(data["scale"]), zero_point=int(data["zero_point"]))


@dataclass(frozen=True)
class TFLiteInfo:
    """What deploy and measure need to know of a model file without running it."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    op_kinds: tuple[str, ...]  # distinct builtin ops, first-use order (for the op resolver)
    file_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs],
                "op_kinds": list(self.op_kinds), "file_bytes": self.file_bytes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TFLiteInfo":
        return cls(inputs=tuple(TensorInfo.from_json(t) for t in data["inputs"]),
                   outputs=tuple(TensorInfo.from_json(t) for t in data["outputs"]),
                   op_kinds=tuple(data["op_kinds"]), file_bytes=int(data["file_bytes"]))


def _load(path_or_bytes: str | Path | bytes | bytearray) -> tuple[bytes, str]:
    """The file's bytes and a label for messages; ModelFileError if it is not a flatbuffer model."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data, label = bytes(path_or_bytes), "<model bytes>"
    else:
        path = Path(path_or_bytes)
        label = str(path)
        if not path.is_file():
            raise ModelFileError(f"{label}: no such file (give the path of an int8 .tflite model)")
        data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFileError(f"{label}: not a TFLite flatbuffer (bytes 4..7 are {data[4:8]!r}, expected b'TFL3'); "
                             + _convert_hint(data, label))
    return data, label


def _convert_hint(data: bytes, label: str) -> str:
    """How to get an int8 .tflite from what the file is: the formats an engineer hands over by mistake."""
    # a GPU's deploy writes ONNX: the board named must be a microcontroller or a phone-class one
    deploy = "quantizes {} to the int8 model_int8.tflite this reads (for a microcontroller or a phone-class BOARD; " \
             "for a GPU it writes ONNX)"
    if data[:4] == b"PK\x03\x04":
        return "it is a zip archive, as a Keras .keras model is: `tinynas deploy MODEL.keras --profile BOARD` " + \
            deploy.format("it")
    if data[:4] == b"\x89HDF":
        return "it is an HDF5 file, as a legacy Keras .h5 model is: `tinynas deploy MODEL.h5 --profile BOARD` " + \
            deploy.format("it")
    if label.lower().endswith(".onnx"):
        return ("it is an ONNX model, which tinynas writes for GPUs but does not read: `tinynas deploy MODEL.keras "
                "--profile BOARD` " + deploy.format("the network's .keras"))
    return "convert the model to .tflite first"


def _parse(data: bytes, label: str) -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    try:
        model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0))
    except Exception as exc:  # a corrupt flatbuffer raises anything from struct.error to IndexError
        raise ModelFileError(f"{label}: the flatbuffer is corrupt ({type(exc).__name__}: {exc})") from None
    if not model.subgraphs:
        raise ModelFileError(f"{label}: the model has no subgraph")
    return model


def _op_names() -> dict[int, str]:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    return {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def _opcode_name(code: Any, names: dict[int, str]) -> str:
    builtin = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))
    if builtin == 32:  # CUSTOM
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
        return f"CUSTOM:{custom}"
    return names.get(builtin, f"BUILTIN_{builtin}")


def _quant(t: Any) -> tuple[float, int, int]:
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return 0.0, 0, 0
    zp = 0 if q.zeroPoint is None or len(q.zeroPoint) == 0 else int(q.zeroPoint[0])
    return float(q.scale[0]), zp, len(q.scale)


def _tensor_names(sub: Any) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for i, t in enumerate(sub.tensors or []):
        name = t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name or "")
        if not name or name in seen:
            name = f"{name or 'tensor'}#{i}"
        seen.add(name)
        names.append(name)
    return names


def _attrs(kind: str, op: Any, tensors: list[Any]) -> dict[str, Any]:
    o = op.builtinOptions
    a: dict[str, Any] = {}
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(op.inputs) > 1:
        wshape = tuple(int(d) for d in tensors[op.inputs[1]].shape)
        a["kernel"] = (wshape[1], wshape[2])
        if kind == "CONV_2D":
            a["filters"] = wshape[0]
        if o is not None:
            a.update(stride=(o.strideH, o.strideW), padding=_PADDING.get(o.padding, "same"),
                     activation=_ACTIVATIONS.get(o.fusedActivationFunction),
                     dilation=(o.dilationHFactor or 1, o.dilationWFactor or 1))
            if kind == "DEPTHWISE_CONV_2D":
                a["depth_multiplier"] = int(o.depthMultiplier or 1)
        a["batch_norm"] = False
    elif kind == "FULLY_CONNECTED":
        a["units"] = int(tensors[op.outputs[0]].shape[-1])
        if o is not None:
            a["activation"] = _ACTIVATIONS.get(o.fusedActivationFunction)
    elif kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D") and o is not None:
        a.update(pool=(o.filterHeight, o.filterWidth), stride=(o.strideH, o.strideW),
                 padding=_PADDING.get(o.padding, "valid"), activation=_ACTIVATIONS.get(o.fusedActivationFunction))
    elif kind == "MEAN":
        a["keepdims"] = bool(o.keepDims) if o is not None else False
    elif kind == "RESHAPE":
        a["shape"] = tuple(int(d) for d in tensors[op.outputs[0]].shape)
    elif kind == "SOFTMAX":
        a["beta"] = float(o.beta) if o is not None else 1.0
    elif kind in ("ADD", "SUB", "MUL") and o is not None and hasattr(o, "fusedActivationFunction"):
        a["activation"] = _ACTIVATIONS.get(o.fusedActivationFunction)
    elif kind == "BATCH_MATMUL":
        a["adj_x"] = bool(getattr(o, "adjX", False)) if o is not None else False
        a["adj_y"] = bool(getattr(o, "adjY", False)) if o is not None else False
    elif kind == "CONCATENATION" and o is not None:
        a.update(axis=int(o.axis), activation=_ACTIVATIONS.get(o.fusedActivationFunction))
    return a


def _mark_batch_norms(ops: list[Op], tensors: dict[str, Tensor]) -> None:
    """A MUL by a per-channel constant and the ADD of a per-channel constant after it are what the
    converter writes for a BatchNormalization nothing absorbed: mark them as the builder does."""
    def channel_constant(op: Op) -> bool:
        consts = [tensors[n] for n in op.inputs if n and tensors[n].constant]
        channels = tensors[op.outputs[0]].shape[-1]
        return len(consts) == 1 and channels > 1 and tuple(consts[0].shape) == (channels,)

    scaled = set()
    for op in ops:
        if op.kind == "MUL" and channel_constant(op):
            op.attrs["norm"] = "batch"
            scaled.add(op.outputs[0])
        elif op.kind == "ADD" and op.inputs[0] in scaled and channel_constant(op):
            op.attrs["constant"] = "batch_norm"


def read_tflite(path_or_bytes: str | Path | bytes | bytearray) -> Graph:
    """The Graph of the first subgraph of an int8 ``.tflite`` model.

    Tensors keep the file's names (made unique), shapes and dtypes; a tensor is
    ``constant`` when its buffer holds data. Ops are named by builtin op name;
    custom or unknown ops are kept (the cost model prices them generically) with
    a warning. Raises ModelFileError for a missing file, a file that is not a
    TFLite flatbuffer, or a float model (quantize it first).
    """
    data, label = _load(path_or_bytes)
    model = _parse(data, label)
    sub = model.subgraphs[0]
    if len(model.subgraphs) > 1:
        log.warning("%s has %d subgraphs; only the first (main) one is read", label, len(model.subgraphs))
    names = _op_names()
    kinds = [_opcode_name(c, names) for c in (model.operatorCodes or [])]
    tnames = _tensor_names(sub)
    buffers = model.buffers or []
    tensors: dict[str, Tensor] = {}
    quantized = False
    for i, t in enumerate(sub.tensors or []):
        dtype = _DTYPES.get(int(t.type))
        if dtype is None:
            raise ModelFileError(f"{label}: tensor {tnames[i]!r} has an unsupported type (TensorType {t.type})")
        buf = buffers[t.buffer] if t.buffer is not None and 0 < t.buffer < len(buffers) else None
        constant = buf is not None and ((buf.data is not None and len(buf.data) > 0) or (buf.size or 0) > 0)
        _, _, nq = _quant(t)
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        tensors[tnames[i]] = Tensor(name=tnames[i], shape=shape, dtype=dtype, constant=constant, quant_channels=nq)
        if dtype in _QUANTIZED and nq and not constant:
            quantized = True
    if not quantized:
        raise ModelFileError(
            f"{label}: a float model (no quantized activations); quantize it to int8 first, "
            "e.g. with `tinynas deploy`"
        )
    ops: list[Op] = []
    unknown: set[str] = set()
    for op in sub.operators or []:
        kind = kinds[op.opcodeIndex] if op.opcodeIndex < len(kinds) else f"BUILTIN_{op.opcodeIndex}"
        if kind not in KNOWN_OPS:
            unknown.add(kind)
        ins = tuple(tnames[j] if j >= 0 else "" for j in (op.inputs if op.inputs is not None else ()))
        outs = tuple(tnames[j] for j in (op.outputs if op.outputs is not None else ()))
        ops.append(Op(kind=kind, inputs=ins, outputs=outs, attrs=_attrs(kind, op, sub.tensors)))
    _mark_batch_norms(ops, tensors)
    if unknown:
        log.warning("%s uses ops the cost model prices generically: %s", label, ", ".join(sorted(unknown)))
    name = Path(label).stem if not label.startswith("<") else "model"
    return Graph(tensors=tensors, ops=ops, inputs=[tnames[j] for j in sub.inputs],
                 outputs=[tnames[j] for j in sub.outputs], name=name)


def tflite_info(path_or_bytes: str | Path | bytes | bytearray) -> TFLiteInfo:
    """Inputs and outputs (shape, dtype, scale, zero point), op kinds and size of a ``.tflite`` model.

    Works for float models too (scale 0). Raises ModelFileError like ``read_tflite``.
    """
    data, label = _load(path_or_bytes)
    model = _parse(data, label)
    sub = model.subgraphs[0]
    tnames = _tensor_names(sub)
    names = _op_names()
    kinds = [_opcode_name(c, names) for c in (model.operatorCodes or [])]

    def info(j: int) -> TensorInfo:
        t = sub.tensors[j]
        scale, zp, _ = _quant(t)
        return TensorInfo(name=tnames[j], shape=tuple(int(d) for d in t.shape), dtype=_DTYPES.get(int(t.type), "?"),
                          scale=scale, zero_point=zp)

    seen: dict[str, None] = {}
    for op in sub.operators or []:
        seen.setdefault(kinds[op.opcodeIndex], None)
    return TFLiteInfo(inputs=tuple(info(j) for j in sub.inputs), outputs=tuple(info(j) for j in sub.outputs),
                      op_kinds=tuple(seen), file_bytes=len(data))
