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
from tinynas.space.arch import Arch
from tinynas.space.base import get_space


@pytest.fixture(scope="module")
def plan():
    space = get_space("mcunet", input_shape=(32, 32, 1), num_classes=10)
    base = space.sample(np.random.default_rng(3))
    return relax(space, base)


def test_plan_mixes_each_active_block_over_kernel_and_expand_and_skip(plan):
    depths = sum(int(plan.base[f"s{s}_depth"]) for s in range(1, 6))
    assert plan.shape == (depths, 10) and depths > 0
    assert plan.derive(plan.one_hot(plan.base)) == plan.base
    # skip (the last option) is masked exactly for each stage's first block
    firsts = [b.name.endswith("_b1") for b in plan.blocks]
    assert list(plan.mask[:, -1] == 0) == firsts and plan.mask[:, :-1].all() and not all(firsts)


def _stage3(space):
    """A base whose stage 3 has four blocks (kernel, expand) (3,3), (5,4), (7,6), (5,6), the others none."""
    values = dict(space.canonical(space.sample(np.random.default_rng(0))).decisions)
    values.update({f"s{s}_depth": 0 for s in range(1, 6)}, s3_depth=4, width=0.35, resolution=32)
    for b, (k, e) in enumerate([(3, 3), (5, 4), (7, 6), (5, 6)], start=1):
        values[f"s3_b{b}_kernel"], values[f"s3_b{b}_expand"] = k, e
    return space.canonical(Arch.from_dict("mcunet", values))


def test_a_skipped_middle_block_packs_the_later_blocks_up():
    space = get_space("mcunet", input_shape=(32, 32, 1), num_classes=10)
    plan = relax(space, _stage3(space))
    own = [int(np.argmax(row)) for row in plan.one_hot(plan.base)]
    skip = plan.shape[1] - 1
    arch = plan.arch_of([own[0], skip, own[2], own[3]])
    assert arch["s3_depth"] == 3
    assert [(arch[f"s3_b{b}_kernel"], arch[f"s3_b{b}_expand"]) for b in (1, 2, 3)] == [(3, 3), (7, 6), (5, 6)]
    # exactly the base's network without that block: the MACs it loses are the block's own
    without_last = plan.arch_of([own[0], own[1], own[2], skip])
    assert without_last["s3_depth"] == 3
    macs = lambda a: estimate(space.graph(a)).macs  # noqa: E731
    block2 = macs(plan.arch_of([own[0], own[1], skip, skip])) - macs(plan.arch_of([own[0], skip, skip, skip]))
    assert block2 > 0 and macs(plan.base) - macs(arch) == block2
    # one_hot reads a shallower stage as skips of its last blocks, and round-trips
    assert plan.arch_of([int(np.argmax(r)) for r in plan.one_hot(arch)]) == arch
    with pytest.raises(SearchError, match="s3_b1 is its stage's first"):
        plan.arch_of([skip, own[1], own[2], own[3]])
    # skip offered explicitly where no mixed block can be left out: refused by name
    with pytest.raises(SearchError, match="none of the mixed blocks.*can be left out"):
        relax(space, plan.base, options=[(3, 3), (0, 0)], blocks=["s3_b1"])


def test_derived_arch_is_a_valid_arch_of_the_space(plan):
    rng = np.random.default_rng(0)
    for _ in range(5):
        arch = plan.derive(rng.random(plan.shape))
        plan.space.validate(arch)
        assert arch.space == "mcunet" and estimate(plan.space.graph(arch)).macs > 0
        assert all(arch[n] == v for n, v in plan.base.decisions if not n.endswith(("_kernel", "_expand", "_depth")))
        assert all(arch[f"s{s}_depth"] <= plan.base[f"s{s}_depth"] for s in range(1, 6))
    with pytest.raises(SearchError, match="blocks x options"):
        plan.derive(np.zeros((1, 2)))


def test_one_hot_expected_latency_equals_cost_model_latency(plan):
    profile = load_profile("nucleo-h743zi")
    tables = layerwise_cost_tables(plan, profile)
    rng = np.random.default_rng(1)
    n_options = plan.shape[1]
    for _ in range(6):  # skips included: every skippable block is left out with probability 0.1
        choice = [int(rng.choice(np.flatnonzero(m))) for m in plan.mask]
        arch = plan.arch_of(choice)
        one_hot = np.eye(n_options)[choice]
        want = estimate(plan.space.graph(arch), profile=profile).latency_ms
        assert tables.expected_latency(one_hot) == pytest.approx(want, rel=1e-6)
    # bigger kernels and expands cost more on every block, and leaving a block out saves latency
    assert (tables.latency_ms[:, -2] > tables.latency_ms[:, 0]).all()
    skippable = plan.mask[:, -1] > 0
    assert (tables.latency_ms[skippable, -1] < 0).all() and (tables.latency_ms[~skippable, -1] == 0).all()


def test_space_with_nothing_to_mix_names_the_frozen_decisions():
    space = get_space("nanonas", input_shape=(28, 28, 1), num_classes=10)
    base = space.sample(np.random.default_rng(0))
    with pytest.raises(SearchError, match=r"nothing to mix.*k, c.*could not be relaxed"):
        relax(space, base)
    # dscnn has rules, but a base of one block whose stride allows one stem kernel has nothing to mix
    space = get_space("dscnn", input_shape=(40, 1), num_classes=10)
    single = Arch.from_dict("dscnn", {"blocks": 1, "channels": 8, "stem_kernel": "1x9", "stem_stride": "1x4"})
    with pytest.raises(SearchError, match=r"nothing to mix"):
        relax(space, single, options=[("1x9",), ("block",)])
