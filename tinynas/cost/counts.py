"""Work counts of each operator of a Graph: MACs, parameters, elements, weight bytes, fast-path span.

The latency model and the cost summary read these. MAC formulas are the usual
ones (MicroNets, Banbury et al. 2021; MLPerf Tiny's reported MACs):
conv = out_h*out_w*out_c*kh*kw*in_c, depthwise = out_h*out_w*out_c*kh*kw,
fully connected = in*out (times the tokens of a (1, T, D) input), batch matmul
= B*M*N*K (both operands are activations: no weight bytes). Ops without MACs (ADD, pools, MEAN, SOFTMAX, RESHAPE)
count their output elements instead, the unit of the profiles'
``cycles_per_element`` (``hardware/profile.py`` LatencyModel: a MEAN's
coefficient covers the whole map it reads per output). Ops with MACs also
count their outputs (each is requantized), the int8 weight bytes they stream
per inference, and the span their kernel's SIMD loop steps through, which
decides whether CMSIS-NN-style kernels take their fast path (``cost/latency.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tinynas.space.graph import Graph, Op

MAC_KINDS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL"})
#: MAC ops whose second operand is a constant weight tensor (parameters, weight bytes streamed).
WEIGHT_KINDS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})
# Op variants that kernel libraries run through another kernel, priced by their own
# ``cycles_per_mac`` entry when a profile has one (else by the op's).
POINTWISE = "CONV_2D_1X1"  # 1x1 conv: CMSIS-NN arm_convolve_1x1_s8_fast, no im2col
VARIANTS = {POINTWISE: "CONV_2D"}


@dataclass(frozen=True, slots=True)
class OpWork:
    """One operator's work.

    ``macs`` for conv/FC (0 otherwise), ``elements`` the output elements of ops
    without MACs; for ops with MACs, ``outputs`` (their output elements),
    ``weight_bytes`` (the constant weight tensor, streamed once per inference),
    ``fast_path_span`` (the count the kernel's SIMD loop steps through: input
    channels of a 1x1 conv, the im2col column ``kh*kw*in_c`` of a k x k conv, the
    channels of a depthwise conv, the input length of an FC) and ``variant``
    (``CONV_2D_1X1`` for a pointwise conv, else "").
    """

    kind: str
    macs: int
    elements: int
    outputs: int = 0
    weight_bytes: int = 0
    fast_path_span: int = 0
    variant: str = ""

    @property
    def price_key(self) -> str:
        """The ``cycles_per_mac`` key that prices this op first: its variant, else its kind."""
        return self.variant or self.kind


def _size(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if shape else 1


def op_work(graph: Graph, op: Op) -> OpWork:
    tensors = graph.tensors
    kind = op.kind
    out = tensors[op.outputs[0]].shape if op.outputs else ()
    if kind == "BATCH_MATMUL" and len(op.inputs) > 1:
        # (..., M, K) x (..., K, N): every output element is a K-long dot product
        lhs = tensors[op.inputs[0]].shape
        depth = lhs[-2] if op.attrs.get("adj_x") else lhs[-1]
        return OpWork(kind, int(_size(out) * depth), 0, outputs=int(_size(out)), fast_path_span=int(depth))
    if kind in MAC_KINDS and len(op.inputs) > 1 and op.inputs[1]:
        weights = tensors[op.inputs[1]]
        w = weights.shape
        variant = ""
        if kind == "CONV_2D":  # weights (out_c, kh, kw, in_c)
            macs = _size(out) * w[1] * w[2] * w[3]
            pointwise = w[1] == 1 and w[2] == 1
            span = w[3] if pointwise else w[1] * w[2] * w[3]
            variant = POINTWISE if pointwise else ""
        elif kind == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, out_c)
            macs = _size(out) * w[1] * w[2]
            in_shape = tensors[op.inputs[0]].shape
            # A depth multiplier above 1 leaves CMSIS-NN's channel-vectorized kernels for the
            # generic one (arm_depthwise_conv_wrapper_s8): span 1 puts every MAC off the fast path.
            span = w[3] if in_shape and in_shape[-1] == w[3] else 1
        else:  # weights (units, in)
            macs = _size(out) * w[-1]
            span = w[-1]
        return OpWork(kind, int(macs), 0, outputs=int(_size(out)), weight_bytes=int(weights.nbytes),
                      fast_path_span=int(span), variant=variant)
    return OpWork(kind, 0, int(_size(out)))


def graph_work(graph: Graph) -> list[OpWork]:
    """``OpWork`` of every operator, in execution order."""
    return [op_work(graph, op) for op in graph.ops]


def count_macs(graph: Graph) -> int:
    return sum(w.macs for w in graph_work(graph))


#: Ops whose non-scalar int8 constant operand is a trained tensor: a learned positional
#: embedding (ADD), a class token (CONCATENATION).
LEARNED_CONSTANT_KINDS = frozenset({"ADD", "CONCATENATION"})


def count_params(graph: Graph) -> int:
    """Weights and biases (elements of the constant inputs of conv and FC ops) plus learned
    embeddings and tokens (non-scalar int8 constants of ADD and CONCATENATION). A gcn's fixed
    A_hat is no trained parameter (and one tensor for every layer): flash_bytes counts it."""
    total = 0
    tensors = graph.tensors
    for op in graph.ops:
        if op.attrs.get("fixed"):
            continue
        if op.kind in WEIGHT_KINDS:
            for name in op.inputs[1:]:
                if name and tensors[name].constant:
                    total += tensors[name].size
        elif op.kind in LEARNED_CONSTANT_KINDS:
            for name in op.inputs:
                t = tensors[name] if name else None
                if t is not None and t.constant and t.dtype == "int8" and t.size > 1:
                    total += t.size
    return total
