"""LiteRT artifacts for ``mobile`` profiles: fp16 conversion and validation in LiteRT (XNNPACK).

Phones and Linux boards run a ``.tflite`` in LiteRT, not TFLite Micro, so the
deploy checks each model there: accuracy on the test split, agreement with the
Keras model, and what LiteRT really allocates. LiteRT is imported here only.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinynas.errors import DeployError, ModelFileError
from tinynas.tf_runtime import captured_fd2

log = logging.getLogger(__name__)

#: How ``runtime_bytes`` is measured, written into metrics.json beside the figure.
MEMORY_MEASURE = ("sum of the byte sizes of LiteRT's non-constant tensors (activations, inputs, outputs) "
                  "after allocate_tensors(); an upper bound of LiteRT's arena, which shares buffers")


def quantize_fp16(model: Any, *, sample_shape: tuple[int, ...]) -> bytes:
    """The fp16 ``.tflite`` of a float Keras model: float16 weights, float32 input and output.

    XNNPACK runs it in fp16 where the CPU has fp16 arithmetic, else dequantizes
    the weights once at load. Raises DeployError when the converter fails.
    """
    from tinynas.deploy.quantize import _quiet_fds, keras_converter
    from tinynas.tf_runtime import quiet_import

    quiet_import()
    import tensorflow as tf

    try:
        with _quiet_fds(), keras_converter(model, sample_shape=sample_shape) as converter:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
            return bytes(converter.convert())
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        raise DeployError(f"fp16 conversion failed: {lines[-1] if lines else type(exc).__name__}; "
                          "every layer must have a TFLite builtin op") from exc


@dataclass(frozen=True)
class LiteRTCheck:
    """One ``.tflite`` run in LiteRT on the test split, next to the Keras model's probabilities."""

    file: str
    accuracy: float
    max_abs_diff: float  # largest |p_litert - p_keras| over all test samples and classes
    top1_agreement: float  # fraction of samples whose top-1 class matches Keras
    runtime_bytes: int  # see MEMORY_MEASURE
    file_bytes: int
    threads: int

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "runtime": "litert", "accuracy": self.accuracy, "max_abs_diff": self.max_abs_diff,
                "top1_agreement": self.top1_agreement, "runtime_bytes": self.runtime_bytes,
                "runtime_bytes_measure": MEMORY_MEASURE, "file_bytes": self.file_bytes, "threads": self.threads}


#: What LiteRT's C++ logger prints to fd 2 the first time a process applies XNNPACK: nothing to act on.
_XNNPACK_NOTE = "Created TensorFlow Lite XNNPACK delegate for CPU."
_xnnpack_noted = False


def open_interpreter(model_bytes: bytes, *, threads: int) -> Any:
    """A LiteRT ``Interpreter`` for ``model_bytes`` with its tensors allocated; LiteRT's exceptions pass.

    ``allocate_tensors`` applies the XNNPACK delegate, and the first time in a process LiteRT prints an
    INFO line about it on fd 2, in the middle of tinynas's output. That call runs with fd 2 captured and
    whatever else was written there is passed on."""
    global _xnnpack_noted
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=bytes(model_bytes), num_threads=int(threads))
    if _xnnpack_noted:
        interp.allocate_tensors()
        return interp
    written: list[str] = []
    try:
        with captured_fd2() as written:
            interp.allocate_tensors()
    finally:
        lines = "".join(written).splitlines(keepends=True)
        _xnnpack_noted = _xnnpack_noted or any(_XNNPACK_NOTE in line for line in lines)
        rest = "".join(line for line in lines if _XNNPACK_NOTE not in line)
        if rest:
            sys.stderr.write(rest)
            sys.stderr.flush()
    return interp


def _interpreter(model_bytes: bytes, *, threads: int, source: str) -> Any:
    try:
        interp = open_interpreter(model_bytes, threads=threads)
    except Exception as exc:  # LiteRT raises ValueError/RuntimeError with its own text
        lines = str(exc).strip().splitlines()
        raise ModelFileError(f"{source}: LiteRT cannot load this model ({lines[-1] if lines else type(exc).__name__}); "
                             "convert the Keras model again or use layers with TFLite builtin ops") from None
    return interp


