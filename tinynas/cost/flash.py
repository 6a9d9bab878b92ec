"""The flash estimate: the size of the int8 ``.tflite`` flatbuffer the converter writes for a Graph.

The cost model's flash figure (the model array the firmware embeds; the runtime's
code is the profile's ``runtime_flash_bytes``). A ``.tflite`` file is the
constant buffers plus flatbuffer tables: per tensor a table with its shape, its
name (the converter's names are long: ``functional_1/.../Relu6;.../convolution``)
and its quantization (a float32 scale and an int64 zero point per channel), per
operator a table with its options, and per-file metadata (min_runtime_version,
signature defs). Schema: tensorflow/lite/schema/schema.fbs.

Constants: a least-squares fit of (file size - aligned buffers - 12 bytes per
quantization channel) on 40 random archs of nanonas, dscnn, mcunet and
nasbench201 converted by ``tinynas.deploy.quantize`` (TF 2.21); every file of
that set within 2 %, most within 0.2 %.
"""

from __future__ import annotations

from tinynas.cost.planner import align_up
from tinynas.space.graph import Graph

#: The converter aligns each constant buffer to 16 bytes.
BUFFER_ALIGNMENT = 16
#: Scale (float32) + zero point (int64) per quantization channel.
QUANT_BYTES_PER_CHANNEL = 12
#: Per tensor: table, shape vector, name, quantization table (fit).
TENSOR_BYTES = 212
#: Extra per constant tensor: its Buffer table and vector header, padding (fit).
CONSTANT_TENSOR_BYTES = 247
#: File header, operator codes, subgraph and metadata (fit; includes FULLY_CONNECTED,
#: MEAN and SOFTMAX, which every fitted model had exactly once).
FILE_BASE_BYTES = -61 * 4
#: Per operator by kind, relative to the tensors it adds (fit).
OP_BYTES: dict[str, int] = {
    "CONV_2D": -128,
    "DEPTHWISE_CONV_2D": 344,
    "FULLY_CONNECTED": -61,
    "MEAN": -61,
    "SOFTMAX": -61,
    "MAX_POOL_2D": -20,
    "AVERAGE_POOL_2D": 132,
    "ADD": -149,
    "RELU": 31,
    "RELU6": 31,
}
GENERIC_OP_BYTES = 0


def flash_bytes(graph: Graph) -> int:
    """Estimated size in bytes of the int8 ``.tflite`` file of ``graph``."""
    total = FILE_BASE_BYTES
    for t in graph.tensors.values():
        total += TENSOR_BYTES + QUANT_BYTES_PER_CHANNEL * t.quant_channels
        if t.constant:
            total += CONSTANT_TENSOR_BYTES + align_up(t.nbytes, BUFFER_ALIGNMENT)
    for op in graph.ops:
        total += OP_BYTES.get(op.kind, GENERIC_OP_BYTES)
    return max(int(total), 0)
