"""Rank ensembles of zero-cost proxies: each member's scores become ranks over the
candidates at hand, and the ensemble score is their weighted mean.

Ranks make proxies of different scales (SynFlow's 1e15 against a parameter
count) comparable and respect each proxy's sign. Members and weights were
chosen by measurement (``scripts/bench_proxies.py``; selection: greedy forward
selection, ``benchmark.select_ensemble``, a member is added only if it raises
Spearman by >= 0.005), on 2026-11-29:

DEFAULT_ENSEMBLE (data-free; the prefilter's default), chosen on the mean
Spearman over five bench sets: NAS-Bench-201 CIFAR-10 val (1,000 cells, 1 cell
per stage), nanonas x {digits, mnist1d} (100 archs, 2 epochs), mcunet x
{digits, mnist1d} (40 archs, 2 epochs, 600 training examples):

    candidate                nb201  nano/dig nano/m1d mcu/dig mcu/m1d  mean
    macs                     0.786   0.950    0.978   0.647   0.612   0.795  <- chosen
    macs + params            0.786   0.967    0.977   0.606   0.613   0.790
    params                   0.786   0.967    0.966   0.536   0.613   0.774
    synflow                  0.742   0.915    0.852   0.320   0.250   0.616
    zen                      0.736   0.958    0.933   0.082   0.242   0.590
    synflow + params + zen   0.778   0.961    0.930   0.345   0.384   0.680

No data-free zero-cost proxy, alone or in a rank ensemble, beat the MAC count.

DATA_ENSEMBLE (needs a labelled batch), chosen on 200 NAS-Bench-201 cells
(seed 1; batch: 64 scikit-learn digits resized to 32x32x3) and checked on 100
other cells (seed 0):

    set                 naswot  jacob_cov  params  synflow  ensemble
    selection (n=200)    0.756    0.726    0.739    0.705    0.844
    held out  (n=100)    0.767    0.767    0.754    0.742    0.883

It does not carry over to the MCU spaces: nanonas 0.877 / 0.881 and mcunet
0.646 / 0.622 (digits / mnist1d) against MACs' 0.950 / 0.978 / 0.647 / 0.612,
so it is offered for cell spaces like NAS-Bench-201, not used by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from tinynas.errors import ProxyError
from tinynas.proxies.registry import get_proxy

# Both chosen by measurement: see the tables in the module docstring.
DEFAULT_ENSEMBLE: dict[str, float] = {"macs": 1.0}
DATA_ENSEMBLE: dict[str, float] = {"naswot": 1.0, "jacob_cov": 1.0, "params": 1.0}
#: Data-free ensembles of the spaces where another proxy beat MACs, measured per space (issue 14;
#: ``scripts/bench_sequence_spaces.py --proxy-archs 50``, Spearman against validation accuracy after
#: 3 epochs on 500 training samples, benchmarks/sequence_spaces/):
#:   gcn on digits-grid, 50 archs: params +0.81, macs +0.16 (macs + params +0.54, synflow +0.25)
#:   tinyformer on japanesevowels, 50 archs: params +0.68, macs +0.51 (macs + params +0.61,
#:   synflow +0.33, zen +0.33; with data: snip +0.60)
SPACE_ENSEMBLES: dict[str, dict[str, float]] = {
    "gcn": {"params": 1.0},
    "tinyformer": {"params": 1.0},
}


@dataclass(frozen=True)
class RankEnsemble:
    """Weighted mean of per-member normalised ranks (0 = worst, 1 = best among the scored set)."""

    members: tuple[tuple[str, float], ...]

    @classmethod
    def of(cls, members: Mapping[str, float] | Sequence[str]) -> "RankEnsemble":
        items = members.items() if isinstance(members, Mapping) else ((m, 1.0) for m in members)
        pairs = tuple((str(k), float(v)) for k, v in items)
        if not pairs or any(w < 0 for _, w in pairs) or sum(w for _, w in pairs) <= 0:
            raise ProxyError(f"an ensemble needs members with non-negative weights summing above 0, got {pairs}")
        for name, _ in pairs:
            get_proxy(name)
        return cls(pairs)

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.members]

    def combine(self, scores: Sequence[Mapping[str, float]]) -> np.ndarray:
        """The ensemble score of each candidate (higher is better); ties share their average rank."""
        if not scores:
            return np.zeros(0)
        total = np.zeros(len(scores))
        weight_sum = sum(w for _, w in self.members)
        for name, weight in self.members:
            spec = get_proxy(name)
            try:
                values = np.array([s[name] for s in scores], dtype=np.float64)
            except KeyError:
                raise ProxyError(f"ensemble member {name!r} was not scored; score it before combining") from None
            total += weight * normalised_rank(values if spec.higher_is_better else -values)
        return total / weight_sum

    def to_json(self) -> dict:
        return {"members": dict(self.members)}


def normalised_rank(values: np.ndarray) -> np.ndarray:
    """Average ranks scaled to [0, 1] (NaN ranks lowest)."""
    from scipy.stats import rankdata

    v = np.where(np.isnan(values), -np.inf, values)
    if len(v) == 1:
        return np.ones(1)
    return (rankdata(v, method="average") - 1.0) / (len(v) - 1.0)


def default_ensemble(*, with_data: bool = False, space: str | None = None) -> RankEnsemble:
    """``DATA_ENSEMBLE`` when asked for the data one, else the data-free one measured for ``space``
    (``SPACE_ENSEMBLES``), else ``DEFAULT_ENSEMBLE``."""
    if with_data:
        return RankEnsemble.of(DATA_ENSEMBLE)
    return RankEnsemble.of(SPACE_ENSEMBLES.get(space or "", DEFAULT_ENSEMBLE))


def ensemble_for(names: Sequence[str]) -> RankEnsemble:
    """The measured ensemble whose members are all among ``names`` (data one first), else equal weights of ``names``."""
    for members in (DATA_ENSEMBLE, DEFAULT_ENSEMBLE):
        if all(m in names for m in members):
            return RankEnsemble.of(members)
    return RankEnsemble.of(list(names))
