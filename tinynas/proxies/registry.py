"""The registry of zero-cost proxies: a name, a scoring function and its direction.

Every proxy the prefilter, the ensembles and ``tinynas proxies`` use is found
here by name; registering a new function is all it takes to add one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np

from tinynas.errors import ProxyError
from tinynas.proxies.net import Batch, GraphNet
from tinynas.registry import Registry
from tinynas.space.graph import Graph


@dataclass
class ProxyInput:
    """What a proxy function sees: the Graph, its (lazily built) untrained net, a batch and a seed.

    ``net`` is built on first use, so the TF-free baselines never pay for
    weight initialisation; ``keras_model`` (optional) supplies the weights.
    """

    graph: Graph
    batch: Batch | None = None
    seed: int = 0
    keras_model: Any = None

    @cached_property
    def net(self) -> GraphNet:
        if self.keras_model is not None:
            return GraphNet.from_keras(self.keras_model, self.graph)
        return GraphNet(self.graph, seed=self.seed)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)


ProxyFn = Callable[[ProxyInput], float]


@dataclass(frozen=True)
class ProxySpec:
    """A registered proxy: ``higher_is_better`` is its sign; ``needs_data`` says it needs a labelled batch."""

    name: str
    fn: ProxyFn = field(repr=False, compare=False)
    higher_is_better: bool = True
    needs_data: bool = False
    needs_tf: bool = True
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "higher_is_better": self.higher_is_better, "needs_data": self.needs_data,
            "needs_tf": self.needs_tf, "description": self.description,
        }


PROXIES: Registry[ProxySpec] = Registry("zero-cost proxy", error=ProxyError)


def register_proxy(
    name: str, *, higher_is_better: bool, needs_data: bool = False, needs_tf: bool = True, description: str = ""
) -> Callable[[ProxyFn], ProxyFn]:
    """Decorator registering ``fn(ProxyInput) -> float`` under ``name`` (duplicates raise ProxyError)."""

    def deco(fn: ProxyFn) -> ProxyFn:
        doc = description or ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        PROXIES.add(name, ProxySpec(name, fn, higher_is_better, needs_data, needs_tf, doc))
        return fn

    return deco


def _load_builtin() -> None:
    import tinynas.proxies.baselines  # noqa: F401  (registers params, macs)
    import tinynas.proxies.measures  # noqa: F401  (registers the TF proxies)


def get_proxy(name: str) -> ProxySpec:
    """The proxy ``name`` (raises ProxyError listing the known ones)."""
    _load_builtin()
    return PROXIES.get(name)


def proxy_names(*, needs_data: bool | None = None) -> list[str]:
    """Registered proxy names, optionally only those that do (not) need data."""
    _load_builtin()
    return [n for n in PROXIES.names() if needs_data is None or PROXIES.get(n).needs_data == needs_data]
