"""The flash estimate: the size of the int8 ``.tflite`` flatbuffer deploy writes for a Graph.

The cost model's flash figure (the model array the firmware embeds; the runtime's
code is the profile's ``runtime_flash_bytes``). A ``.tflite`` file is the
constant buffers plus flatbuffer tables: per tensor a table with its shape and
its quantization (a float32 scale and an int64 zero point per channel), per
operator a table with its options, and per-file metadata (min_runtime_version,
signature defs). Schema: tensorflow/lite/schema/schema.fbs. Deploy strips the
converter's tensor names (``deploy.flatbuffer.strip_tensor_names``; they were a
sixth of a small dscnn's file), so no name is priced here: the figure is the
file the board holds.

Constants: ``scripts/fit_flash.py``, a least-squares fit of (file size - aligned
buffers - 12 bytes per quantization channel) on the terms of ``flash_terms``, over
72 random archs (rng seed 7, 12 per space over ``bench_cost_model``'s input
shapes) converted by ``tinynas.deploy.quantize`` (TF 2.21) and stripped. Ops that
always come together there share their sum (least squares' smallest-norm split):
FULLY_CONNECTED, MEAN and SOFTMAX once per CNN; a gcn layer's FULLY_CONNECTED,
TRANSPOSEs and A_hat op; a tinyformer block's ops. Measured on the fit sample:
median |error| 0.01-0.40 % per space, worst 1.26 %; held out (seed 0) in the
docstring of ``scripts/fit_flash.py``.
The model assumes trained weights: nonzero, distinct biases. An untrained Keras
model converts smaller: the converter drops an all-zero Dense bias.
"""

from __future__ import annotations

from typing import Any

from tinynas.cost.planner import align_up
from tinynas.space.graph import Graph

#: The converter aligns each constant buffer to 16 bytes.
BUFFER_ALIGNMENT = 16
#: Scale (float32) + zero point (int64) per quantization channel.
QUANT_BYTES_PER_CHANNEL = 12
#: Per tensor: table, shape vector, quantization table, its slot in the subgraph (fit; no name).
TENSOR_BYTES = 157
#: Extra per constant tensor, relative to TENSOR_BYTES: its Buffer table, vector header and padding (fit).
CONSTANT_TENSOR_BYTES = -88
#: File header, operator codes, subgraph, signature and metadata (fit).
FILE_BASE_BYTES = 391
#: Per operator by kind, relative to the tensors it adds (fit; see above for the ops that share a sum).
OP_BYTES: dict[str, int] = {
    "CONV_2D": 38,
    "DEPTHWISE_CONV_2D": 9,
    "FULLY_CONNECTED": -11,
    "MEAN": -18,
    "SOFTMAX": 320,
    "MAX_POOL_2D": -37,
    "AVERAGE_POOL_2D": -15,  # NAS-Bench-201's 3x3 'same' pools
    "AVERAGE_POOL_2D_VALID": -50,  # nanonas's 2x2 'valid' pools
    "ADD": -62,
    "RELU": -117,
    "RELU6": -117,  # the same operator table as RELU; no space writes it unfused
    # tinyformer: its pre-norm BatchNormalizations fold into the FULLY_CONNECTED layers; the final
    # norm's MUL and ADD come once per model
    "BATCH_MATMUL": -141,
    "TRANSPOSE": -70,
    "CONCATENATION": 9,  # a class token's CONCATENATION and STRIDED_SLICE come together
    "STRIDED_SLICE": 9,
    "HARD_SWISH": -55,
    "MUL": 1,
    "MUL_BATCH_NORM": 85,
    "RESHAPE": -13,
    # gcn: a layer is a FULLY_CONNECTED, two batch-less TRANSPOSEs and the A_hat FULLY_CONNECTED
    "FULLY_CONNECTED_ADJACENCY": 21,
    "FULLY_CONNECTED_SELECT": 1,
    "REDUCE_MAX": -50,
}
#: An op no space builds (a .tflite read back is costed at its real size, not with these).
GENERIC_OP_BYTES = 0
#: Once per fixed weight tensor that several ops share (gcn's A_hat).
FIXED_WEIGHTS_ONCE_BYTES = -48


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


def flash_terms(graph: Graph) -> tuple[int, dict[str, int]]:
    """What the file of ``graph`` is made of: (the bytes known exactly, the count of each fitted term).

    The bytes known exactly are the aligned constant buffers and the quantization
    parameters; the terms are ``file``, ``tensor``, ``constant``, ``fixed_once``
    and one ``op:KIND`` per op key, each priced by a fitted constant
    (``scripts/fit_flash.py`` fits them on these same terms)."""
    exact = 0
    terms: dict[str, int] = {"file": 1, "tensor": 0, "constant": 0, "fixed_once": 0}
    for t in graph.tensors.values():
        terms["tensor"] += 1
        exact += QUANT_BYTES_PER_CHANNEL * t.quant_channels
        if t.constant:
            terms["constant"] += 1
            exact += align_up(t.nbytes, BUFFER_ALIGNMENT)
    shared_fixed = set()
    ops: dict[str, int] = {}
    for op in graph.ops:
        key = op_key(op)
        ops[key] = ops.get(key, 0) + 1
        if op.attrs.get("fixed") == "adjacency" and op.inputs[1] not in shared_fixed:
            shared_fixed.add(op.inputs[1])
            terms["fixed_once"] += 1
    terms.update((f"op:{key}", count) for key, count in ops.items())
    return exact, terms


_GRAPH_TERMS = {"file": FILE_BASE_BYTES, "tensor": TENSOR_BYTES, "constant": CONSTANT_TENSOR_BYTES,
                "fixed_once": FIXED_WEIGHTS_ONCE_BYTES}


def term_bytes(term: str) -> int:
    """The fitted constant of one of ``flash_terms``'s terms."""
    if term.startswith("op:"):
        return OP_BYTES.get(term[3:], GENERIC_OP_BYTES)
    return _GRAPH_TERMS[term]


def flash_bytes(graph: Graph) -> int:
    """Estimated size in bytes of the int8 ``.tflite`` file of ``graph``."""
    exact, terms = flash_terms(graph)
    return max(int(exact + sum(count * term_bytes(term) for term, count in terms.items())), 0)
