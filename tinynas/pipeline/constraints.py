"""Hard constraints of a run: the cost-model check every candidate passes before it is trained,
and the up-front check that the space has anything at all that fits the board.

Sits between settings resolution and the first stage: an infeasible board fails in
a second with the smallest architecture's cost against each budget, not after an hour.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Collection

import numpy as np

from tinynas.errors import CostError, SearchError, SpaceError
from tinynas.space.arch import Arch
from tinynas.space.base import SearchSpace

log = logging.getLogger(__name__)

ENUMERATE_LIMIT = 2000
SAMPLES = 300


class CostCheck:
    """``check(arch) -> bool`` by ``tinynas.cost.estimate`` on the profile, with the Cost of each arch cached."""

    def __init__(self, *, space: SearchSpace, profile: Any) -> None:
        self.space = space
        self.profile = profile
        self._costs: dict[str, Any] = {}

    def cost(self, arch: Arch) -> Any:
        from tinynas.cost import estimate

        cost = self._costs.get(arch.id)
        if cost is None:
            cost = self._costs[arch.id] = estimate(self.space.graph(arch), profile=self.profile)
        return cost

    def __call__(self, arch: Arch) -> bool:
        try:
            return bool(self.cost(arch).fits)
        except (CostError, SpaceError) as exc:
            log.info("arch %s cannot be costed (%s): treated as not fitting", arch.id, exc)
            return False

    def overshoot(self, arch: Arch) -> float:
        """max over budgets of need / budget: <= 1 fits. Used to find the smallest arch."""
        try:
            checks = self.cost(arch).checks
        except (CostError, SpaceError):
            return float("inf")
        ratios = [c.need / c.budget for c in checks if c.budget]
        return max(ratios) if ratios else 0.0


def space_archs(space: SearchSpace, rng: np.random.Generator) -> list[Arch]:
    """Every valid arch of a space of up to ENUMERATE_LIMIT decision vectors; of a larger one, a sample."""
    if space.size() <= ENUMERATE_LIMIT:
        out = []
        for idx in itertools.product(*(range(len(d.options)) for d in space.decisions())):
            arch = space.decode(idx)
            if space.contains(arch):
                out.append(arch)
        return out
    archs = {a.id: a for a in (space.sample(rng) for _ in range(SAMPLES))}
    # The arch of every decision's first/smallest option is usually the cheapest one.
    smallest = [min(d.options) if all(isinstance(o, (int, float)) for o in d.options) else d.options[0]
                for d in space.decisions()]
    arch = Arch.from_dict(space.name, {d.name: v for d, v in zip(space.decisions(), smallest)})
    if space.contains(arch):
        archs[arch.id] = arch
    return list(archs.values())


def smallest_arch(check: CostCheck, *, seed: int = 0) -> tuple[Arch, float]:
    """The arch with the least overshoot of the board's budgets: all of a small space, else
    samples plus the all-smallest arch, improved by coordinate descent over decisions."""
    space = check.space
    rng = np.random.default_rng(seed)
    best = min(space_archs(space, rng), key=check.overshoot)
    best_ratio = check.overshoot(best)
    if space.size() > ENUMERATE_LIMIT:
        for _ in range(3):  # coordinate descent: change one decision at a time while it helps
            improved = False
            for d in space.decisions():
                for option in d.options:
                    cand = best.replace(**{d.name: option})
                    if cand.id == best.id or not space.contains(cand):
                        continue
                    ratio = check.overshoot(cand)
                    if ratio < best_ratio:
                        best, best_ratio, improved = cand, ratio, True
                if best_ratio <= 1.0:
                    return best, best_ratio
            if not improved:
                break
    return best, best_ratio


#: per budget check: its key in RunSettings.constraints() and the command-line flag that sets it
BUDGET_FLAGS = {"sram": ("arena_budget_bytes", "--arena-budget"), "flash": ("flash_budget_bytes", "--flash-budget"),
                "latency": ("latency_ms", "--latency-ms"), "macs": ("max_macs", "--max-macs")}


def require_feasible(check: CostCheck, *, seed: int = 0, given: Collection[str] = (),
                     smaller_input: str = "a smaller input") -> Arch:
    """An arch that fits the board, or SearchError with the smallest arch's cost against each budget.

    ``given``: the budgets the command line set (RunSettings.constraints() keys), so the error
    names the flag to raise rather than only a roomier board; ``smaller_input``: how this
    dataset's input gets smaller (an image folder's ``-o image_size``).
    """
    arch, ratio = smallest_arch(check, seed=seed)
    if ratio <= 1.0:
        return arch
    cost = check.cost(arch)
    parts, flags = [], []
    for c in cost.checks:
        if c.budget is None:
            continue
        unit = {"latency": "ms", "macs": "MACs"}.get(c.name, "bytes")
        need = f"{c.need:.3g}" if c.name == "latency" else f"{int(c.need):,}"
        budget = f"{c.budget:.3g}" if c.name == "latency" else f"{int(c.budget):,}"
        parts.append(f"{c.name} {need} {unit} vs budget {budget} {unit} ({'fits' if c.fits else 'over'})")
        key, flag = BUDGET_FLAGS.get(c.name, ("", ""))
        if not c.fits and key in given:
            flags.append(flag)
    profile = check.profile
    raise SearchError(
        f"no architecture of space {check.space.name!r} fits board {profile.id!r}: the smallest one found "
        f"({arch}) needs {'; '.join(parts)}; "
        + (f"raise {' and '.join(flags)} (given on the command line), or " if flags else "")
        + "pick a board with more room (e.g. `tinynas profiles list`), a space with smaller models (--space), "
        f"or {smaller_input}"
    )