def float_ops(model_bytes: bytes, *, source: str) -> list[str]:
    """The ops of an int8 ``.tflite`` that compute in float (the converter leaves an op without an int8
    kernel in float between DEQUANTIZE and QUANTIZE instead of failing), sorted, without repeats."""
    interp = _interpreter(model_bytes, threads=1, source=source)
    dtypes = {int(t["index"]): np.dtype(t["dtype"]) for t in interp.get_tensor_details()}
    found = set()
    for op in interp._get_ops_details():  # noqa: SLF001 - LiteRT has no public op list
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE", "DELEGATE"):
            continue
        tensors = [int(i) for i in [*op["inputs"], *op["outputs"]] if int(i) >= 0]
        if any(dtypes.get(i) in (np.dtype(np.float32), np.dtype(np.float16)) for i in tensors):
            found.add(str(op["op_name"]))
    return sorted(found)


def _non_constant_bytes(interp: Any) -> int:
    """Bytes of the tensors that are neither weights nor biases: those no op reads as a constant input."""
    weights = set()
    produced = set()
    for op in interp._get_ops_details():  # noqa: SLF001 - LiteRT has no public op list
        produced.update(int(i) for i in op["outputs"] if int(i) >= 0)
    inputs = {int(d["index"]) for d in interp.get_input_details()}
    for t in interp.get_tensor_details():
        idx = int(t["index"])
        if idx not in produced and idx not in inputs:
            weights.add(idx)
    total = 0
    for t in interp.get_tensor_details():
        if int(t["index"]) in weights:
            continue
        total += int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize
    return total


def runtime_bytes(model_bytes: bytes, *, source: str) -> int:
    """The model's runtime memory as deploy's budget check counts it (``MEMORY_MEASURE``), from LiteRT with its
    tensors allocated, without running it. Raises ModelFileError when LiteRT cannot load the model."""
    return _non_constant_bytes(_interpreter(model_bytes, threads=1, source=source))


def _quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if not np.issubdtype(np.dtype(detail["dtype"]), np.integer):
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale


def predict_litert(model_bytes: bytes, x: np.ndarray, *, threads: int, source: str) -> tuple[np.ndarray, int]:
    """Probabilities (float) of ``model_bytes`` in LiteRT for every sample of ``x`` (batch 1 each), and
    the model's ``runtime_bytes``. Raises ModelFileError when LiteRT cannot load or run it."""
    interp = _interpreter(model_bytes, threads=threads, source=source)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    if len(interp.get_input_details()) != 1:
        raise ModelFileError(f"{source}: a deploy needs a model with one input")
    want = tuple(int(d) for d in inp["shape"][1:])
    if tuple(x.shape[1:]) != want:
        raise DeployError(f"{source}: LiteRT model input is {want}, the test split gives {tuple(x.shape[1:])}")
    probs = []
    try:
        for i in range(len(x)):
            interp.set_tensor(inp["index"], _quantize(x[i : i + 1], inp))
            interp.invoke()
            probs.append(_dequantize(interp.get_tensor(out["index"]), out).reshape(-1))
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        raise ModelFileError(f"{source}: LiteRT failed to run this model ({lines[-1] if lines else exc!r})") from None
    return np.stack(probs), _non_constant_bytes(interp)


def check_litert(model_bytes: bytes, *, file: str, x: np.ndarray, y: np.ndarray, keras_probs: np.ndarray,
                 threads: int) -> LiteRTCheck:
    """Run ``model_bytes`` in LiteRT on ``x`` and compare with the Keras probabilities ``keras_probs``."""
    probs, allocated = predict_litert(model_bytes, x, threads=threads, source=file)
    keras_probs = np.asarray(keras_probs, dtype=np.float32).reshape(probs.shape)
    check = LiteRTCheck(
        file=file,
        accuracy=float(np.mean(probs.argmax(axis=1) == y)),
        max_abs_diff=float(np.max(np.abs(probs - keras_probs))),
        top1_agreement=float(np.mean(probs.argmax(axis=1) == keras_probs.argmax(axis=1))),
        runtime_bytes=int(allocated),
        file_bytes=len(model_bytes),
        threads=int(threads),
    )
    log.info("%s in LiteRT: accuracy %.4f, max |p - p_keras| %.4f, top-1 agreement %.4f, %d B of tensors",
             file, check.accuracy, check.max_abs_diff, check.top1_agreement, check.runtime_bytes)
    return check
