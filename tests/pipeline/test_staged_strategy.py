"""tinynas/strategies/staged.py (registered by name; the shared strategy suite covers ask/tell and resume):
here, what makes it staged: the prefilter's seeds come first and evolution starts from them."""

from __future__ import annotations

import numpy as np

from tinynas.space import get_space
from tinynas.strategies import Observation, make_strategy, strategy_names
from tinynas.strategies.staged import StagedSearch, seeds_for_budget


def test_registered_and_default_constructible():
    assert "staged" in strategy_names()
    space = get_space("dscnn", input_shape=(8, 8, 1), num_classes=10)
    assert isinstance(make_strategy("staged", space=space, seed=0), StagedSearch)


def test_seeds_first_then_mutations_of_the_best():
    space = get_space("dscnn", input_shape=(8, 8, 1), num_classes=10)
    rng = np.random.default_rng(0)
    seeds = []
    while len(seeds) < 4:
        a = space.sample(rng)
        if a.id not in {s.id for s in seeds}:
            seeds.append(a)
    strategy = make_strategy("staged", space=space, seed=1, seed_archs=seeds, population_size=6, sample_size=4)
    first = strategy.ask(4)
    assert [a.id for a in first] == [a.id for a in seeds]
    best = seeds[2]
    for a in first:
        strategy.tell(a, Observation(accuracy=0.9 if a.id == best.id else 0.2, latency_ms=1.0))
    # The warm-up is the seeds: from now on every proposal is a mutation (two one-decision steps) of a
    # tournament winner.
    children = []
    for _ in range(6):
        (child,) = strategy.ask(1)
        children.append(child)
        strategy.tell(child, Observation(accuracy=0.1, latency_ms=1.0))
    near_best = sum(1 <= sum(x != y for x, y in zip(space.encode(c), space.encode(best))) <= 2 for c in children)
    assert near_best >= 3, children  # the best seed wins most tournaments of 4 out of 4-6 members


def test_seeds_fill_half_a_candidate_budget_and_all_of_a_time_budget():
    space = get_space("dscnn", input_shape=(8, 8, 1), num_classes=10)
    kept = [space.decode([b, 0, 0, 0]) for b in range(6)]
    assert seeds_for_budget(kept, 8) == kept[:4]
    assert seeds_for_budget(kept, 1) == kept[:2]  # two seeds, so the first tournament has a choice
    assert seeds_for_budget(kept, 100) == kept
    assert seeds_for_budget(kept, None) == kept
