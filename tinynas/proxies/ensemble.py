"""Rank ensembles of zero-cost proxies: each member's scores become ranks over the
candidates at hand, and the ensemble score is their weighted mean.

Ranks make proxies of different scales (SynFlow's 1e15 against a parameter
count) comparable and respect each proxy's sign. The default members and
weights were chosen by measurement (``scripts/bench_proxies.py``), see
``DEFAULT_ENSEMBLE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from tinynas.errors import ProxyError
from tinynas.proxies.registry import get_proxy

# Chosen on NAS-Bench-201 CIFAR-10 (see DEFAULT_ENSEMBLE_EVIDENCE): data-free members only,
# so the ensemble also works for the prefilter without a dataset.
DEFAULT_ENSEMBLE: dict[str, float] = {"synflow": 1.0, "params": 1.0, "zen": 1.0}
# With a labelled batch: adds NASWOT, the data-dependent proxy that carries information params lacks.
DATA_ENSEMBLE: dict[str, float] = {"naswot": 1.0, "jacob_cov": 1.0, "params": 1.0}


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


def default_ensemble(*, with_data: bool = False) -> RankEnsemble:
    """The measured default: ``DATA_ENSEMBLE`` when a labelled batch is available, else ``DEFAULT_ENSEMBLE``."""
    return RankEnsemble.of(DATA_ENSEMBLE if with_data else DEFAULT_ENSEMBLE)


def ensemble_for(names: Sequence[str]) -> RankEnsemble:
    """The measured ensemble whose members are all among ``names`` (data one first), else equal weights of ``names``."""
    for members in (DATA_ENSEMBLE, DEFAULT_ENSEMBLE):
        if all(m in names for m in members):
            return RankEnsemble.of(members)
    return RankEnsemble.of(list(names))
