"""The converter's view of a Graph: what ``TFLiteConverter`` makes of the Keras model a space builds.

The cost model costs what TFLite Micro will run, so it first applies what the
converter does to the op list: ops are put in the converter's order (it decides
tensor lifetimes, so the arena); identical weight-free ops on the same tensors
(RELU, pools, ADD, MEAN) are merged (common-subexpression elimination); and a
RELU/RELU6 whose input comes only from a CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED, ADD or pool without an activation is fused into that op. Spaces that
emit activations as separate ops or branch (NAS-Bench-201's ReLU-Conv-BN cells)
need this; a chain without standalone activations is returned unchanged.
"""

from __future__ import annotations

from tinynas.space.graph import Graph, Op

_ACT = {"RELU": "relu", "RELU6": "relu6"}
_CSE_KINDS = frozenset({"RELU", "RELU6", "MAX_POOL_2D", "AVERAGE_POOL_2D", "ADD", "MEAN"})
_FUSABLE = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D"})


def converter_view(graph: Graph) -> Graph:
    """``graph`` with activations merged and fused, and its ops in the order the TFLite
    converter emits them (``converter_order``)."""
    return _fuse_activations(converter_order(graph))


def converter_order(graph: Graph) -> Graph:
    """``graph`` with its ops in the converter's order.

    The converter imports the TensorFlow graph in reverse post-order of a
    depth-first walk (TF ``GetReversePostOrder``); the walk starts at the inputs
    and, as observed with TF 2.21 on NAS-Bench-201 cells, takes the consumers of
    a tensor in descending order of their op names (Keras layer name + ``_1/``).
    The order decides tensor lifetimes, so the arena. A chain keeps its order;
    tensors are re-listed in op order, which is how the planner breaks ties.
    """
    if graph.converter_ordered:
        return graph
    ops = graph.ops
    consumers: dict[str, list[int]] = {}
    branching = False
    for i, op in enumerate(ops):
        for n in op.inputs:
            if n and not graph.tensors[n].constant:
                lst = consumers.setdefault(n, [])
                if not lst or lst[-1] != i:
                    lst.append(i)
                    if len(lst) > 1:
                        branching = True
    if not branching:
        return graph
    keys = [(op.outputs[0] if op.outputs else "") + "_1/" for op in ops]

    def successors(i: int) -> list[int]:
        nxt = [c for n in ops[i].outputs for c in consumers.get(n, ())]
        return sorted(set(nxt), key=lambda c: keys[c], reverse=True)

    seen = [False] * len(ops)
    post: list[int] = []
    roots = sorted({c for n in graph.inputs for c in consumers.get(n, ())}, key=lambda c: keys[c], reverse=True)
    for root in roots:
        if seen[root]:
            continue
        seen[root] = True
        stack = [(root, iter(successors(root)))]
        while stack:
            node, it = stack[-1]
            for nxt in it:
                if not seen[nxt]:
                    seen[nxt] = True
                    stack.append((nxt, iter(successors(nxt))))
                    break
            else:
                stack.pop()
                post.append(node)
    order = post[::-1] + [i for i in range(len(ops)) if not seen[i]]
    if order == list(range(len(ops))):
        return graph
    new_ops = [ops[i] for i in order]
    tensors = {n: graph.tensors[n] for n in graph.inputs}
    for op in new_ops:
        for n in (*op.inputs, *op.outputs):
            if n and n not in tensors:
                tensors[n] = graph.tensors[n]
    for n, t in graph.tensors.items():
        tensors.setdefault(n, t)
    return Graph(tensors=tensors, ops=new_ops, inputs=list(graph.inputs), outputs=list(graph.outputs), name=graph.name)


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
