"""Behaviour particular to each strategy, the Pareto front and best() on hand-made data."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helper module beside this file, any import mode
from strategy_toys import TARGET, SmallToySpace, ToySpace, small_toy_observation, toy_observation
from tinynas.errors import SearchError
from tinynas.space import get_space
from tinynas.space.arch import Arch
from tinynas.strategies import Observation, Strategy, make_strategy, pareto_indices
from tinynas.strategies.reinforce import mnas_reward


def toy() -> ToySpace:
    return ToySpace(input_shape=(4, 4, 1), num_classes=3)


def arch_of(space, *indices) -> Arch:
    return space.decode(list(indices))


# -- Pareto front and best() --------------------------------------------------------------------
def test_pareto_indices_on_a_hand_made_set():
    points = [(1, 5), (2, 2), (3, 1), (2, 3), (1, 5), (4, 4), (0.5, 9)]
    # (2,3) is dominated by (2,2); (4,4) by (2,2); the duplicate (1,5) is kept twice
    assert pareto_indices(points) == [0, 1, 2, 4, 6]
    assert pareto_indices([]) == []


def test_pareto_front_and_best_over_observations():
    space = toy()
    a, b, c, d, e, f = (arch_of(space, i, 0, 0, 0, 0, 0) for i in range(6))
    s = make_strategy("random", space=space)
    s.tell(a, Observation(accuracy=0.70, latency_ms=10, arena_bytes=5000))
    s.tell(b, Observation(accuracy=0.80, latency_ms=20, arena_bytes=4000))
    s.tell(c, Observation(accuracy=0.75, latency_ms=25, arena_bytes=3000))  # dominated on latency by b
    s.tell(d, Observation(accuracy=0.95, latency_ms=5, arena_bytes=1, feasible=False))  # infeasible: never ranks
    s.tell(e, Observation(accuracy=None, latency_ms=1, arena_bytes=1))  # failed
    s.tell(f, Observation(accuracy=0.80, latency_ms=15, arena_bytes=9000))  # ties b on accuracy, faster
    assert [x for x, _ in s.pareto_front()] == [a, f]
    assert [x for x, _ in s.pareto_front(cost="arena_bytes")] == [c, b]
    assert [x for x, _ in s.pareto_front(cost=("latency_ms", "arena_bytes"))] == [a, f, b, c]
    assert s.best()[0] == f  # same accuracy as b, lower latency
    with pytest.raises(SearchError, match="cost must be"):
        s.pareto_front(cost="energy")


def test_observation_json_round_trip():
    obs = Observation(accuracy=0.5, latency_ms=1.5, arena_bytes=10, flash_bytes=20, feasible=True, extra={"e": 3})
    assert Observation.from_json(obs.to_json()) == obs
    assert Observation.from_json({"accuracy": None}).usable is False
    with pytest.raises(SearchError):
        Observation.from_json({"accuracy": "high"})


# -- random --------------------------------------------------------------------------------------
def test_random_never_repeats_and_exhausts_a_small_space():
    space = get_space("nanonas", input_shape=(4, 4, 1), num_classes=2)  # 32 k x 16 c = 512 archs
    s = make_strategy("random", space=space, seed=5, feasible=lambda a: a["k"] % 2 == 0)  # 256 feasible
    ids = []
    while not s.finished:
        batch = s.ask(7)
        ids += [a.id for a in batch]
        for a in batch:
            s.tell(a, Observation(accuracy=0.5))
    assert len(ids) == len(set(ids)) == 256
    assert s.ask(1) == []


# -- evolution -----------------------------------------------------------------------------------
def test_evolution_ages_out_the_oldest_and_starts_from_seed_archs():
    space = toy()
    seeds = [arch_of(space, *TARGET), arch_of(space, 0, 0, 0, 0, 0, 0)]
    s = make_strategy("evolution", space=space, seed=0, population_size=4, sample_size=2, seed_archs=seeds)
    assert s.ask(2) == seeds
    told = []
    for _ in range(10):
        for a in s.ask(1):
            s.tell(a, toy_observation(space, a))
            told.append(a)
    for a in seeds:
        s.tell(a, toy_observation(space, a))
    population = s.state_dict()["state"]["population"]
    assert len(population) == 4
    # regularized evolution: the four most recent results, even though the seeded optimum was better
    assert [Arch.from_json(p[0]) for p in population] == [*told[-2:], *seeds]


def test_evolution_mutates_the_tournament_winner():
    space = toy()
    s = make_strategy("evolution", space=space, seed=2, population_size=3, sample_size=3)
    for a in s.ask(3):
        s.tell(a, toy_observation(space, a))
    winner = s.best()[0]
    child = s.ask(1)[0]
    # sample_size == population_size: the tournament always picks the best, one decision changes
    assert sum(x != y for x, y in zip(space.encode(child), space.encode(winner))) == 1


def test_hyperparameters_are_listed_and_misspellings_suggested():
    from tinynas.strategies import strategy_hyperparameters

    assert strategy_hyperparameters("evolution")["population_size"] == 20
    assert strategy_hyperparameters("reinforce")["latency_target_ms"] is None
    with pytest.raises(SearchError, match="did you mean 'sample_size'"):
        make_strategy("evolution", space=toy(), sample_sise=3)


@pytest.mark.parametrize("hyper", [{"population_size": 1}, {"sample_size": 0}, {"sample_size": 30}, {"mutations": 0}])
def test_evolution_rejects_bad_hyperparameters(hyper):
    with pytest.raises(SearchError, match="evolution"):
        make_strategy("evolution", space=toy(), **hyper)


# -- reinforce -----------------------------------------------------------------------------------
def test_mnas_reward_forms():
    assert mnas_reward(0.8, 50.0, target_ms=None) == 0.8
    assert mnas_reward(0.8, None, target_ms=10.0) == 0.8
    assert mnas_reward(0.8, 20.0, target_ms=10.0) == pytest.approx(0.8 * 2 ** -0.07)  # MnasNet soft, w=-0.07
    assert mnas_reward(0.8, 5.0, target_ms=10.0) == pytest.approx(0.8 * 0.5 ** -0.07)
    assert mnas_reward(0.8, 5.0, target_ms=10.0, kind="hard") == 0.8  # w = 0 at or below T
    assert mnas_reward(0.8, 20.0, target_ms=10.0, kind="hard") == pytest.approx(0.4)  # w = -1 above T


def test_reinforce_policy_learns_the_rewarded_options():
    space = toy()
    s = make_strategy("reinforce", space=space, seed=0)
    before = [p[t] for p, t in zip(s.probabilities(), TARGET)]
    assert before == pytest.approx([1 / 6] * 6)
    for _ in range(40):
        for a in s.ask(3):
            s.tell(a, toy_observation(space, a))
    after = [p[t] for p, t in zip(s.probabilities(), TARGET)]
    assert np.mean(after) > 0.3 and all(math.isclose(p.sum(), 1.0) for p in s.probabilities())


def test_reinforce_latency_target_steers_toward_fast_archs():
    space = toy()

    def slow_but_accurate(arch):
        x = space.encode(arch)
        return Observation(accuracy=0.5 + 0.01 * sum(x[:5]), latency_ms=1.0 + 10.0 * sum(x[:5]))

    def mean_size(**hyper):
        s = make_strategy("reinforce", space=space, seed=1, **hyper)
        for _ in range(40):
            for a in s.ask(3):
                s.tell(a, slow_but_accurate(a))
        return float(np.mean([sum(space.encode(a)[:5]) for a, _ in s.history[-30:]]))

    # the hard reward divides accuracy by LAT/T above the target: the policy moves to small archs
    assert mean_size(latency_target_ms=20.0, reward="hard") < mean_size() - 3


@pytest.mark.parametrize(
    "hyper", [{"learning_rate": 0}, {"baseline_decay": 1.0}, {"reward": "soft-ish"}, {"latency_target_ms": -1}]
)
def test_reinforce_rejects_bad_hyperparameters(hyper):
    with pytest.raises(SearchError, match="reinforce"):
        make_strategy("reinforce", space=toy(), **hyper)


# -- exhaustion (the base class) -------------------------------------------------------------------
class Stubborn(Strategy):
    """Proposes the same arch every time: what a strategy stuck in a corner of the space does."""

    name = "stubborn"

    def _propose(self, n: int) -> list[Arch]:
        return [self.space.decode([0] * len(self.space.decisions()))]


def test_a_repeat_is_not_exhaustion_while_untried_feasible_archs_are_left():
    space = SmallToySpace(input_shape=(4, 4, 1), num_classes=3)
    s = Stubborn(space=space, feasible=lambda a: space.encode(a)[0] == 0)  # 9 feasible archs
    first = s.ask(1)
    s.tell(first[0], small_toy_observation(space, first[0]))
    assert s.ask(1) == first and not s.exhausted  # a repeat, passed on: the pipeline decides what to do
    assert s.feasible_count() == 9


def test_a_repeat_of_the_last_feasible_arch_is_exhaustion():
    space = SmallToySpace(input_shape=(4, 4, 1), num_classes=3)
    only = space.decode([0, 0, 0])
    s = Stubborn(space=space, feasible=lambda a: a == only)
    assert not s.exhausted
    assert s.ask(2) == [only] and s.exhausted  # the last untried arch, proposed: nothing is left after it
    s.tell(only, small_toy_observation(space, only))
    assert s.ask(1) == [] and s.finished and s.feasible_count() == 1


def test_exhaustion_of_a_space_too_big_to_scan_is_what_sampling_can_reach():
    space = toy()  # 46,656 archs: no scan, so no exact count
    fits = lambda a: space.encode(a)[:3] == [0, 0, 0]  # noqa: E731  216 feasible archs
    s = make_strategy("random", space=space, seed=1, feasible=fits)
    asked = []
    for _ in range(400):
        batch = s.ask(4)
        if not batch:
            break
        asked += [a.id for a in batch]
        for a in batch:
            s.tell(a, toy_observation(space, a))
    assert s.exhausted and s.feasible_count() is None
    # max_tries draws (a 1-in-216 hit each) stop finding the last few untried archs
    assert len(asked) == len(set(asked)) and 50 < len(asked) <= 216


def test_the_exhaustion_probe_leaves_the_proposals_alone():
    """Evolution's repeats trigger a probe for untried archs; it draws from its own generator."""
    space = toy()
    fits = lambda a: space.encode(a)[:3] == [0, 0, 0]  # noqa: E731  216 feasible archs, 15 neighbours each
    runs = []
    for probe in (True, False):
        s = make_strategy("evolution", space=space, seed=4, population_size=3, sample_size=3, feasible=fits)
        if not probe:
            s._nothing_untried = lambda proposed, **_: False  # what the strategy did before probes existed
        ids = []
        for _ in range(150):
            for a in s.ask(1):
                ids.append(a.id)
                s.tell(a, toy_observation(space, a))
        runs.append(ids)
    assert runs[0] == runs[1] and len(set(runs[0])) < len(runs[0])  # repeats happened, and changed nothing


# -- nanonas moves --------------------------------------------------------------------------------
def test_nanonas_steps_c_within_its_variant():
    """The grown space lists NanoNAS's plain counts, then each variant's ("1-avg" follows 5):
    one more cell from c=5 is no option, not the average-pooling network with one cell."""
    space = get_space("nanonas", input_shape=(32, 32, 3), num_classes=10)
    assert 5 in space.decisions()[1].options and "6" not in str(space.decisions()[1].options)
    s = make_strategy("nanonas", space=space, start_k=3, start_c=5)
    start = s.ask(1)[0]
    s.tell(start, Observation(accuracy=0.5))
    assert sorted((a["k"], a["c"]) for a in s.ask(8)) == [(1, 5), (3, 4), (5, 5)]
    v = make_strategy("nanonas", space=space, start_k=3, start_c="1-avg")
    start = v.ask(1)[0]
    v.tell(start, Observation(accuracy=0.5))
    assert sorted((a["k"], str(a["c"])) for a in v.ask(8)) == [(1, "1-avg"), (3, "2-avg"), (5, "1-avg")]
