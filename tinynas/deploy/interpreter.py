"""Run int8 ``.tflite`` models in the real TensorFlow Lite Micro interpreter from Python.

Sits after quantization in the deploy pipeline: ``validate.py`` measures int8
accuracy with it, and the measurement side reuses ``output_agreement`` to compare
a board's (or the emulator's) outputs with the host's, in int8 steps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinynas.errors import DeployError, ModelFileError

log = logging.getLogger(__name__)

# TFLite's flatbuffer file identifier sits at bytes 4..8 of every valid model.
_TFLITE_IDENTIFIER = b"TFL3"
# The first arena the interpreter tries when the caller gives none; it grows by 4x
# until allocation succeeds. Starting well above 1 KiB avoids the crashes that
# tiny arenas have caused in the TFLM Python binding (REFERENCE.md section 1).
_FIRST_ARENA_BYTES = 256 * 1024
_MAX_ARENA_BYTES = 1 << 30

# TensorType enum of the TFLite schema (schema.fbs), the ones an MCU model may carry.
TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8"}


@dataclass(frozen=True)
class TensorQuant:
    """An input or output tensor of a model: shape (batch included), dtype and per-tensor quantization."""

    shape: tuple[int, ...]
    dtype: str
    scale: float  # 0.0 for an unquantized tensor
    zero_point: int

    def to_json(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TensorQuant":
        return cls(shape=tuple(int(d) for d in data["shape"]), dtype=str(data["dtype"]),
                   scale=float(data["scale"]), zero_point=int(data["zero_point"]))


@dataclass(frozen=True)
class ModelIO:
    """The single input and output of a ``.tflite`` model, read from its flatbuffer."""

    input: TensorQuant
    output: TensorQuant

    @property
    def is_int8(self) -> bool:
        return self.input.dtype == "int8" and self.output.dtype == "int8"

    def to_json(self) -> dict[str, Any]:
        return {"input": self.input.to_json(), "output": self.output.to_json()}


def check_model_file(model_bytes: bytes, *, source: str = "model") -> None:
    """ModelFileError naming ``source`` unless the bytes are a whole TFLite flatbuffer.

    Checks the 'TFL3' identifier, that every operator and tensor table parses and that
    no weight buffer runs past the end (a truncated copy), for models of any input count.
    """
    data = bytes(model_bytes)
    if len(data) < 8 or data[4:8] != _TFLITE_IDENTIFIER:
        raise ModelFileError(
            f"{source}: not a TFLite flatbuffer (bytes 4..7 should be 'TFL3', file has {len(data)} bytes); "
            "pass a .tflite written by the TFLite converter or `tinynas deploy` (or the .keras model)"
        )
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

    try:
        model = schema_fb.Model.GetRootAsModel(data, 0)
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            code.BuiltinCode(), code.DeprecatedBuiltinCode(), code.Version()
        for g in range(model.SubgraphsLength()):
            graph = model.Subgraphs(g)
            graph.InputsAsNumpy(), graph.OutputsAsNumpy()
            for i in range(graph.OperatorsLength()):
                op = graph.Operators(i)
                op.OpcodeIndex(), op.InputsAsNumpy(), op.OutputsAsNumpy(), op.BuiltinOptionsType()
            for i in range(graph.TensorsLength()):
                tensor = graph.Tensors(i)
                tensor.ShapeAsNumpy(), tensor.Type(), tensor.Buffer(), tensor.Quantization()
        _check_buffers(model, len(data), source=source)
    except ModelFileError:
        raise
    except Exception as exc:  # flatbuffers raises struct/index/value errors on truncated or corrupt data
        raise ModelFileError(
            f"{source}: corrupt or truncated TFLite flatbuffer ({type(exc).__name__}: {exc}); "
            "copy or re-export the model"
        ) from None


def read_model_io(model_bytes: bytes, *, source: str = "model") -> ModelIO:
    """Input/output shapes, dtypes and quantization of a ``.tflite`` flatbuffer.

    Parses the flatbuffer in Python (the schema module ships with tflite-micro),
    so a corrupt file is a ``ModelFileError`` here instead of a crash inside the
    C++ interpreter. ``source`` names the file in messages.
    """
    data = bytes(model_bytes)
    check_model_file(data, source=source)
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

    try:
        model = schema_fb.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("the model has no subgraph")
        graph = model.Subgraphs(0)
        if graph.InputsLength() != 1 or graph.OutputsLength() != 1:
            raise ValueError(
                f"deploy supports one input and one output, the model has {graph.InputsLength()} "
                f"inputs and {graph.OutputsLength()} outputs"
            )
        tensors = [_tensor_quant(graph.Tensors(graph.Inputs(0))), _tensor_quant(graph.Tensors(graph.Outputs(0)))]
    except ValueError as exc:
        raise ModelFileError(f"{source}: {exc}; pass a single-input, single-output classifier") from None
    except Exception as exc:  # flatbuffers raises struct/index errors on truncated or corrupt data
        raise ModelFileError(
            f"{source}: corrupt TFLite flatbuffer ({type(exc).__name__}: {exc}); "
            "re-export the model or pass the .keras file instead"
        ) from None
    return ModelIO(input=tensors[0], output=tensors[1])


def _check_buffers(model: Any, size: int, *, source: str) -> None:
    """ModelFileError when a weight buffer ends past the end of the file.

    A cut-off download or copy keeps the flatbuffer's tables (they come first) and loses
    weights at the end; TFLite Micro would then fail to allocate at every arena size,
    which reads like a memory problem. The buffers' own offsets say what is missing.
    """
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        length = buffer.DataLength()
        if length:
            start = buffer._tab.Vector(buffer._tab.Offset(4))  # Buffer.data is field 0 (vtable slot 4)
            end = start + length
        elif buffer.Offset() > 1:  # weights stored after the flatbuffer (models over 2 GB)
            end = buffer.Offset() + buffer.Size()
        else:
            continue
        if end > size:
            raise ModelFileError(
                f"{source}: truncated .tflite file: weight buffer {i} ends at byte {end} but the file has "
                f"{size} bytes; copy or download the model again"
            )


def check_tflm_aborts(model_bytes: bytes, *, source: str = "model") -> None:
    """ModelFileError for a model that TFLite Micro would stop the program on while preparing it.

    TFLM checks some quantization parameters with TFLITE_CHECK, which aborts: the whole
    process here (the Python binding), and the board in firmware. The one that a
    converted model meets: an int8 SOFTMAX needs ``beta * input_scale * 2**26 > 1``
    (``PreprocessSoftmaxScaling``), so logits that barely vary over the calibration
    data (an untrained model, or outputs that collapsed) give a model no board can run.
    """
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

    model = schema_fb.Model.GetRootAsModel(bytes(model_bytes), 0)
    codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(model.OperatorCodesLength())]
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            if codes[op.OpcodeIndex()] != schema_fb.BuiltinOperator.SOFTMAX:
                continue
            tensor = graph.Tensors(op.Inputs(0))
            quant = _tensor_quant(tensor)
            if quant.dtype != "int8" or quant.scale <= 0:
                continue
            options, beta = op.BuiltinOptions(), 1.0
            if options is not None:
                softmax = schema_fb.SoftmaxOptions()
                softmax.Init(options.Bytes, options.Pos)
                beta = float(softmax.Beta())
            if beta * quant.scale * 2.0 ** 26 <= 1.0:
                name = (tensor.Name() or b"").decode("utf-8", "replace")  # deploy strips the names
                what = repr(name) if name else f"(tensor {op.Inputs(0)})"
                raise ModelFileError(
                    f"{source}: the SOFTMAX input {what} has scale {quant.scale:.3g} (beta {beta:g}); TFLite Micro "
                    f"needs beta x scale above {2.0 ** -26:.3g} and aborts below it, on the board too. The logits "
                    "barely vary over the calibration data: train the model (or check that the representative "
                    "data are real inputs) and quantize it again"
                )


# Keras activations whose int8 ops TFLite Micro lacks, and what runs instead (the first ops to check).
_UNSUPPORTED_HINT = ("Keras's gelu, selu and softplus activations become such ops; relu, relu6, hard_swish, swish, "
                     "elu, leaky_relu, tanh and sigmoid run in int8")


def check_tflm_ops(model_bytes: bytes, *, source: str) -> None:
    """DeployError naming each op of the model that TFLite Micro has no kernel for.

    Without it the arena search tries every size up to 64 MiB, and then can only
    guess why none worked."""
    from tinynas.deploy.codegen import TFLM_BUILTIN_OPS
    from tinynas.space.tflite_reader import tflite_info

    missing = [kind for kind in tflite_info(model_bytes).op_kinds if kind not in TFLM_BUILTIN_OPS]
    if missing:
        raise DeployError(f"{source}: the model uses {', '.join(missing)}, which TFLite Micro has no kernel for; "
                          f"{_UNSUPPORTED_HINT}: replace the layer or activation and train again")


def _tensor_quant(tensor: Any) -> TensorQuant:
    shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
    dtype = TENSOR_TYPES.get(tensor.Type(), f"type{tensor.Type()}")
    q = tensor.Quantization()
    scale, zero_point = 0.0, 0
    if q is not None and q.ScaleLength() > 0:
        scale = float(q.Scale(0))
        zero_point = int(q.ZeroPoint(0)) if q.ZeroPointLength() > 0 else 0
    return TensorQuant(shape=shape, dtype=dtype, scale=scale, zero_point=zero_point)


def require_int8(model_bytes: bytes, *, source: str = "model") -> ModelIO:
    """``read_model_io`` that also refuses models whose input or output is not int8.

    A float-only (or float-in/float-out) ``.tflite`` cannot run on an int8 MCU
    build: the message says to quantize it or to pass the ``.keras`` model.
    """
    io = read_model_io(model_bytes, source=source)
    if not io.is_int8:
        raise ModelFileError(
            f"{source}: input is {io.input.dtype} and output is {io.output.dtype}, but TFLite Micro deployment "
            "needs a full-integer model with int8 input and output; `tinynas deploy` takes a quantized model "
            "whose float or uint8 interface is a QUANTIZE and DEQUANTIZE around int8 and removes them, or pass "
            "the .keras model so tinynas quantizes it, or convert with a representative dataset, "
            "TFLITE_BUILTINS_INT8 and inference_input_type/inference_output_type = tf.int8"
        )
    if io.input.scale <= 0 or io.output.scale <= 0:
        raise ModelFileError(f"{source}: int8 input or output tensor carries no quantization scale; re-quantize it")
    check_tflm_aborts(model_bytes, source=source)
    return io


class MicroInterpreter:
    """The tflite-micro Python interpreter for one int8 model, with float in / float out helpers.

    ``arena_bytes`` None: start at 256 KiB and grow until the model allocates
    (fine for evaluation; use ``tinynas.deploy.arena.measure_arena_bytes`` for
    the exact figure). TFLM runs batch 1, so batches are looped.
    """

    def __init__(self, model_bytes: bytes, *, arena_bytes: int | None = None, source: str = "model") -> None:
        self.model_bytes = bytes(model_bytes)
        self.io = require_int8(self.model_bytes, source=source)
        self.source = source
        self._interp, self.arena_bytes = _create(self.model_bytes, arena_bytes=arena_bytes, source=source)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Input shape without the batch dimension."""
        return self.io.input.shape[1:]

    @property
    def num_outputs(self) -> int:
        return int(np.prod(self.io.output.shape[1:]))

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float input (any batch) to int8 with the model's input scale and zero point."""
        q = np.round(np.asarray(x, dtype=np.float64) / self.io.input.scale) + self.io.input.zero_point
        return np.clip(q, -128, 127).astype(np.int8)

    def dequantize_output(self, q: np.ndarray) -> np.ndarray:
        """int8 output to float: (q - zero_point) * scale."""
        return ((np.asarray(q, dtype=np.float32) - self.io.output.zero_point) * self.io.output.scale).astype(np.float32)

    def invoke_int8(self, q_input: np.ndarray) -> np.ndarray:
        """One inference on one int8 input (without batch dim or with batch 1); returns the raw int8 output."""
        q = np.asarray(q_input, dtype=np.int8).reshape(self.io.input.shape)
        self._interp.set_input(q, 0)
        self._interp.invoke()
        return np.array(self._interp.get_output(0), dtype=np.int8).reshape(self.io.output.shape[1:])

    def predict_int8(self, x: np.ndarray) -> np.ndarray:
        """Raw int8 outputs for a batch of float inputs, shape (N, *output_shape)."""
        x = self._batch(x)
        q = self.quantize_input(x)
        out = np.empty((len(q), *self.io.output.shape[1:]), dtype=np.int8)
        for i in range(len(q)):
            out[i] = self.invoke_int8(q[i])
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Dequantized float outputs for a batch of float inputs."""
        return self.dequantize_output(self.predict_int8(x))

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        """Top-1 accuracy (0..1) of the int8 model on float inputs ``x`` and integer labels ``y``."""
        y = np.asarray(y).reshape(-1)
        if len(y) == 0:
            raise DeployError(f"{self.source}: cannot measure accuracy on an empty split")
        pred = self.predict_int8(x).reshape(len(y), -1).argmax(axis=1)
        return float(np.mean(pred == y))

    def _batch(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.input_shape:
            if x.shape == self.input_shape:
                return x[None]
            raise DeployError(
                f"{self.source}: model input is {self.input_shape} but the data has samples of {x.shape[1:]}; "
                "feed data of the shape the model was trained on"
            )
        return x


def _create(model_bytes: bytes, *, arena_bytes: int | None, source: str) -> tuple[Any, int]:
    from tflite_micro.python.tflite_micro import runtime

    if arena_bytes is not None:
        try:
            return runtime.Interpreter.from_bytes(model_bytes, arena_size=int(arena_bytes)), int(arena_bytes)
        except RuntimeError as exc:
            raise DeployError(
                f"{source}: TFLite Micro could not allocate the model in an arena of {arena_bytes} bytes ({exc}); "
                "give a larger arena or leave it unset"
            ) from None
    size = max(_FIRST_ARENA_BYTES, 4 * len(model_bytes))
    while True:
        try:
            return runtime.Interpreter.from_bytes(model_bytes, arena_size=size), size
        except RuntimeError as exc:
            if size >= _MAX_ARENA_BYTES:
                raise DeployError(
                    f"{source}: TFLite Micro cannot allocate this model even with a {size >> 20} MiB arena ({exc}); "
                    "it likely uses an op TFLite Micro does not support"
                ) from None
            log.debug("arena of %d bytes too small for %s, trying %d", size, source, size * 4)
            size *= 4


def int8_accuracy(model_bytes: bytes, *, x: np.ndarray, y: np.ndarray, arena_bytes: int | None = None,
                  source: str = "model") -> float:
    """Top-1 accuracy (0..1) of an int8 model on float inputs in TFLite Micro (batch 1, looped)."""
    return MicroInterpreter(model_bytes, arena_bytes=arena_bytes, source=source).accuracy(x, y)


def output_agreement(a: np.ndarray, b: np.ndarray, *, scale: float | None = None) -> int:
    """Largest difference between two outputs of the same model, in int8 steps.

    Integer arrays are compared as they are. Float arrays (dequantized outputs,
    such as the ``m-results-[...]`` line of the serial protocol) need the output
    ``scale``: the difference is divided by it and rounded, which recovers the
    int8 steps exactly for values printed with 6 decimals. 0 means bit-exact.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.size != b.size:
        raise DeployError(f"outputs differ in size: {a.size} vs {b.size} values; compare outputs of the same model")
    if a.size == 0:
        return 0
    a, b = a.reshape(-1), b.reshape(-1)
    if np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer):
        return int(np.max(np.abs(a.astype(np.int64) - b.astype(np.int64))))
    if scale is None or scale <= 0:
        raise DeployError("comparing float outputs in int8 steps needs the output tensor's positive scale")
    return int(np.max(np.round(np.abs(a.astype(np.float64) - b.astype(np.float64)) / scale)))
