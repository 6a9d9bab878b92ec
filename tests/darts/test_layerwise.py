"""Layer-wise relaxation of mcunet around a base arch: derived archs are valid archs of the space, the expected
latency of one-hot weights is the cost model's latency of that arch, and a space with nothing to mix says which
decisions could not be relaxed."""

from __future__ import annotations

import numpy as np
import pytest

from tinynas.cost import estimate
from tinynas.darts.layerwise import layerwise_cost_tables, relax
from tinynas.errors import SearchError
from tinynas.hardware import load_profile
from tinynas.space.base import get_space


@pytest.fixture(scope="module")
def plan():
    space = get_space("mcunet", input_shape=(32, 32, 1), num_classes=10)
    base = space.sample(np.random.default_rng(3))
    return relax(space, base)


def test_plan_mixes_each_active_block_over_kernel_and_expand(plan):
    depths = sum(int(plan.base[f"s{s}_depth"]) for s in range(1, 6))
    assert plan.shape == (depths, 9) and depths > 0
    assert plan.derive(plan.one_hot(plan.base)) == plan.base


def test_derived_arch_is_a_valid_arch_of_the_space(plan):
    rng = np.random.default_rng(0)
    for _ in range(5):
        arch = plan.derive(rng.random(plan.shape))
        plan.space.validate(arch)
        assert arch.space == "mcunet" and estimate(plan.space.graph(arch)).macs > 0
        assert all(arch[n] == v for n, v in plan.base.decisions if not n.endswith(("_kernel", "_expand")))
    with pytest.raises(SearchError, match="blocks x options"):
        plan.derive(np.zeros((1, 2)))


def test_one_hot_expected_latency_equals_cost_model_latency(plan):
    profile = load_profile("nucleo-h743zi")
    tables = layerwise_cost_tables(plan, profile)
    rng = np.random.default_rng(1)
    for _ in range(4):
        choice = rng.integers(9, size=plan.shape[0])
        arch = plan.arch_of(list(choice))
        one_hot = np.eye(9)[choice]
        want = estimate(plan.space.graph(arch), profile=profile).latency_ms
        assert tables.expected_latency(one_hot) == pytest.approx(want, rel=1e-6)
    # bigger kernels and expands cost more on every block
    assert (tables.latency_ms[:, -1] > tables.latency_ms[:, 0]).all()


def test_space_with_nothing_to_mix_names_the_frozen_decisions():
    space = get_space("dscnn", input_shape=(49, 10, 1), num_classes=12)
    base = space.sample(np.random.default_rng(0))
    with pytest.raises(SearchError, match=r"nothing to mix.*blocks, channels.*could not be relaxed"):
        relax(space, base)
