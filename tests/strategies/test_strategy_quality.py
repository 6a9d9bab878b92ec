"""On cheap synthetic objectives the learning strategies beat random search with the same
number of evaluations, and the NanoNAS hill climb reaches the optimum it should."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helper module beside this file, any import mode
from strategy_toys import NANONAS_PEAK, ToySpace, cells, nanonas_accuracy, nanonas_fits, toy_observation
from tinynas.errors import SearchError
from tinynas.space import get_space
from tinynas.strategies import Observation, make_strategy

BUDGET = 60
SEEDS = range(6)


def best_after(name: str, space, seed: int, **hyper) -> float:
    strategy = make_strategy(name, space=space, seed=seed, **hyper)
    told = 0
    while told < BUDGET:
        for arch in strategy.ask(4):
            strategy.tell(arch, toy_observation(space, arch))
            told += 1
    return strategy.best()[1].accuracy


@pytest.fixture(scope="module")
def random_mean() -> float:
    space = ToySpace(input_shape=(4, 4, 1), num_classes=3)
    return float(np.mean([best_after("random", space, seed) for seed in SEEDS]))


@pytest.mark.parametrize("name", ["evolution", "reinforce"])
def test_beats_random_with_the_same_budget(name, random_mean):
    space = ToySpace(input_shape=(4, 4, 1), num_classes=3)
    mean = float(np.mean([best_after(name, space, seed) for seed in SEEDS]))
    # measured: random ~0.64, evolution ~0.73, reinforce ~0.79 (scripts/bench_strategies.py)
    assert mean > random_mean + 0.03, (name, mean, random_mean)


def climb(space, **hyper):
    strategy = make_strategy("nanonas", space=space, feasible=nanonas_fits, **hyper)
    while not strategy.finished:
        archs = strategy.ask(8)
        assert archs, "the climb stalled without finishing"
        for arch in archs:
            assert nanonas_fits(arch)
            strategy.tell(arch, Observation(accuracy=nanonas_accuracy(arch), latency_ms=float(arch["k"])))
    return strategy


def test_nanonas_climbs_to_the_peak():
    space = get_space("nanonas", input_shape=(32, 32, 3), num_classes=10)
    strategy = climb(space)
    best_arch, best_obs = strategy.best()
    assert (best_arch["k"], best_arch["c"]) == NANONAS_PEAK and strategy.current == best_arch
    assert strategy.ask(3) == []  # a local optimum: nothing more to try
    # a hill climb evaluates a path, not the grid: far fewer than the 192 archs of the space
    assert len(strategy.history) < 40


def test_nanonas_stops_at_a_local_optimum_and_respects_the_filter():
    space = get_space("nanonas", input_shape=(32, 32, 3), num_classes=10)
    # with a tight budget the peak (12, 3) is out of reach: the climb ends on the best feasible border
    fits = lambda arch: int(arch["k"]) * (cells(arch) + 1) <= 24  # noqa: E731
    strategy = make_strategy("nanonas", space=space, feasible=fits)
    while not strategy.finished:
        for arch in strategy.ask(8):
            assert fits(arch)
            strategy.tell(arch, Observation(accuracy=nanonas_accuracy(arch)))
    k, c = strategy.current["k"], strategy.current["c"]
    assert fits(strategy.current) and (k + 2) * (c + 1) > 24 and k * (c + 2) > 24


def test_nanonas_starts_small_and_refuses_other_spaces():
    space = get_space("nanonas", input_shape=(32, 32, 3), num_classes=10)
    first = make_strategy("nanonas", space=space).ask(4)
    assert [(a["k"], a["c"]) for a in first] == [(1, 1)]
    with pytest.raises(SearchError, match="only on space"):
        make_strategy("nanonas", space=ToySpace(input_shape=(4, 4, 1), num_classes=3))
    with pytest.raises(SearchError, match="not in the space"):
        make_strategy("nanonas", space=space, start_k=99)
