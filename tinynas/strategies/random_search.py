"""``random``: uniform sampling of feasible architectures without repeats.

The baseline every other strategy must beat with the same number of evaluations
(Li & Talwalkar 2019 showed it is a strong one), and the warm-up of evolution.
"""

from __future__ import annotations

from typing import Any, Mapping

from tinynas.space.arch import Arch
from tinynas.strategies.base import Strategy, register_strategy


@register_strategy
class RandomSearch(Strategy):
    """Each ask draws uniformly from the space, keeps what the filter accepts, never repeats an arch."""

    name = "random"

    def _propose(self, n: int) -> list[Arch]:
        out: list[Arch] = []
        exclude = set(self._seen)
        while len(out) < n:
            arch = self._sample_new(exclude)  # None: nothing untried found (ask() then checks exhaustion)
            if arch is None:
                break
            exclude.add(arch.id)
            out.append(arch)
        return out

    def _load_state(self, state: Mapping[str, Any]) -> None:
        # States saved before the base class kept ``exhausted`` had it here.
        self._exhausted = self._exhausted or bool(state.get("exhausted", False))
