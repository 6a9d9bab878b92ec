"""The baselines every zero-cost proxy must beat: parameter and MAC counts from the cost model.

NAS-Bench-Suite-Zero (Krishnakumar et al. 2022) found both to be strong
predictors of accuracy; they need no TensorFlow and no weights.
"""

from __future__ import annotations

from tinynas.proxies.registry import ProxyInput, register_proxy
from tinynas.space.graph import Graph


def graph_counts(graph: Graph) -> tuple[int, int]:
    """(macs, params) of ``graph``: from ``tinynas.cost.estimate`` when the cost model is installed.

    The fallback counts conv/depthwise/dense MACs and weights+biases itself, so
    the proxies work in a build without the cost model.
    """
    try:
        from tinynas.cost import estimate
    except ImportError:
        estimate = None
    if estimate is not None:
        cost = estimate(graph)
        return int(cost.macs), int(cost.params)
    macs = params = 0
    for op in graph.ops:
        if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        out = graph.tensors[op.outputs[0]]
        w = graph.tensors[op.inputs[1]]
        b = graph.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] else None
        per_output = w.size // w.shape[0] if op.kind != "DEPTHWISE_CONV_2D" else w.shape[1] * w.shape[2]
        macs += out.size * per_output
        params += w.size + (b.size if b is not None else 0)
    return macs, params


@register_proxy("params", higher_is_better=True, needs_tf=False, description="parameter count (cost model)")
def params(inp: ProxyInput) -> float:
    return float(graph_counts(inp.graph)[1])


@register_proxy("macs", higher_is_better=True, needs_tf=False, description="multiply-accumulates (cost model)")
def macs(inp: ProxyInput) -> float:
    return float(graph_counts(inp.graph)[0])
