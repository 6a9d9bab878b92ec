"""Fixtures of the space tests: ``check_graph``, the shape checks every space's
Graph must pass (what the TFLite converter would produce, op by op)."""

from __future__ import annotations

import numpy as np
import pytest

from tinynas.space.graph import Graph, conv_output_size


def _check_graph(graph: Graph, *, num_classes: int) -> None:
    """Raise AssertionError when an op's operands or output do not fit its attributes."""
    produced = set(graph.inputs)
    assert len(graph.inputs) == 1 and len(graph.outputs) == 1
    assert graph.input_shape[0] == 1, "batch dimension 1 included"
    for op in graph.ops:
        acts = graph.activation_inputs(op)
        consts = graph.constant_inputs(op)
        for t in acts:
            assert t.name in produced, f"{op.kind} reads {t.name} before it is produced"
        out = graph.tensor(op.outputs[0])
        assert out.name not in produced, f"{out.name} produced twice"
        assert not out.constant and out.dtype == "int8"
        a = op.attrs
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            (x,) = acts
            w, b = consts
            _, h, wd, c = x.shape
            kh, kw = a["kernel"]
            sh, sw = a["stride"]
            oc = a["filters"] if op.kind == "CONV_2D" else c * a["depth_multiplier"]
            assert out.shape == (1, conv_output_size(h, kh, sh, a["padding"]),
                                 conv_output_size(wd, kw, sw, a["padding"]), oc)
            assert w.shape == ((oc, kh, kw, c) if op.kind == "CONV_2D" else (1, kh, kw, oc))
            assert b.shape == (oc,) and b.dtype == "int32" and w.dtype == "int8"
            assert w.quant_channels == oc
            assert a["activation"] in (None, "relu", "relu6")
        elif op.kind == "MUL" and a.get("norm") == "batch":  # a BatchNormalization's per-channel scale
            (x,), (k,) = acts, consts
            assert x.shape == out.shape and k.shape == (x.shape[-1],)
        elif op.kind == "ADD" and len(acts) == 1:  # a constant operand: epsilon, a learned embedding, a BN shift
            (x,), (k,) = acts, consts
            assert x.shape == out.shape and np.broadcast_shapes(x.shape, k.shape) == out.shape
        elif op.kind in ("ADD", "SUB", "SQUARED_DIFFERENCE") or (op.kind == "MUL" and len(acts) == 2):
            x, y = acts
            assert np.broadcast_shapes(x.shape, y.shape) == out.shape and out.shape in (x.shape, y.shape)
        elif op.kind in ("RSQRT", "HARD_SWISH"):
            (x,) = acts
            assert x.shape == out.shape
        elif op.kind == "TRANSPOSE":
            (x,), (perm,) = acts, consts
            assert perm.shape == (len(x.shape),) and out.shape == tuple(x.shape[i] for i in a["perm"])
        elif op.kind == "BATCH_MATMUL":
            x, y = acts
            k = x.shape[-2] if a["adj_x"] else x.shape[-1]
            assert (y.shape[-1] if a["adj_y"] else y.shape[-2]) == k
            assert out.shape == (*x.shape[:-2], x.shape[-1] if a["adj_x"] else x.shape[-2],
                                 y.shape[-2] if a["adj_y"] else y.shape[-1])
        elif op.kind == "CONCATENATION":
            (x,), (k,) = acts, consts
            assert out.shape[a["axis"]] == x.shape[a["axis"]] + k.shape[a["axis"]]
        elif op.kind == "STRIDED_SLICE":
            (x,) = acts
            assert len(consts) == 3 and out.shape == (x.shape[0], x.shape[2])
        elif op.kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            (x,) = acts
            _, h, wd, c = x.shape
            ph, pw = a["pool"]
            sh, sw = a["stride"]
            assert out.shape == (1, conv_output_size(h, ph, sh, a["padding"]),
                                 conv_output_size(wd, pw, sw, a["padding"]), c)
        elif op.kind == "MEAN":
            (x,) = acts
            (axes,) = consts
            assert axes.dtype == "int32" and axes.shape in ((len(a["axes"]),), ())
            kept = tuple(1 if i in a["axes"] else d for i, d in enumerate(x.shape))
            dropped = tuple(d for i, d in enumerate(x.shape) if i not in a["axes"])
            assert out.shape == (kept if a["keepdims"] else dropped)
        elif op.kind == "RESHAPE":
            (x,) = acts
            (shape,) = consts
            assert shape.dtype == "int32" and shape.shape == (len(out.shape),)
            assert x.size == out.size and tuple(a["shape"]) == out.shape
        elif op.kind == "FULLY_CONNECTED":
            (x,) = acts
            w, b = consts
            assert w.shape == (a["units"], x.shape[-1]) and b.shape == (a["units"],)
            assert out.shape == (*x.shape[:-1], a["units"])
        elif op.kind == "SOFTMAX":
            (x,) = acts
            assert x.shape == out.shape
        else:
            raise AssertionError(f"unexpected op {op.kind}")
        produced.add(out.name)
    assert graph.ops[-1].kind == "SOFTMAX"
    assert graph.output_shape == (1, num_classes)
    assert graph.outputs[0] == graph.ops[-1].outputs[0]
    used = {n for op in graph.ops for n in op.inputs} | set(graph.outputs)
    assert set(graph.tensors) <= used, "every tensor is used"


@pytest.fixture
def check_graph():
    """``check_graph(graph, num_classes=N)``: AssertionError when a shape or operand is off."""
    return _check_graph
