"""ONNX artifacts for ``gpu`` profiles: export, float16 conversion and validation in ONNX Runtime.

A GPU target loads ONNX (ONNX Runtime, or TensorRT built from it with ``trtexec``),
so the deploy exports the Keras model (Keras 3 ``model.export(format="onnx")``,
through tf2onnx), writes an fp16 copy, and checks both in ONNX Runtime's CPU
provider against the Keras model. onnx and onnxruntime are imported here only.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinynas.errors import DeployError, ModelFileError

log = logging.getLogger(__name__)

#: How ``runtime_bytes`` is measured for ONNX, written into metrics.json beside the figure.
MEMORY_MEASURE = ("sum of the byte sizes of every non-weight tensor (inputs, intermediates, outputs) from ONNX "
                  "shape inference at batch 1; an upper bound of what ONNX Runtime or TensorRT allocate, "
                  "which reuse buffers")


def export_onnx(model: Any, *, sample_shape: tuple[int, ...]) -> bytes:
    """The fp32 ONNX bytes of a Keras 3 model with a batch-1 input.

    Keras exports only a model that has been called, so it is called once on
    zeros first. Raises DeployError naming the layer problem when tf2onnx fails.
    """
    from tinynas.deploy.quantize import _batch_one, _quiet_fds
    from tinynas.tf_runtime import quiet_import

    quiet_import()
    import keras

    one = _batch_one(keras, model, sample_shape)
    one(np.zeros((1, *sample_shape), dtype=np.float32))
    with tempfile.TemporaryDirectory(prefix="tinynas-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            with _quiet_fds():
                one.export(str(path), format="onnx", verbose=False)
        except Exception as exc:
            lines = str(exc).strip().splitlines()
            raise DeployError(f"ONNX export failed: {lines[-1] if lines else type(exc).__name__}; every layer must "
                              "export through tf2onnx (e.g. use approximate GELU, not the exact one)") from exc
        return path.read_bytes()


def to_fp16(onnx_bytes: bytes, *, source: str = "model_fp32.onnx") -> bytes:
    """``onnx_bytes`` with float16 weights and float16 compute, float32 input and output.

    Every float initializer, Constant and internal tensor becomes float16; a Cast
    after each graph input and before each output keeps the model's float32
    interface, so the same caller code feeds both files (TensorRT's ``--fp16``
    keeps those two Casts at the edges). Written here because
    onnxconverter-common is not a dependency.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16
    for init in graph.initializer:
        if init.data_type == F32:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == F32:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16),
                                                        attr.t.name))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == F32:
                attr.i = F16
    for info in graph.value_info:
        if info.type.tensor_type.elem_type == F32:
            info.type.tensor_type.elem_type = F16
    renames: dict[str, str] = {}
    casts_in = []
    for inp in graph.input:
        if inp.type.tensor_type.elem_type == F32:
            renames[inp.name] = f"{inp.name}__fp16"
            casts_in.append(helper.make_node("Cast", [inp.name], [renames[inp.name]], to=F16,
                                             name=f"{inp.name}__to_fp16"))
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
    casts_out = []
    for out in graph.output:
        if out.type.tensor_type.elem_type == F32:
            inner = f"{out.name}__fp16"
            for node in graph.node:
                node.output[:] = [inner if name == out.name else name for name in node.output]
                node.input[:] = [inner if name == out.name else name for name in node.input]
            casts_out.append(helper.make_node("Cast", [inner], [out.name], to=F32, name=f"{out.name}__to_fp32"))
    nodes = casts_in + list(graph.node) + casts_out
    del graph.node[:]
    graph.node.extend(nodes)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        raise DeployError(f"{source}: the float16 ONNX model is not valid ({lines[0] if lines else exc!r}); "
                          "deploy the fp32 model alone or report the layer that breaks") from None
    return model.SerializeToString()


@dataclass(frozen=True)
class OnnxCheck:
    """One ``.onnx`` run in ONNX Runtime (CPU provider) on the test split, next to the Keras probabilities."""

    file: str
    precision: str  # "fp32" | "fp16"
    accuracy: float
    max_abs_diff: float
    top1_agreement: float
    runtime_bytes: int  # see MEMORY_MEASURE
    file_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "runtime": "onnxruntime", "provider": "CPUExecutionProvider",
                "precision": self.precision, "accuracy": self.accuracy, "max_abs_diff": self.max_abs_diff,
                "top1_agreement": self.top1_agreement, "runtime_bytes": self.runtime_bytes,
                "runtime_bytes_measure": MEMORY_MEASURE, "file_bytes": self.file_bytes}


def activation_bytes(onnx_bytes: bytes) -> int:
    """``MEMORY_MEASURE`` of an ONNX model (0 for tensors whose shape inference leaves unknown)."""
    import onnx
    from onnx import helper, shape_inference

    model = shape_inference.infer_shapes(onnx.load_from_string(onnx_bytes))
    weights = {i.name for i in model.graph.initializer}
    total = 0
    seen = set()
    for info in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        if info.name in weights or info.name in seen:
            continue
        seen.add(info.name)
        t = info.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in t.shape.dim]
        if t.elem_type == 0:
            continue
        total += int(np.prod(dims)) * np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).itemsize
    return total


def predict_onnx(onnx_bytes: bytes, x: np.ndarray, *, source: str) -> np.ndarray:
    """Probabilities of ``onnx_bytes`` in ONNX Runtime's CPU provider for every sample of ``x`` (batch 1 each).

    Raises ModelFileError when ONNX Runtime cannot load or run the model."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(bytes(onnx_bytes), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        raise ModelFileError(f"{source}: ONNX Runtime cannot load this model ({lines[0] if lines else exc!r}); "
                             "export again with layers ONNX Runtime supports (e.g. approximate GELU)") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelFileError(f"{source}: a deploy needs a model with one input, this one has {len(inputs)}")
    name = inputs[0].name
    try:
        probs = [np.asarray(session.run(None, {name: x[i : i + 1].astype(np.float32)})[0]).reshape(-1)
                 for i in range(len(x))]
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        raise ModelFileError(f"{source}: ONNX Runtime failed to run this model ({lines[0] if lines else exc!r})") \
            from None
    return np.stack(probs).astype(np.float32)


def check_onnx(onnx_bytes: bytes, *, file: str, precision: str, x: np.ndarray, y: np.ndarray,
               keras_probs: np.ndarray) -> OnnxCheck:
    """Run ``onnx_bytes`` in ONNX Runtime on ``x`` and compare with ``keras_probs``."""
    probs = predict_onnx(onnx_bytes, x, source=file)
    keras_probs = np.asarray(keras_probs, dtype=np.float32).reshape(probs.shape)
    check = OnnxCheck(
        file=file, precision=precision,
        accuracy=float(np.mean(probs.argmax(axis=1) == y)),
        max_abs_diff=float(np.max(np.abs(probs - keras_probs))),
        top1_agreement=float(np.mean(probs.argmax(axis=1) == keras_probs.argmax(axis=1))),
        runtime_bytes=activation_bytes(onnx_bytes),
        file_bytes=len(onnx_bytes),
    )
    log.info("%s in ONNX Runtime: accuracy %.4f, max |p - p_keras| %.2e, top-1 agreement %.4f",
             file, check.accuracy, check.max_abs_diff, check.top1_agreement)
    return check
