"""The measured ensembles against their members on the bench data that chose them
(scores stored by scripts/bench_proxies.py in tests/proxies/data/), and the selection rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinynas.errors import ProxyError
from tinynas.proxies.benchmark import correlation, select_ensemble
from tinynas.proxies.ensemble import DATA_ENSEMBLE, DEFAULT_ENSEMBLE, RankEnsemble

DATA = Path(__file__).parent / "data"


def load(name: str) -> tuple[list[dict[str, float]], list[float]]:
    d = json.loads((DATA / name).read_text())
    return [dict(zip(d["proxies"], row)) for row in d["scores"]], d["accuracy"]


def spearman(ens: RankEnsemble, scores, acc) -> float:
    return correlation(list(ens.combine(scores)), acc)[0]


@pytest.mark.parametrize("members,data", [(DATA_ENSEMBLE, "nb201_data_n200.json"),
                                           (DEFAULT_ENSEMBLE, "nb201_datafree_n1000.json")])
def test_measured_ensemble_at_least_as_good_as_its_best_member(members, data):
    scores, acc = load(data)
    ens = RankEnsemble.of(members)
    best = max(correlation([s[m] for s in scores], acc)[0] for m in members)
    assert spearman(ens, scores, acc) >= best


def test_selection_starts_from_the_best_single_and_only_adds_what_helps():
    scores, acc = load("nb201_data_n200.json")
    candidates = list(scores[0])
    ens, rho = select_ensemble(scores, acc, candidates=candidates, min_gain=0.005)
    best_single = max(correlation([s[c] for s in scores], acc)[0] for c in candidates)
    assert rho >= best_single and rho == pytest.approx(spearman(ens, scores, acc))


def test_bad_ensembles_are_refused():
    with pytest.raises(ProxyError):
        RankEnsemble.of({"synflow": -1.0})
    with pytest.raises(ProxyError, match="unknown"):
        RankEnsemble.of(["nope"])
    with pytest.raises(ProxyError, match="not scored"):
        RankEnsemble.of(["synflow"]).combine([{"params": 1.0}])
