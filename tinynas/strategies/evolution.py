"""``evolution``: regularized (aging) evolution, Real et al. 2019 ("Regularized Evolution for
Image Classifier Architecture Search", AAAI), as ask/tell.

The population starts random (or from ``seed_archs``); afterwards each proposal
is a mutation of the best member of a random tournament sample, and every new
result joins the population while the oldest member dies.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Mapping, Sequence

from tinynas.errors import SearchError, SpaceError
from tinynas.space.arch import Arch
from tinynas.space.base import SearchSpace
from tinynas.strategies.base import Observation, Strategy, register_strategy


@register_strategy
class RegularizedEvolution(Strategy):
    """Aging evolution with tournament selection.

    Real et al. use population_size=100, sample_size=25 for tens of thousands of
    evaluations (NASLib: 30/10). A TinyML search trains each candidate and can
    afford 50-500 of them, so the defaults are 20/5: the same 1:4 selection
    pressure, and only the first 20 evaluations are spent on random archs.
    Failed or infeasible results do not join the population.
    """

    name = "evolution"

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int = 0,
        feasible: Callable[[Arch], bool] | None = None,
        max_tries: int = 1000,
        population_size: int = 20,
        sample_size: int = 5,
        mutations: int = 1,
        seed_archs: Sequence[Arch] = (),
    ) -> None:
        super().__init__(space=space, seed=seed, feasible=feasible, max_tries=max_tries)
        if int(population_size) < 2:
            raise SearchError(f"evolution population_size must be at least 2, got {population_size}")
        if not 1 <= int(sample_size) <= int(population_size):
            raise SearchError(
                f"evolution sample_size must be between 1 and population_size ({population_size}), got {sample_size}"
            )
        if int(mutations) < 1:
            raise SearchError(f"evolution mutations must be at least 1, got {mutations}")
        self.population_size = int(population_size)
        self.sample_size = int(sample_size)
        self.mutations = int(mutations)
        self._seed_queue: list[Arch] = []
        for arch in seed_archs:
            try:
                space.validate(arch)
            except SpaceError as exc:
                raise SearchError(f"evolution seed arch {arch} is not in space {space.name!r}: {exc}") from None
            if self.is_feasible(arch) and arch.id not in {a.id for a in self._seed_queue}:
                self._seed_queue.append(arch)
        # (arch, accuracy), oldest first
        self._population: deque[tuple[Arch, float]] = deque()

    def _propose(self, n: int) -> list[Arch]:
        out: list[Arch] = []
        for _ in range(n):
            arch = self._next()
            if arch is None:
                break
            out.append(arch)
            self._seen.add(arch.id)  # so later proposals of this batch avoid it too
        return out

    def _next(self) -> Arch | None:
        while self._seed_queue:
            arch = self._seed_queue.pop(0)
            if arch.id not in self._seen:
                return arch
        warming_up = len(self._population) + len(self._pending) < self._warmup_size()
        if warming_up or not self._population:
            arch = self._sample_new()
            if arch is not None:
                return arch
            if not self._population:
                return None
        parent = self._tournament()
        child, first_untried = parent, None
        for _ in range(self.mutations):
            child = self._mutate_feasible(child)
            if first_untried is None and child.id not in self._seen:
                first_untried = child
        # With several steps the last may land back on a tried arch while a step on the way was new:
        # take that one, or a small feasible set is never covered (the steps keep leading home).
        return child if child.id not in self._seen or first_untried is None else first_untried

    def _warmup_size(self) -> int:
        """How many archs are sampled at random before mutation starts."""
        return self.population_size

    def _tournament(self) -> Arch:
        size = min(self.sample_size, len(self._population))
        picks = self._rng.choice(len(self._population), size=size, replace=False)
        best = max((int(i) for i in picks), key=lambda i: (self._population[i][1], -i))
        return self._population[best][0]

    def _observe(self, arch: Arch, result: Observation) -> None:
        if not result.usable:
            return
        self._population.append((arch, float(result.accuracy)))
        while len(self._population) > self.population_size:
            self._population.popleft()  # aging: the oldest dies, not the worst

    def _state(self) -> dict[str, Any]:
        return {
            "population": [[a.to_json(), acc] for a, acc in self._population],
            "seed_queue": [a.to_json() for a in self._seed_queue],
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self._population = deque((Arch.from_json(a), float(acc)) for a, acc in state.get("population", []))
        self._seed_queue = [Arch.from_json(a) for a in state.get("seed_queue", [])]
