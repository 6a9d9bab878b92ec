"""``staged`` (the default strategy): regularized evolution seeded with the zero-cost prefilter's best.

The pipeline (tinynas.pipeline.stages) runs it as the middle of three stages:
prefilter (cost model + zero-cost proxies, feasible archs only) -> this strategy on
low-fidelity training -> full training of the best few. On its own (no seeds) it is
regularized evolution whose warm-up half samples and half mutates, so it works on any space.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from tinynas.errors import SearchError
from tinynas.space.arch import Arch
from tinynas.space.base import SearchSpace
from tinynas.strategies.base import register_strategy
from tinynas.strategies.evolution import RegularizedEvolution


def seeds_for_budget(kept: Sequence[Arch], budget: int | None) -> list[Arch]:
    """The prefilter's best archs to start evolution from: up to half a candidate budget (at least 2).

    Why half: on a tabulated dscnn space (``scripts/bench_search_tabular.py``, 100 seeds)
    seeding half of an 8-candidate budget finds better final models than seeding a third
    (mnist1d on a 32 KB board: +2.1 vs +1.5 points over random); the other half is
    evolution from the best of them. Without a candidate budget (minutes only) every kept arch is a seed.
    """
    return list(kept) if budget is None else list(kept)[:max(2, int(budget) // 2)]


@register_strategy
class StagedSearch(RegularizedEvolution):
    """Evolution started from ``seed_archs`` (the prefilter's top K, best first).

    Why seeds help: zero-cost proxies rank untrained networks with a Spearman
    correlation of ~0.6-0.8 with trained accuracy (Abdelfattah et al. 2021,
    "Zero-Cost Proxies for Lightweight NAS"), so the first population is far better
    than a random one and the tournament exploits it from the first mutation.
    ``warmup_fraction`` of the population is filled before mutation starts (the
    seeds count toward it); a smaller population than plain evolution's (12 vs 20)
    spends the few dozen trainings a TinyML search can afford on mutations of good archs.
    Each child takes two one-decision mutation steps, not one: seeds ranked by MACs sit in
    one corner of the space (the archs with the most MACs that fit), and single steps
    stayed there; on the tabulated dscnn space two steps found better final models on
    digits (+1.1 vs +0.85 points over random at 8 candidates, a tie instead of -0.2 at
    24) and equal ones on mnist1d (``scripts/bench_search_tabular.py``).
    """

    name = "staged"

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int = 0,
        feasible: Callable[[Arch], bool] | None = None,
        max_tries: int = 1000,
        population_size: int = 12,
        sample_size: int = 4,
        mutations: int = 2,
        warmup_fraction: float = 0.5,
        seed_archs: Sequence[Arch] = (),
    ) -> None:
        super().__init__(space=space, seed=seed, feasible=feasible, max_tries=max_tries,
                         population_size=population_size, sample_size=sample_size, mutations=mutations,
                         seed_archs=seed_archs)
        if not 0.0 < float(warmup_fraction) <= 1.0:
            raise SearchError(f"staged warmup_fraction must be in (0, 1], got {warmup_fraction}")
        self.warmup_fraction = float(warmup_fraction)
        # With seeds the warm-up is the seeds themselves; without, a fraction of the population is random.
        wanted = len(self._seed_queue) if self._seed_queue else round(self.population_size * self.warmup_fraction)
        self._warmup = min(self.population_size, max(2, wanted))

    def _warmup_size(self) -> int:
        return self._warmup

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "warmup": self._warmup}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        super()._load_state(state)
        self._warmup = int(state.get("warmup", self._warmup))
