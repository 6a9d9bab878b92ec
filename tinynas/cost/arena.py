"""The arena estimate: how many bytes TFLite Micro's ``MicroInterpreter`` needs for a Graph.

The cost model's SRAM figure. TFLM's arena (REFERENCE.md section 1,
tflite-micro ``micro/docs/memory_management.md``) is a head, where the greedy
planner places the activations (``cost/planner.py``, exact), and a tail of
persistent records, whose sizes below were measured on the ``tflite-micro``
x86-64 wheel with ``tinynas.deploy.arena.arena_breakdown`` (TFLM's
``RecordingMicroAllocator`` report) and ``measure_arena_bytes``.

How each constant was measured: single-change graphs (one more conv, 4 -> 32
filters, one more pool/ADD/dw conv, 10 -> 20 classes) plus 40 random archs of
nanonas, dscnn, mcunet and nasbench201 and the four MLPerf Tiny models, int8-converted by
``deploy.quantize``; the per-tensor, per-node and input/output sizes are the
per-bucket figures TFLM reports, the per-channel arrays follow from the
4 -> 32 filter sweep, and the per-kind constants are a least-squares fit of the
rest of the tail (residual within +-3 bytes on every model of the set).

Trained models are assumed (every conv and FC has its bias tensor); an untrained
model whose zero Dense bias the converter dropped needs 24 bytes less.

On a 32-bit Cortex-M the same model needs a few percent less (4-byte
pointers: KWS 22,772 vs 24,272 bytes with reference kernels) but CMSIS-NN
kernels add im2col scratch (KWS 23,940); the cost model reports the host
figure, a safe upper bound for the boards, with no per-profile factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinynas.cost.flash import op_key
from tinynas.cost.planner import Buffer, align_up, peak_bytes
from tinynas.space.graph import Graph

# -- per-record sizes TFLM reports (x86-64 wheel) ----------------------------------
#: ``TfLiteEvalTensor`` per tensor of the subgraph, constants included ("TfLiteEvalTensor data": 35 tensors -> 840 B).
EVAL_TENSOR_BYTES = 24
#: ``NodeAndRegistration`` per operator ("NodeAndRegistration struct": 13 ops -> 832 B).
NODE_BYTES = 64
#: Per graph input/output: a persistent ``TfLiteTensor`` (64 B) plus its quantization
#: records (32 B) ("Persistent TfLiteTensor data" 128 B + "... quantization data" 64 B for 2 tensors).
IO_TENSOR_BYTES = 96
#: Per-channel requantization arrays (int32 multiplier + int32 shift, each 16-byte aligned),
#: for CONV_2D, DEPTHWISE_CONV_2D and per-channel FULLY_CONNECTED (4 -> 32 filters: +32 B per 4 channels).
PER_CHANNEL_ARRAYS = 2
#: Tail bytes independent of the graph: allocator, planner and interpreter objects,
#: subgraph records (least-squares intercept).
TAIL_BASE_BYTES = 246
#: Per-operator persistent bytes beyond the node record: the kernel's OpData and its
#: alignment, by kind (least-squares fit, see module docstring). Unknown kinds: GENERIC.
OP_DATA_BYTES: dict[str, int] = {
    "CONV_2D": 108,
    "DEPTHWISE_CONV_2D": 108,
    "FULLY_CONNECTED": 139,
    "MEAN": 146,
    "MAX_POOL_2D": 72,
    "AVERAGE_POOL_2D": 72,
    "AVERAGE_POOL_2D_VALID": 72,  # one kernel; the key splits only the flash figure (cost/flash.py)
    "SOFTMAX": 258,
    "ADD": 72,
    "RESHAPE": 113,
    "RELU": 32,
    "RELU6": 32,
    "MUL": 72,  # not fitted (no MUL survived conversion in the set): taken as ADD's
    # tinyformer's ops (issue 14): a least-squares fit of the tail left over on 33 random archs of
    # its first version, whose norms were LayerNorms written out: 2 MEANs (keepdims), SUB,
    # SQUARED_DIFFERENCE, RSQRT and MUL always came together, so only their sum was fitted (309 B
    # with MUL's 72), split in proportion to the kernels' OpData structs. Each TRANSPOSE of
    # multi-head attention comes with a RESHAPE, whose 113 B (fitted on CNNs, where it carries part
    # of the intercept) is too much for a kernel without op data: the pair's excess shows as
    # TRANSPOSE's negative figure. With BatchNorm pre-norms (folded into the FULLY_CONNECTED
    # layers), BATCH_MATMUL, the class token pair, HARD_SWISH and the final norm's MUL were refitted
    # on the tail left over on 32 random archs (rng seed 7, four input shapes; held out, seed 1, 24
    # archs: median error 2.9 % -> 0.14 %, worst 0.63 %): BATCH_MATMUL carries the block's share.
    "MEAN_KEEPDIMS": 48,
    "SUB": 56,
    "SQUARED_DIFFERENCE": 56,
    "RSQRT": 29,
    "TRANSPOSE": -97,
    "BATCH_MATMUL": -33,  # OpDataBatchMatmul + its quantization record (adj_y: no transposed copy), less the block's share
    "CONCATENATION": 134,  # a class token's CONCATENATION and STRIDED_SLICE come together
    "STRIDED_SLICE": 160,
    "HARD_SWISH": 23,
    "MUL_BATCH_NORM": -22,  # MUL's 72 less the model's share; the final norm's ADD counts as ADD
    # gcn's ops (issue 14): least-squares fit of the tail left over on 19 random gcn archs (digits-grid
    # 64x3, karate-club 34x35) whose head outweighs planning; arena median error 3 % -> 0.3 %.
    "FULLY_CONNECTED_ADJACENCY": 225,  # FULLY_CONNECTED's 139 + 86
    "FULLY_CONNECTED_SELECT": 34,  # FULLY_CONNECTED's 139 - 105 (with its MUL, the node readout)
    "REDUCE_MAX": 129,
}
GENERIC_OP_DATA_BYTES = 96
#: Scratch buffers a kernel requests in Prepare, by kind: int8 MEAN asks for three (its int32
#: accumulators, the input iterator, the resolved axes; tflite-micro kernels/reduce_common.cc).
#: They are tiny and live only while their op runs, so they do not raise the head here, but
#: while TFLM plans, each costs allocation info, a planner entry and its request record.
SCRATCH_BUFFERS: dict[str, int] = {"MEAN": 3}
#: Planning room per scratch buffer (fitted on the tinyformer set: 263 B per MEAN; it also closes the
#: ~270 B the estimate was low on tiny CNNs, e.g. nanonas k=5 c=1 at 8x8: 2,965 -> 3,229 B, TFLM 3,240 B).
PLAN_BYTES_PER_SCRATCH = 88

# -- temporary room while TFLM plans the head (micro_allocator.cc CommitStaticMemoryPlan) ----
#: ``AllocationInfo`` per tensor (x86-64: 32 B) and the greedy planner's per-buffer lists
#: (``per_buffer_size()``: 40 B); both sit in the head until the plan is made, so a model
#: with many tensors and small activations (MLPerf AD: 4,632 B needed, 3,976 B used) needs
#: more than head + tail. Fitted on MLPerf AD.
PLAN_INFO_BYTES_PER_TENSOR = 32
PLAN_BYTES_PER_BUFFER = 40
PLAN_BASE_BYTES = -8

_PER_CHANNEL_KINDS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@dataclass(frozen=True)
class ArenaEstimate:
    """The arena estimate's parts: ``head`` (planned activations), ``tail`` (persistent records),
    ``planning`` (temporary room the planner needs), and ``arena_bytes`` = tail + max(head, planning)."""

    head: int
    tail: int
    planning: int

    @property
    def arena_bytes(self) -> int:
        return self.tail + max(self.head, self.planning)

    def to_json(self) -> dict[str, Any]:
        return {"head": self.head, "tail": self.tail, "planning": self.planning, "arena_bytes": self.arena_bytes}


def lifetimes(graph: Graph) -> dict[str, list[int]]:
    """First and last allocation scope of every activation tensor (micro_allocation_info.cc):
    graph inputs from scope 0, op ``i`` in scope ``i + 1``, graph outputs to the last scope."""
    life: dict[str, list[int]] = {}
    for name in graph.inputs:
        life[name] = [0, 0]
    for name in graph.outputs:
        life[name] = [0, 0]
    tensors = graph.tensors
    for i, op in enumerate(graph.ops, start=1):
        for name in op.outputs:
            life[name] = [i, i]
        for name in op.inputs:
            if name and not tensors[name].constant:
                span = life.get(name)
                if span is not None:
                    span[1] = i
    last = len(graph.ops)
    for name in graph.outputs:
        life[name][1] = last
    return life


def estimate_arena(graph: Graph) -> ArenaEstimate:
    """The arena TFLM needs for ``graph`` (x86-64 wheel figures), split into head and tail."""
    tensors = graph.tensors
    life = lifetimes(graph)
    buffers = []
    for name, t in tensors.items():  # tensor order decides ties in the planner's sort
        span = life.get(name)
        if span is None or t.constant:
            continue
        nbytes = t.nbytes
        if nbytes:
            buffers.append(Buffer(align_up(nbytes), span[0], span[1]))
    head = peak_bytes(buffers)

    tail = TAIL_BASE_BYTES + EVAL_TENSOR_BYTES * len(tensors) + IO_TENSOR_BYTES * (
        len(graph.inputs) + len(graph.outputs)
    )
    scratch = 0
    for op in graph.ops:
        kind = op.kind
        scratch += SCRATCH_BUFFERS.get(kind, 0)
        tail += NODE_BYTES + OP_DATA_BYTES.get(op_key(op), GENERIC_OP_DATA_BYTES)
        if kind in _PER_CHANNEL_KINDS and len(op.inputs) > 1:
            weights = tensors.get(op.inputs[1])
            if weights is not None and weights.quant_channels > 1:
                channels = tensors[op.outputs[0]].shape[-1]
                tail += PER_CHANNEL_ARRAYS * align_up(4 * channels)
    planning = (PLAN_BASE_BYTES + PLAN_INFO_BYTES_PER_TENSOR * len(tensors) + PLAN_BYTES_PER_BUFFER * len(buffers)
                + PLAN_BYTES_PER_SCRATCH * scratch)
    return ArenaEstimate(head=head, tail=tail, planning=planning)


def arena_bytes(graph: Graph) -> int:
    """Bytes of tensor arena TFLM needs to allocate and run ``graph`` (host x86-64 figure)."""
    return estimate_arena(graph).arena_bytes
