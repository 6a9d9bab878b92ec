"""``random``: uniform sampling of feasible architectures without repeats.

The baseline every other strategy must beat with the same number of evaluations
(Li & Talwalkar 2019 showed it is a strong one), and the warm-up of evolution.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from tinynas.space.arch import Arch
from tinynas.space.base import SearchSpace
from tinynas.strategies.base import Strategy, register_strategy


@register_strategy
class RandomSearch(Strategy):
    """Each ask draws uniformly from the space, keeps what the filter accepts, never repeats an arch."""

    name = "random"

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int = 0,
        feasible: Callable[[Arch], bool] | None = None,
        max_tries: int = 1000,
    ) -> None:
        super().__init__(space=space, seed=seed, feasible=feasible, max_tries=max_tries)
        self._exhausted = False

    def _propose(self, n: int) -> list[Arch]:
        out: list[Arch] = []
        exclude = set(self._seen)
        while len(out) < n and not self._exhausted:
            arch = self._sample_new(exclude)
            if arch is None:
                self._exhausted = True
                break
            exclude.add(arch.id)
            out.append(arch)
        return out

    @property
    def finished(self) -> bool:
        return self._exhausted

    def _state(self) -> dict[str, Any]:
        return {"exhausted": self._exhausted}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self._exhausted = bool(state.get("exhausted", False))
