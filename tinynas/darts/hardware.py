"""Hardware-aware differentiable search: expected latency and memory from tinynas's own cost model.

The mixing weights make the network a distribution over archs, so its cost is an
expectation (FBNet, Wu et al. 2019; ProxylessNAS, Cai et al. 2019):
``E[LAT] = base + sum_e sum_o p_eo * LAT_eo`` where ``LAT_eo`` is what op ``o`` on
edge ``e`` adds to the network's latency on the board, read once per board from
the cost model (``cost_tables``): the latency of a reference arch (every edge a
free ``skip_connect``) with edge ``e`` set to ``o``, minus the reference's own.
Peak memory is a max, not a sum: ``E[MEM]`` is a smooth maximum (log-sum-exp)
over edges of each edge's expected arena, the arena of the reference with that
edge set to each op. Both enter the architecture loss as penalties:

- ``hinge``: ``lambda * max(0, E / T - 1)`` per constraint, ``lambda`` ramped
  linearly from 0 over the first half of the search;
- ``fbnet``: the loss multiplied by ``a * log(E[LAT]) ** b`` (FBNet's form).

Constraints stay hard: ``nearest_feasible`` replaces a derived arch the cost
model says does not fit by the feasible arch with the fewest decisions changed
(ties: the highest probability under the mixing weights).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from tinynas.errors import SearchError
from tinynas.space.arch import Arch
from tinynas.space.nasbench201 import EDGE_NAMES, OPS


@dataclass(frozen=True)
class CostTables:
    """Per edge and op (6 x 5): the latency added (ms) and the arena (bytes) with that op, on one board."""

    base_latency_ms: float
    latency_ms: np.ndarray
    arena_bytes: np.ndarray
    latency_target_ms: float | None
    arena_budget_bytes: int

    def expected_latency(self, p: Any, tf: Any = np) -> Any:
        if tf is np:
            return self.base_latency_ms + float(np.sum(p * self.latency_ms))
        return self.base_latency_ms + tf.reduce_sum(p * tf.constant(self.latency_ms, p.dtype))

    def expected_arena(self, p: Any, tf: Any = np, *, sharpness: float = 1e-3) -> Any:
        """Smooth max over edges of each edge's expected arena (log-sum-exp at ``sharpness`` per byte)."""
        per_edge = (tf.reduce_sum(p * tf.constant(self.arena_bytes, p.dtype), axis=-1) if tf is not np
                    else np.sum(p * self.arena_bytes, axis=-1))
        if tf is np:
            return float(np.log(np.sum(np.exp(sharpness * (per_edge - per_edge.max())))) / sharpness + per_edge.max())
        top = tf.stop_gradient(tf.reduce_max(per_edge))
        return tf.math.log(tf.reduce_sum(tf.exp(sharpness * (per_edge - top)))) / sharpness + top


def cost_tables(space: Any, profile: Any) -> CostTables:
    """Build the tables for a nasbench201 ``space`` on ``profile`` (30 cost-model calls)."""
    from tinynas.cost import estimate

    if space.name != "nasbench201":
        raise SearchError(f"cost tables are built for the nasbench201 cell, not space {space.name!r}")
    reference = {name: "skip_connect" for name in EDGE_NAMES}
    base = estimate(space.graph(Arch.from_dict("nasbench201", reference)), profile=profile)
    latency = np.zeros((len(EDGE_NAMES), len(OPS)))
    arena = np.zeros((len(EDGE_NAMES), len(OPS)))
    for e, name in enumerate(EDGE_NAMES):
        for o, op in enumerate(OPS):
            cost = estimate(space.graph(Arch.from_dict("nasbench201", {**reference, name: op})), profile=profile)
            latency[e, o] = max(0.0, float(cost.latency_ms) - float(base.latency_ms))
            arena[e, o] = float(cost.arena_bytes)
    return CostTables(base_latency_ms=float(base.latency_ms), latency_ms=latency, arena_bytes=arena,
                      latency_target_ms=profile.latency_target_ms, arena_budget_bytes=int(profile.sram_budget_bytes))


def hardware_penalty(tables: CostTables, p: Any, tf: Any, *, strength: Any, form: str = "hinge",
                     fbnet_a: float = 0.2, fbnet_b: float = 0.6) -> tuple[Any, Any]:
    """``(additive penalty, loss multiplier)`` for mixing weights ``p`` (a tensor)."""
    if form == "fbnet":
        return 0.0, fbnet_a * tf.math.log(tables.expected_latency(p, tf)) ** fbnet_b
    if form != "hinge":
        raise SearchError(f"hardware loss form must be 'hinge' or 'fbnet', got {form!r}")
    penalty = 0.0
    if tables.latency_target_ms:
        penalty += strength * tf.nn.relu(tables.expected_latency(p, tf) / tables.latency_target_ms - 1.0)
    penalty += strength * tf.nn.relu(tables.expected_arena(p, tf) / tables.arena_budget_bytes - 1.0)
    return penalty, 1.0


def nearest_feasible(arch: Arch, weights: np.ndarray, fits: Callable[[Arch], bool]) -> tuple[Arch, int]:
    """``arch`` if it fits, else the fitting arch with the fewest edges changed, ties broken by the highest
    log-probability under ``weights`` (6 x 5). Returns ``(arch, decisions changed)``; SearchError if none fits."""
    if fits(arch):
        return arch, 0
    logp = np.log(np.clip(np.asarray(weights, dtype=np.float64), 1e-12, None))
    current = [OPS.index(str(arch[name])) for name in EDGE_NAMES]
    for changes in range(1, len(EDGE_NAMES) + 1):
        best: tuple[float, Arch] | None = None
        for edges in itertools.combinations(range(len(EDGE_NAMES)), changes):
            choices = [[o for o in range(len(OPS)) if o != current[e]] for e in edges]
            for picked in itertools.product(*choices):
                ops = list(current)
                for e, o in zip(edges, picked):
                    ops[e] = o
                score = float(sum(logp[e, o] for e, o in enumerate(ops)))
                if best is not None and score <= best[0]:
                    continue
                candidate = Arch.from_dict("nasbench201", {n: OPS[o] for n, o in zip(EDGE_NAMES, ops)})
                if fits(candidate):
                    best = (score, candidate)
        if best is not None:
            return best[1], changes
    raise SearchError("no arch of the nasbench201 cell fits the board; pick a board with more room or "
                      "fewer/narrower cells")
