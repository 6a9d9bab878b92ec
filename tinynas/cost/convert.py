"""The converter's view of a Graph: what ``TFLiteConverter`` makes of the Keras model a space builds.

The cost model costs what TFLite Micro will run, so it first applies the two
rewrites of the converter that change the op list: identical RELU/RELU6 ops on
one tensor are merged (common-subexpression elimination), and a RELU/RELU6
whose input comes only from a CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED or ADD
without an activation is fused into that op. Spaces that emit activations as
separate ops (NAS-Bench-201's ReLU-Conv-BN) need this; graphs without
standalone activations are returned unchanged.
"""

from __future__ import annotations

from tinynas.space.graph import Graph, Op

_ACT = {"RELU": "relu", "RELU6": "relu6"}
_CSE_KINDS = frozenset({"RELU", "RELU6", "MAX_POOL_2D", "AVERAGE_POOL_2D", "ADD", "MEAN"})
_FUSABLE = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD"})


def converter_view(graph: Graph) -> Graph:
    """``graph`` with activations merged and fused, and its ops in the order the TFLite
    converter emits them (``converter_order``)."""
    return converter_order(_fuse_activations(graph))


def converter_order(graph: Graph) -> Graph:
    """``graph`` with its ops in the converter's order: a depth-first post-order from the
    outputs that visits each op's inputs last-to-first.

    Seen on NAS-Bench-201 reduction cells converted by TF 2.21: of ``ADD(a, b)``
    the branch of ``b`` is emitted first. The order decides tensor lifetimes, so
    the arena. A chain (no branches) keeps its order; tensors are re-listed in
    op order, which is how the planner breaks ties.
    """
    producer: dict[str, int] = {}
    branching = False
    for i, op in enumerate(graph.ops):
        for n in op.outputs:
            producer[n] = i
    uses: dict[str, int] = {}
    for op in graph.ops:
        for n in op.inputs:
            if n in producer:
                uses[n] = uses.get(n, 0) + 1
                if uses[n] > 1:
                    branching = True
    if not branching:
        return graph
    order: list[int] = []
    done = [False] * len(graph.ops)
    for out in reversed(graph.outputs):
        if out not in producer:
            continue
        stack: list[tuple[int, bool]] = [(producer[out], False)]
        while stack:
            idx, expanded = stack.pop()
            if done[idx]:
                continue
            if expanded:
                done[idx] = True
                order.append(idx)
                continue
            stack.append((idx, True))
            # Pushed first-to-last so that the last input is popped, hence visited, first.
            for n in graph.ops[idx].inputs:
                p = producer.get(n)
                if p is not None and not done[p]:
                    stack.append((p, False))
    order += [i for i in range(len(graph.ops)) if not done[i]]  # ops that feed no output
    if order == list(range(len(graph.ops))):
        return graph
    ops = [graph.ops[i] for i in order]
    tensors = {n: graph.tensors[n] for n in graph.inputs}
    for op in ops:
        for n in (*op.inputs, *op.outputs):
            if n and n not in tensors:
                tensors[n] = graph.tensors[n]
    for n, t in graph.tensors.items():
        tensors.setdefault(n, t)
    return Graph(tensors=tensors, ops=ops, inputs=list(graph.inputs), outputs=list(graph.outputs), name=graph.name)


def _needs_rewrite(graph: Graph) -> bool:
    """Whether the graph has a standalone activation or two identical weight-free ops (fast check)."""
    keys = set()
    for op in graph.ops:
        kind = op.kind
        if kind in _ACT:
            return True
        if kind in _CSE_KINDS:
            key = (kind, op.inputs)
            if key in keys:
                return True
            keys.add(key)
    return False


def _fuse_activations(graph: Graph) -> Graph:
    if not _needs_rewrite(graph):
        return graph
    # 1. Merge identical weight-free ops on the same tensors (the converter's CSE: NAS-Bench-201
    #    cells apply the same avg pool or ReLU to one node on several edges).
    tensors = graph.tensors
    rename: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    ops: list[Op] = []
    for op in graph.ops:
        inputs = tuple(rename.get(n, n) for n in op.inputs)
        if op.kind in _CSE_KINDS and len(op.outputs) == 1 and all(n and not tensors[n].constant for n in inputs):
            key = (op.kind, inputs, repr(sorted(op.attrs.items())))
            if key in seen and op.outputs[0] not in graph.outputs:
                rename[op.outputs[0]] = seen[key]
                continue
            seen[key] = op.outputs[0]
        ops.append(Op(kind=op.kind, inputs=inputs, outputs=op.outputs, attrs=op.attrs))
    # 2. Fuse an activation into its producer when the producer's output has no other use.
    consumers: dict[str, int] = {}
    for op in ops:
        for n in op.inputs:
            if n:
                consumers[n] = consumers.get(n, 0) + 1
    producer = {op.outputs[0]: i for i, op in enumerate(ops) if op.outputs}
    dropped: set[int] = set()
    removed_tensors: set[str] = set()
    fused: dict[int, Op] = {}
    for idx, op in enumerate(ops):
        if op.kind not in _ACT:
            continue
        src = op.inputs[0]
        pidx = producer.get(src)
        prod = None if pidx is None else ops[pidx]
        if (
            prod is None or prod.kind not in _FUSABLE or prod.attrs.get("activation") is not None
            or consumers.get(src, 0) != 1 or src in graph.outputs
        ):
            continue
        base = fused.get(pidx, prod)
        fused[pidx] = Op(kind=base.kind, inputs=base.inputs, outputs=op.outputs,
                         attrs={**base.attrs, "activation": _ACT[op.kind]})
        dropped.add(idx)
        removed_tensors.add(src)
    new_ops = [fused.get(i, op) for i, op in enumerate(ops) if i not in dropped]
    gone = removed_tensors | set(rename)
    tensors = {k: v for k, v in graph.tensors.items() if k not in gone}
    return Graph(tensors=tensors, ops=new_ops, inputs=list(graph.inputs),
                 outputs=[rename.get(n, n) for n in graph.outputs], name=graph.name)
