"""Read and rewrite ``.tflite`` flatbuffers with the object API of the ``tflite-micro`` wheel.

Deploy edits the converter's file in two ways (``tflite_interface`` and
``strip_tensor_names``), and both must write it back as the converter would:
TFLite Micro reads weight buffers in place, so each starts on a 16-byte
boundary, which the Python flatbuffers builder does not do by itself.
No TensorFlow import.
"""

from __future__ import annotations

from typing import Any

from tinynas.errors import ModelFileError

_BUFFER_ALIGN = 16  # the converter aligns weight buffers to 16 bytes; TFLM reads them in place


def _schema() -> Any:
    """The generated TFLite schema module (``ModelT``, ``TensorType`` ...)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def unpack(model_bytes: bytes, *, source: str = "model") -> Any:
    """The ``ModelT`` of ``model_bytes``; ModelFileError naming ``source`` when they are not a flatbuffer."""
    try:
        return _schema().ModelT.InitFromPackedBuf(bytes(model_bytes), 0)
    except Exception as exc:  # flatbuffers raises struct/index errors on corrupt data
        raise ModelFileError(f"{source}: corrupt TFLite flatbuffer ({type(exc).__name__}: {exc})") from None


class _AlignedBuffer:
    """A BufferT whose data vector starts on a 16-byte boundary, as the converter writes it."""

    def __init__(self, buffer: Any) -> None:
        self._buffer = buffer

    def Pack(self, builder: Any) -> int:  # noqa: N802 (the flatbuffers object API's name)
        fb = _schema()
        data = self._buffer.data
        vector = None
        if data is not None and len(data):
            payload = bytes(bytearray(data))
            builder.StartVector(1, len(payload), _BUFFER_ALIGN)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head:builder.head + len(payload)] = payload
            vector = builder.EndVector()  # StartVector recorded the length
        fb.BufferStart(builder)
        if vector is not None:
            fb.BufferAddData(builder, vector)
        fb.BufferAddOffset(builder, self._buffer.offset)
        fb.BufferAddSize(builder, self._buffer.size)
        return fb.BufferEnd(builder)


def pack(model: Any) -> bytes:
    """The ``.tflite`` bytes of ``model`` (a ``ModelT``), weight buffers 16-byte aligned."""
    import flatbuffers

    model.buffers = [_AlignedBuffer(b) for b in model.buffers]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def strip_tensor_names(model_bytes: bytes, *, source: str = "model") -> tuple[bytes, int]:
    """(the model without the names of its tensors but the input's and output's, bytes saved).

    Why: the converter names each tensor after the Keras layers it fused
    (``functional_1/.../Relu6;.../convolution``), and those strings are a sixth of
    a small CNN's file and two thirds of an unrolled LSTM's, all of it in the
    board's flash. TFLite Micro never reads them (its static-memory build drops
    tensor names), nor does any kernel, so the model computes the same.
    TensorFlow's ``flatbuffer_utils.strip_strings`` drops them the same way, and
    the interface's names, the description and the signatures too; here the
    interface tensors keep their names and the signatures stay, for the tools and
    runtimes that look the input up by them. A model with nothing to strip comes
    back as it is.
    """
    model = unpack(model_bytes, source=source)
    changed = False
    for graph in model.subgraphs or []:
        keep = {int(t) for t in list(graph.inputs) + list(graph.outputs)}
        for index, tensor in enumerate(graph.tensors or []):
            if index not in keep and tensor.name is not None:
                tensor.name, changed = None, True
    if not changed:
        return bytes(model_bytes), 0
    stripped = pack(model)
    if len(stripped) >= len(model_bytes):  # names were already short: rewriting would not pay
        return bytes(model_bytes), 0
    return stripped, len(model_bytes) - len(stripped)


def network_of(model_bytes: bytes, *, source: str = "model") -> tuple[Any, ...]:
    """What an interpreter runs of ``model_bytes``, comparable between files: each subgraph's operators (op
    code, input and output tensors), tensors (shape, type, buffer, quantization), interface and signatures,
    and the weight buffers; not the tensor names or the metadata (the converter's version and provenance).
    Two conversions with equal ``network_of`` compute the same on the board."""
    model = unpack(model_bytes, source=source)
    metadata = {m.buffer for m in model.metadata or []}
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes or []]

    def quantization(t: Any) -> Any:
        q = t.quantization
        if q is None or q.scale is None:
            return None
        return tuple(map(float, q.scale)), tuple(map(int, q.zeroPoint)), int(q.quantizedDimension)

    graphs = tuple(
        (tuple((codes[o.opcodeIndex], tuple(map(int, o.inputs)), tuple(map(int, o.outputs))) for o in g.operators),
         tuple((tuple(map(int, t.shape)), int(t.type), int(t.buffer), quantization(t)) for t in g.tensors),
         tuple(map(int, g.inputs)), tuple(map(int, g.outputs)))
        for g in model.subgraphs or [])
    buffers = tuple(None if b.data is None else bytes(bytearray(b.data))
                    for i, b in enumerate(model.buffers or []) if i not in metadata)
    signatures = tuple((s.signatureKey, tuple(int(i.tensorIndex) for i in s.inputs or []),
                        tuple(int(o.tensorIndex) for o in s.outputs or [])) for s in model.signatureDefs or [])
    return graphs, buffers, signatures
