"""Score an architecture (or a Graph, or a Keras model built from one) with named proxies.

The one entry point the prefilter, the benchmarks and the CLI share; a proxy
that returns NaN or fails on a degenerate net is reported as its worst value
so rankings stay total.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Sequence

from tinynas.errors import ProxyError, TinyNASError
from tinynas.proxies.net import Batch
from tinynas.proxies.registry import ProxyInput, get_proxy
from tinynas.space.arch import Arch
from tinynas.space.base import SearchSpace
from tinynas.space.graph import Graph

log = logging.getLogger(__name__)


def worst(higher_is_better: bool) -> float:
    return -math.inf if higher_is_better else math.inf


def score_graph(
    graph: Graph,
    *,
    proxies: Sequence[str],
    batch: Batch | None = None,
    seed: int = 0,
    keras_model: Any = None,
    timings: dict[str, float] | None = None,
) -> dict[str, float]:
    """``{proxy: score}`` for ``graph``'s untrained net (weights from ``seed`` or from ``keras_model``).

    All proxies see the same initial weights. ``timings``, when given, receives
    the seconds each proxy took (the first TF proxy also pays for the weights). Raises ProxyError for an unknown
    proxy, or a data-dependent one without ``batch``.
    """
    specs = [get_proxy(name) for name in proxies]
    for spec in specs:
        if spec.needs_data and batch is None:
            raise ProxyError(f"proxy {spec.name!r} needs data: give a dataset (--dataset) or drop it from --proxies")
    if any(spec.needs_tf for spec in specs):  # the proxies import TensorFlow: without its start-up chatter
        from tinynas.tf_runtime import quiet_import

        quiet_import()
    inp = ProxyInput(graph=graph, batch=batch, seed=seed, keras_model=keras_model)
    scores: dict[str, float] = {}
    for spec in specs:
        start = time.perf_counter()
        try:
            value = float(spec.fn(inp))
        except TinyNASError:
            raise
        except (FloatingPointError, ArithmeticError, ValueError) as exc:
            log.warning("proxy %s failed on %s (%s): scored as its worst value", spec.name, graph.name, exc)
            value = math.nan
        if timings is not None:
            timings[spec.name] = timings.get(spec.name, 0.0) + time.perf_counter() - start
        scores[spec.name] = worst(spec.higher_is_better) if math.isnan(value) else value
    return scores


def score_arch(
    *,
    space: SearchSpace,
    arch: Arch,
    proxies: Sequence[str],
    batch: Batch | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """``score_graph(space.graph(arch), ...)``: raises SpaceError if ``arch`` is not in ``space``."""
    return score_graph(space.graph(arch), proxies=proxies, batch=batch, seed=seed)


def compute_proxy(name: str, *, graph: Graph, model: Any = None, batch: Batch | None = None, seed: int = 0) -> float:
    """One proxy of an untrained Keras ``model`` (built by ``build_keras_model(graph)``), or of a fresh net.

    The model's weights are read, never written.
    """
    return score_graph(graph, proxies=[name], batch=batch, seed=seed, keras_model=model)[name]
