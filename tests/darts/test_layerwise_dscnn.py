"""Layer-wise relaxation of dscnn (tinynas/darts/layerwise_dscnn.py): the stem kernel and keep-or-skip of every
block after the first are mixed, derived archs are archs of the space with the base's channels and stride, the
expected latency of one-hot weights is the cost model's, the supernet computes what the weights pick, and a short
hardware-aware search on digits and on a 1-D input derives an arch that fits."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tinynas.cost import estimate
from tinynas.darts import DartsConfig, relax, search_layerwise
from tinynas.darts.layerwise import SKIP, layerwise_cost_tables
from tinynas.darts.layerwise_dscnn import KEEP
from tinynas.darts.layerwise_search import nearest_feasible_layerwise
from tinynas.data import load_dataset
from tinynas.errors import SearchError
from tinynas.hardware import load_profile
from tinynas.space.arch import Arch
from tinynas.space.base import get_space

BASE = {"blocks": 4, "channels": 16, "stem_kernel": "5x5", "stem_stride": "2x2"}
TINY = DartsConfig(epochs=2, batch_size=32, hessian_samples=64, w_lr=0.05, alpha_lr=0.01)


@pytest.fixture(scope="module")
def plan():
    space = get_space("dscnn", input_shape=(8, 8, 1), num_classes=10)
    return relax(space, Arch.from_dict("dscnn", BASE))


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("digits")
    return replace(d, x_train=d.x_train[:256], y_train=d.y_train[:256], x_val=d.x_val[:128], y_val=d.y_val[:128])


def test_plan_mixes_the_stem_kernels_its_stride_allows_and_skip_for_later_blocks(plan):
    # 8x8 input: stem kernels 3x3, 5x5, 7x7 (10x4 is longer than the input), then keep and skip
    assert [b.name for b in plan.blocks] == ["stem", "b2", "b3", "b4"]
    assert plan.blocks[0].options == (("3x3",), ("5x5",), ("7x7",), KEEP, SKIP)
    np.testing.assert_array_equal(plan.mask, [[1, 1, 1, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 1, 1]])
    assert plan.derive(plan.one_hot(plan.base)) == plan.base
    # a 4x4 stride leaves out the kernels shorter than it on an axis
    wide = relax(plan.space, Arch.from_dict("dscnn", {**BASE, "stem_stride": "4x4"}))
    assert [o for o in wide.blocks[0].options if wide.blocks[0].allows(o)] == [("5x5",), ("7x7",)]


def test_derived_archs_keep_the_base_skeleton_and_skips_pack(plan):
    skip, keep = plan.shape[1] - 1, plan.shape[1] - 2
    arch = plan.arch_of([2, skip, keep, skip])
    assert dict(arch.decisions) == {**BASE, "blocks": 2, "stem_kernel": "7x7"}
    assert plan.derive(plan.one_hot(arch)) == arch
    rng = np.random.default_rng(0)
    for _ in range(5):
        derived = plan.derive(rng.random(plan.shape))
        plan.space.validate(derived)
        assert derived["channels"] == 16 and derived["stem_stride"] == "2x2" and 1 <= derived["blocks"] <= 4
    with pytest.raises(SearchError, match="cannot take option \\(block\\)"):
        plan.arch_of([keep, keep, keep, keep])
    # another channel count is not an arch of this supernet
    with pytest.raises(SearchError, match="it changes channels"):
        plan.one_hot(Arch.from_dict("dscnn", {**BASE, "channels": 24}))


def test_one_hot_expected_latency_equals_cost_model_latency(plan):
    profile = load_profile("nano33ble")
    tables = layerwise_cost_tables(plan, profile)
    rng = np.random.default_rng(1)
    for _ in range(6):
        choice = [int(rng.choice(np.flatnonzero(m))) for m in plan.mask]
        arch = plan.arch_of(choice)
        want = estimate(plan.space.graph(arch), profile=profile).latency_ms
        assert tables.expected_latency(np.eye(plan.shape[1])[choice]) == pytest.approx(want, rel=1e-6)
    assert tables.latency_ms[0, 2] > tables.latency_ms[0, 1] > tables.latency_ms[0, 0]  # 7x7 > 5x5 > 3x3
    assert (tables.latency_ms[1:, -1] < 0).all()  # leaving a block out saves latency


def test_the_supernet_computes_what_one_hot_weights_pick(plan, digits):
    import tensorflow as tf

    from tinynas.darts.layerwise_net import build_layerwise_supernet

    model = build_layerwise_supernet(plan, input_shape=(8, 8, 1), num_classes=10)
    assert [s.layers[0].kernel_size for s in model.stems] == [(3, 3), (5, 5), (7, 7)]
    x = tf.constant(digits.x_train[:4], tf.float32)
    skip, keep = plan.shape[1] - 1, plan.shape[1] - 2
    # stem 7x7, every block after the first skipped: stem 2 -> block 1 -> pool -> dense
    mixing = tf.constant(np.eye(plan.shape[1], dtype=np.float32)[[2, skip, skip, skip]])
    (_, first), *_ = model.ds_blocks
    y = first(model.stems[2](x, training=False), training=False)
    want = tf.nn.softmax(model.classifier(tf.reduce_mean(y, axis=(1, 2))))
    np.testing.assert_allclose(model(x, mixing).numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    # keeping a block changes the output
    kept = tf.constant(np.eye(plan.shape[1], dtype=np.float32)[[2, keep, skip, skip]])
    assert not np.allclose(model(x, kept).numpy(), want.numpy())


@pytest.mark.slow
def test_short_hardware_aware_search_derives_an_arch_that_fits(plan, digits):
    profile = load_profile("nano33ble")
    for method in ("darts", "drnas"):
        result = search_layerwise(digits, plan=plan, config=replace(TINY, method=method, hessian_every=1,
                                                                    hessian="power"), profile=profile)
        plan.space.validate(result.arch)
        assert result.epochs_run == 2 and len(result.eigenvalues) == 2 and result.expected_latency_ms[-1] > 0
        assert estimate(plan.space.graph(result.arch), profile=profile).arena_bytes <= profile.sram_budget_bytes
        assert max(result.val_accuracy) > 0.1


@pytest.mark.slow
def test_one_d_input_search():
    data = load_dataset("mnist1d")
    data = replace(data, x_train=data.x_train[:256], y_train=data.y_train[:256], x_val=data.x_val[:128],
                   y_val=data.y_val[:128])
    space = get_space("dscnn", input_shape=data.input_shape, num_classes=data.num_classes)
    base = Arch.from_dict("dscnn", {"blocks": 3, "channels": 16, "stem_kernel": "1x5", "stem_stride": "1x2"})
    plan = relax(space, base)
    assert [b.name for b in plan.blocks] == ["stem", "b2", "b3"]
    result = search_layerwise(data, plan=plan, config=TINY)
    space.validate(result.arch)
    assert result.arch["channels"] == 16 and result.arch["stem_stride"] == "1x2"


def test_repair_shrinks_the_stem_then_skips_the_last_blocks(plan):
    profile = load_profile("nano33ble")
    latency = lambda a: estimate(plan.space.graph(a), profile=profile).latency_ms  # noqa: E731
    skip = plan.shape[1] - 1
    biggest = plan.base.replace(stem_kernel="7x7")
    weights = np.full(plan.shape, 0.01)
    weights[0, 2] = 0.9
    weights[1:, plan.shape[1] - 2] = 0.9
    one_block = plan.arch_of([0, skip, skip, skip])
    arch, changed = nearest_feasible_layerwise(plan, biggest, weights, lambda a: latency(a) <= latency(one_block))
    assert arch == one_block and changed == 4
    with pytest.raises(SearchError, match="no choice of the mixed blocks stem, b2, b3, b4"):
        nearest_feasible_layerwise(plan, biggest, weights, lambda a: False)
