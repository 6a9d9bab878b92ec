"""Work counts of each operator of a Graph: MACs, parameters, and elements touched.

The latency model and the cost summary read these. MAC formulas are the usual
ones (MicroNets, Banbury et al. 2021; MLPerf Tiny's reported MACs):
conv = out_h*out_w*out_c*kh*kw*in_c, depthwise = out_h*out_w*out_c*kh*kw,
fully connected = in*out. Ops without MACs (ADD, pools, MEAN, SOFTMAX, RESHAPE)
count their output elements instead, the unit of the profiles'
``cycles_per_element`` (``hardware/profile.py`` LatencyModel: a MEAN's
coefficient covers the whole map it reads per output).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tinynas.space.graph import Graph, Op

MAC_KINDS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})


@dataclass(frozen=True, slots=True)
class OpWork:
    """One operator's work: ``macs`` for conv/FC, output ``elements`` for the rest (0 MACs)."""

    kind: str
    macs: int
    elements: int


def _size(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if shape else 1


def op_work(graph: Graph, op: Op) -> OpWork:
    tensors = graph.tensors
    kind = op.kind
    out = tensors[op.outputs[0]].shape if op.outputs else ()
    if kind in MAC_KINDS and len(op.inputs) > 1 and op.inputs[1]:
        w = tensors[op.inputs[1]].shape
        if kind == "CONV_2D":  # weights (out_c, kh, kw, in_c)
            macs = _size(out) * w[1] * w[2] * w[3]
        elif kind == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, out_c)
            macs = _size(out) * w[1] * w[2]
        else:  # weights (units, in)
            macs = _size(out) * w[-1]
        return OpWork(kind, int(macs), 0)
    return OpWork(kind, 0, int(_size(out)))


def graph_work(graph: Graph) -> list[OpWork]:
    """``OpWork`` of every operator, in execution order."""
    return [op_work(graph, op) for op in graph.ops]


def count_macs(graph: Graph) -> int:
    return sum(w.macs for w in graph_work(graph))


def count_params(graph: Graph) -> int:
    """Weights and biases: elements of the constant inputs of conv and FC ops."""
    total = 0
    tensors = graph.tensors
    for op in graph.ops:
        if op.kind in MAC_KINDS:
            for name in op.inputs[1:]:
                if name and tensors[name].constant:
                    total += tensors[name].size
    return total
