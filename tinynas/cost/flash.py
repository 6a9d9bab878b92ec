"""The flash estimate: the size of the int8 ``.tflite`` flatbuffer the converter writes for a Graph.

The cost model's flash figure (the model array the firmware embeds; the runtime's
code is the profile's ``runtime_flash_bytes``). A ``.tflite`` file is the
constant buffers plus flatbuffer tables: per tensor a table with its shape, its
name (the converter's names are long: ``functional_1/.../Relu6;.../convolution``)
and its quantization (a float32 scale and an int64 zero point per channel), per
operator a table with its options, and per-file metadata (min_runtime_version,
signature defs). Schema: tensorflow/lite/schema/schema.fbs.

Constants: a least-squares fit of (file size - aligned buffers - 12 bytes per
quantization channel) on 61 random archs of nanonas (32x32x3, 50x50x3), dscnn
(49x10x1), mcunet (32x32x3, 48x48x3) and nasbench201 converted by
``tinynas.deploy.quantize`` (TF 2.21); every file of that set within 1.5 %, most
within 0.3 %. The model assumes trained weights: nonzero, distinct biases. An
untrained Keras model converts smaller (1-34 % on nanonas archs): the converter
drops an all-zero Dense bias, and an identity BatchNorm leaves shorter tensor
names (names are a large share of a tiny model's file).
The MLPerf Tiny files, made by an older converter with shorter
tensor names, come out 4 % small; `tinynas estimate` uses a file's real size.
"""

from __future__ import annotations

from typing import Any

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
#: File header, operator codes, subgraph and metadata (fit).
FILE_BASE_BYTES = -68
#: Per operator by kind, relative to the tensors it adds (fit; FULLY_CONNECTED, MEAN and
#: SOFTMAX appear once in every fitted model, so they share the intercept equally).
OP_BYTES: dict[str, int] = {
    "CONV_2D": -131,
    "DEPTHWISE_CONV_2D": 356,
    "FULLY_CONNECTED": -68,
    "MEAN": -68,
    "SOFTMAX": -68,
    "MAX_POOL_2D": -11,
    # NAS-Bench-201's 3x3 'same' pools carry the fitted figure. A 2x2 'valid' average pool (nanonas)
    # writes a file byte for byte the size of the max-pool one (140 of 140 nanonas arch pairs, 5 input
    # shapes, one to five pools): the fit's 140 B put its files ~150 B per pool too high.
    "AVERAGE_POOL_2D": 140,
    "AVERAGE_POOL_2D_VALID": -11,
    "ADD": -155,
    "RELU": 38,
    "RELU6": 38,
    # LayerNorm written out (MEAN keepdims, SUB, SQUARED_DIFFERENCE, RSQRT; issue 14): fitted on the
    # first tinyformer, whose blocks held two LayerNorms each; only a LayerNorm's sum is well
    # determined (the converter's names of these tensors are short). Kept for .tflite files that have them.
    "MEAN_KEEPDIMS": -451,
    "SUB": -451,
    "SQUARED_DIFFERENCE": -451,
    "RSQRT": -451,
    # tinyformer's ops: a least-squares fit of the file size left over on 32 random tinyformer archs
    # (rng seed 7, its four input shapes; held out, seed 1, 24 archs: median error 10.3 % -> 0.27 %,
    # worst 1.5 %). Its pre-norm BatchNormalizations fold into the FULLY_CONNECTED layers, whose
    # long fused tensor names the block's figure carries: two BATCH_MATMULs per block, so the
    # block's sum sits on them. The final norm's MUL and ADD come once per model and carry the
    # intercept (-2.1 KB).
    "BATCH_MATMUL": 80,
    "TRANSPOSE": 80,
    "CONCATENATION": -282,  # a class token's CONCATENATION and STRIDED_SLICE come together
    "STRIDED_SLICE": -487,
    "HARD_SWISH": -48,
    "MUL_BATCH_NORM": -2083,
    # gcn's ops (issue 14): a least-squares fit of the file size left over on 24 random gcn archs
    # (digits-grid 64x3, karate-club 34x35; flash median error 15 % -> 0.3 %). A layer is a
    # FULLY_CONNECTED, two batch-less TRANSPOSEs and the A_hat FULLY_CONNECTED, so the layer's
    # figure sits on the A_hat op; the one shared A_hat tensor adds FIXED_WEIGHTS_ONCE_BYTES.
    "FULLY_CONNECTED_ADJACENCY": -528,
    "FULLY_CONNECTED_SELECT": -14,
    "REDUCE_MAX": -98,
}
GENERIC_OP_BYTES = 0
#: Once per fixed weight tensor that several ops share (gcn's A_hat; see OP_BYTES).
FIXED_WEIGHTS_ONCE_BYTES = -1324


def op_key(op: Any) -> str:
    """The cost tables' key of an op: its kind, or a finer key where the kind's figure differs."""
    if op.kind == "MEAN" and op.attrs.get("keepdims"):
        return "MEAN_KEEPDIMS"
    if op.kind == "MUL" and op.attrs.get("norm") == "batch":
        return "MUL_BATCH_NORM"
    if op.kind == "AVERAGE_POOL_2D" and op.attrs.get("padding") == "valid":
        return "AVERAGE_POOL_2D_VALID"
    fixed = op.attrs.get("fixed")
    if op.kind == "FULLY_CONNECTED" and fixed:
        return "FULLY_CONNECTED_ADJACENCY" if fixed == "adjacency" else "FULLY_CONNECTED_SELECT"
    return op.kind


def flash_bytes(graph: Graph) -> int:
    """Estimated size in bytes of the int8 ``.tflite`` file of ``graph``."""
    total = FILE_BASE_BYTES
    for t in graph.tensors.values():
        total += TENSOR_BYTES + QUANT_BYTES_PER_CHANNEL * t.quant_channels
        if t.constant:
            total += CONSTANT_TENSOR_BYTES + align_up(t.nbytes, BUFFER_ALIGNMENT)
    shared_fixed = set()
    for op in graph.ops:
        total += OP_BYTES.get(op_key(op), GENERIC_OP_BYTES)
        if op.attrs.get("fixed") == "adjacency" and op.inputs[1] not in shared_fixed:
            shared_fixed.add(op.inputs[1])
            total += FIXED_WEIGHTS_ONCE_BYTES
    return max(int(total), 0)
