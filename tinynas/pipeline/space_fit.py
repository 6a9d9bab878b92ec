"""``space fit``: which slice of a space suits a board, by the MACs of what fits (MCUNet's first step).

MCUNet (Lin et al., NeurIPS 2020, section 3.1) picks the search space per board
before searching: for each (width multiplier, resolution) it samples networks,
keeps those that satisfy the board's memory, and compares the FLOPs distribution
of the survivors. A slice whose fitting networks do more work tends to reach
higher accuracy (their Figure 3: a higher mean FLOPs, a higher accuracy), and
a slice where almost nothing fits wastes the search. The same measure here, on
tinynas's cost model: for every combination of the space's scale decisions
(``scale_decisions``; the whole space is one slice when it has none), the share
of samples that fit and the MACs of those that do; the recommended slice is the
one with the largest mean MACs among those where at least ``min_fit_fraction``
of the samples fit.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinynas.errors import SearchError


@dataclass(frozen=True)
class SliceFit:
    """One slice of the space (its fixed decisions) on one board."""

    values: dict[str, Any]
    sampled: int
    feasible: int
    macs_mean: float | None
    macs_p10: int | None
    macs_p50: int | None
    macs_p90: int | None

    @property
    def fit_fraction(self) -> float:
        return self.feasible / self.sampled if self.sampled else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"values": self.values, "sampled": self.sampled, "feasible": self.feasible,
                "fit_fraction": round(self.fit_fraction, 4), "macs_mean": self.macs_mean, "macs_p10": self.macs_p10,
                "macs_p50": self.macs_p50, "macs_p90": self.macs_p90}


@dataclass(frozen=True)
class SpaceFit:
    space: str
    profile: str
    decisions: tuple[str, ...]
    slices: tuple[SliceFit, ...]
    best: int | None  # index into slices; None when nothing fits anywhere
    min_fit_fraction: float

    def to_json(self) -> dict[str, Any]:
        return {"space": self.space, "profile": self.profile, "decisions": list(self.decisions),
                "min_fit_fraction": self.min_fit_fraction,
                "best": None if self.best is None else self.slices[self.best].to_json(),
                "slices": [s.to_json() for s in self.slices]}


def fit_space(*, space: Any, profile: Any, samples: int = 100, seed: int = 0,
              min_fit_fraction: float = 0.1) -> SpaceFit:
    """Sample ``samples`` archs per slice of ``space`` and judge them on ``profile`` (see the module docstring).

    Raises SearchError for a non-positive ``samples`` or a fraction outside (0, 1].
    """
    from tinynas.pipeline.constraints import CostCheck

    if samples < 1:
        raise SearchError(f"space fit needs at least 1 sample per slice, got {samples}")
    if not 0.0 < min_fit_fraction <= 1.0:
        raise SearchError(f"min_fit_fraction must be in (0, 1], got {min_fit_fraction}")
    names = tuple(getattr(space, "scale_decisions", ()))
    options = {d.name: d.options for d in space.decisions()}
    grid = sorted(itertools.product(*(options[n] for n in names)))
    check = CostCheck(space=space, profile=profile)
    rng = np.random.default_rng(seed)
    slices = []
    for combo in grid:
        fixed = dict(zip(names, combo))
        macs = []
        for _ in range(samples):
            arch = space.sample(rng)
            if fixed:
                arch = arch.replace(**fixed)
                arch = space.canonical(arch) if hasattr(space, "canonical") else arch
            if check(arch):
                macs.append(int(check.cost(arch).macs))
        p10, p50, p90 = (int(v) for v in np.percentile(macs, [10, 50, 90])) if macs else (None, None, None)
        slices.append(SliceFit(values=fixed, sampled=samples, feasible=len(macs),
                               macs_mean=float(np.mean(macs)) if macs else None, macs_p10=p10, macs_p50=p50,
                               macs_p90=p90))
    eligible = [i for i, s in enumerate(slices) if s.feasible and s.fit_fraction >= min_fit_fraction]
    if not eligible:  # nothing fits often enough: the slice where anything fits most often
        eligible = [i for i, s in enumerate(slices) if s.feasible]
    best = max(eligible, key=lambda i: (slices[i].macs_mean, slices[i].fit_fraction)) if eligible else None
    return SpaceFit(space=space.name, profile=profile.id, decisions=names, slices=tuple(slices), best=best,
                    min_fit_fraction=min_fit_fraction)
