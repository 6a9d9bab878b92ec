#!/usr/bin/env python
"""How many architectures of each search space fit each board: the size of the space, the
number that pass the cost model's hard budgets (SRAM, flash, latency, MACs), and the median
MACs of those that fit. Issue 11: a space whose feasible set on a tight board is a few dozen
archs is used up long before a search budget is.

Feasible means what a run's constraints decide (``tinynas.pipeline.constraints.CostCheck``:
``tinynas.cost.estimate(graph, profile=...)`` and its budget checks), on the built-in
profiles (``--overlays`` adds this machine's calibrated latency overlays).

Spaces of at most ``--enumerate-limit`` decision vectors are enumerated (exact counts of
distinct, canonical archs). Larger ones (mcunet) are estimated from ``--samples`` uniform
decision vectors (what ``space.sample`` draws): the number of networks that fit is
``space.size()`` (distinct networks) x the weighted share of samples that fit, each sample
weighted 1/m, m being how many decision vectors spell its network (mcunet's unused blocks),
so the count is of networks, not spellings; the 95 % interval is the delta-method one of
that ratio, and the median MACs are weighted alike. Deep mcunet networks have the fewest
spellings and are the rarest samples, so its interval is wide. The "fit %" column is the
plain share of enumerated archs, or of samples, that fit.

    .venv/bin/python scripts/bench_space_feasible.py
    .venv/bin/python scripts/bench_space_feasible.py --spaces nanonas,dscnn --samples 5000
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from dataclasses import dataclass

import numpy as np

from tinynas.errors import SpaceError
from tinynas.hardware.loader import load_profile
from tinynas.pipeline.constraints import CostCheck
from tinynas.space import Arch, get_space
from tinynas.space.base import SearchSpace

SPACES = ("mcunet", "nanonas", "dscnn")
PROFILES = ("nucleo-l010rb", "nucleo-l412kb", "nano33ble")
INPUTS = ("28x28x1:10", "49x10x1:12")  # shape:classes (MNIST-like images, KWS MFCC)


@dataclass
class Cell:
    """One (space, input, profile) result; ``error`` when the space cannot take the input."""

    size: float = 0.0
    feasible: float = 0.0
    half_width: float | None = None  # of the 95 % interval; None for exact counts
    median_macs: float | None = None
    samples_feasible: int | None = None
    share: float = 0.0  # of the enumerated archs, or of the samples, that fit
    error: str | None = None

    def feasible_text(self) -> str:
        if self.error:
            return f"n/a: {self.error}"
        if self.half_width is None:
            return f"{int(self.feasible)}"
        if self.samples_feasible == 0:
            return "est. 0 (no sample fits)"
        low = max(self.feasible - self.half_width, 0.0)
        return f"est. {_num(self.feasible)} [{_num(low)}, {_num(self.feasible + self.half_width)}]"


def _num(x: float) -> str:
    return f"{x:.3g}" if x >= 1e5 or (0 < x < 10 and x != int(x)) else f"{int(round(x))}"


def parse_input(text: str) -> tuple[tuple[int, ...], int]:
    """``"28x28x1:10"`` -> ((28, 28, 1), 10)."""
    shape, _, classes = text.partition(":")
    return tuple(int(d) for d in shape.split("x")), int(classes or 10)


def multiplicity(space: SearchSpace, arch: Arch) -> int:
    """How many decision vectors decode to ``arch``'s network: per decision, the options that leave
    the canonical arch unchanged (more than 1 only where a decision goes unused, as in mcunet)."""
    m = 1
    for d in space.decisions():
        same = sum(1 for o in d.options if o == arch[d.name] or space.canonical(arch.replace(**{d.name: o})) == arch)
        m *= max(same, 1)
    return m


def weighted_median(values: list[float], weights: list[float]) -> float | None:
    if not values:
        return None
    order = np.argsort(values)
    cum = np.cumsum(np.asarray(weights)[order])
    return float(np.asarray(values)[order][int(np.searchsorted(cum, cum[-1] / 2))])


def enumerate_space(space: SearchSpace, checks: dict[str, CostCheck]) -> dict[str, Cell]:
    archs: dict[str, Arch] = {}
    for idx in itertools.product(*(range(len(d.options)) for d in space.decisions())):
        arch = space.decode(idx)
        if space.contains(arch):
            archs.setdefault(arch.id, arch)
    out = {}
    for profile_id, check in checks.items():
        macs = [check.cost(a).macs for a in archs.values() if check(a)]
        out[profile_id] = Cell(size=len(archs), feasible=len(macs), share=len(macs) / max(len(archs), 1),
                               median_macs=float(np.median(macs)) if macs else None)
    return out


def sample_space(space: SearchSpace, checks: dict[str, CostCheck], *, n: int, seed: int) -> dict[str, Cell]:
    rng = np.random.default_rng(seed)
    drawn: list[tuple[Arch | None, float]] = []  # (arch or None if invalid, 1/m)
    for _ in range(n):
        arch = space.decode([int(rng.integers(len(d.options))) for d in space.decisions()])
        drawn.append((arch, 1.0 / multiplicity(space, arch)) if space.contains(arch) else (None, 0.0))
    size = float(space.size())
    w = np.array([wt for _, wt in drawn])
    out = {}
    for profile_id, check in checks.items():
        fits = np.array([a is not None and check(a) for a, _ in drawn])
        y = np.where(fits, w, 0.0)
        ratio = y.sum() / w.sum()
        # delta method for a ratio of means (Cochran 1977, eq. 6.13)
        var = float(np.sum((y - ratio * w) ** 2)) / (n * (n - 1)) / float(w.mean()) ** 2
        hits = [(check.cost(a).macs, wt) for (a, wt), ok in zip(drawn, fits) if ok]
        out[profile_id] = Cell(
            size=size, feasible=size * ratio, half_width=size * 1.96 * math.sqrt(var),
            median_macs=weighted_median([m for m, _ in hits], [wt for _, wt in hits]),
            samples_feasible=len(hits), share=len(hits) / n,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", default=",".join(SPACES))
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--inputs", default=",".join(INPUTS), help="shape:classes, comma-separated")
    parser.add_argument("--samples", type=int, default=2000, help="uniform samples for spaces too large to enumerate")
    parser.add_argument("--enumerate-limit", type=int, default=200_000,
                        help="enumerate spaces of at most this many decision vectors")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overlays", action="store_true", help="use this machine's calibrated profile overlays")
    args = parser.parse_args()

    start = time.perf_counter()
    profiles = {p: load_profile(p, overlays=args.overlays) for p in args.profiles.split(",")}
    rows = []
    for name in args.spaces.split(","):
        for text in args.inputs.split(","):
            shape, classes = parse_input(text)
            t0 = time.perf_counter()
            try:
                space = get_space(name, input_shape=shape, num_classes=classes)
            except SpaceError as exc:
                reason = str(exc).split(";")[0]
                rows += [(name, text, p, Cell(error=reason), 0.0, "-") for p in profiles]
                continue
            checks = {p: CostCheck(space=space, profile=prof) for p, prof in profiles.items()}
            vectors = math.prod(len(d.options) for d in space.decisions())
            if vectors <= args.enumerate_limit:
                cells, method = enumerate_space(space, checks), "exact"
            else:
                cells, method = sample_space(space, checks, n=args.samples, seed=args.seed), f"{args.samples} samples"
            seconds = time.perf_counter() - t0
            rows += [(name, text, p, cells[p], seconds, method) for p in profiles]

    header = f"{'space':<8} {'input':<11} {'profile':<14} {'archs':>13} {'feasible (95 % interval)':>34} " \
             f"{'fit %':>6} {'median MACs of feasible':>24}  method"
    print(header)
    print("-" * len(header))
    for name, text, profile_id, cell, seconds, method in rows:
        if cell.error:
            print(f"{name:<8} {text:<11} {profile_id:<14} {'-':>13} {cell.feasible_text():>34}")
            continue
        median = "-" if cell.median_macs is None else f"{cell.median_macs:,.0f}"
        hits = "" if cell.samples_feasible is None else f" ({cell.samples_feasible} fit)"
        print(f"{name:<8} {text:<11} {profile_id:<14} {_num(cell.size):>13} {cell.feasible_text():>34} "
              f"{100 * cell.share:>6.1f} {median:>24}  {method}{hits}, {seconds:.0f} s for the space")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
