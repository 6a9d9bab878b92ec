"""The hardware-aware loss of differentiable search: cost tables from the cost model, expected latency and
memory with their gradients, the hinge and FBNet forms, and the hard check of the derived arch."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tinynas.darts import DartsConfig, search_cell
from tinynas.darts.hardware import CostTables, cost_tables, hardware_penalty, nearest_feasible
from tinynas.errors import SearchError
from tinynas.hardware import load_profile
from tinynas.space import Arch
from tinynas.space.nasbench201 import EDGE_NAMES, OPS, NasBench201Space

CONV3, CONV1, POOL, SKIP = (OPS.index(o) for o in ("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect"))


@pytest.fixture(scope="module")
def tables():
    space = NasBench201Space(input_shape=(8, 8, 1), num_classes=10, cells_per_stage=1, base_channels=8)
    return cost_tables(space, load_profile("nano33ble"))


def test_tables_order_the_ops_by_cost(tables):
    lat, arena = tables.latency_ms, tables.arena_bytes
    assert lat.shape == arena.shape == (6, 5) and tables.base_latency_ms > 0
    assert (lat[:, CONV3] > lat[:, CONV1]).all() and (lat[:, CONV1] > lat[:, POOL]).all()
    assert (lat[:, SKIP] == 0).all() and (arena[:, CONV3] >= arena[:, SKIP]).all()


def test_expected_costs_agree_in_numpy_and_tensorflow(tables):
    import tensorflow as tf

    p = np.random.default_rng(0).dirichlet(np.ones(5), size=6).astype(np.float32)
    assert tables.expected_latency(p) == pytest.approx(float(tables.expected_latency(tf.constant(p), tf)), rel=1e-5)
    assert tables.expected_arena(p) == pytest.approx(float(tables.expected_arena(tf.constant(p), tf)), rel=1e-5)
    one_hot = np.eye(5, dtype=np.float32)[[CONV3] * 6]
    assert tables.expected_latency(one_hot) == pytest.approx(tables.base_latency_ms + lat_sum(tables, CONV3))
    # the smooth max is close to the largest edge's arena and never below it
    assert tables.arena_bytes[:, CONV3].max() <= tables.expected_arena(one_hot) <= tables.arena_bytes[:, CONV3].max() + 2000


def lat_sum(tables: CostTables, op: int) -> float:
    return float(tables.latency_ms[:, op].sum())


def test_the_hinge_pushes_over_budget_archs_to_cheaper_ops(tables):
    import tensorflow as tf

    alpha = tf.Variable(np.zeros((6, 5), np.float32))
    tight = replace(tables, latency_target_ms=tables.base_latency_ms + 1.0)
    with tf.GradientTape() as tape:
        penalty, factor = hardware_penalty(tight, tf.nn.softmax(alpha, axis=-1), tf, strength=1.0)
    grad = tape.gradient(penalty, alpha).numpy()
    assert float(penalty) > 0 and factor == 1.0
    assert (grad[:, CONV3] > 0).all() and (grad[:, SKIP] < 0).all()  # descent moves weight from conv3x3 to skip
    roomy = replace(tables, latency_target_ms=1e6)
    penalty, _ = hardware_penalty(roomy, tf.nn.softmax(alpha, axis=-1), tf, strength=1.0)
    assert float(penalty) == 0.0
    _, factor = hardware_penalty(tables, tf.nn.softmax(alpha, axis=-1), tf, strength=1.0, form="fbnet")
    expected = 0.2 * np.log(tables.expected_latency(np.full((6, 5), 0.2))) ** 0.6
    assert float(factor) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(SearchError, match="'hinge' or 'fbnet'"):
        hardware_penalty(tables, tf.nn.softmax(alpha, axis=-1), tf, strength=1.0, form="proxyless")


def test_nearest_feasible_changes_fewest_edges_and_follows_the_weights():
    arch = Arch.from_dict("nasbench201", {n: "nor_conv_3x3" for n in EDGE_NAMES})
    weights = np.full((6, 5), 0.1)
    weights[:, CONV3] = 0.6
    weights[0, POOL] = 0.3  # edge 0's runner-up
    fits_with_one_cheap_edge = lambda a: sum(a[n] != "nor_conv_3x3" for n in EDGE_NAMES) >= 1  # noqa: E731
    chosen, changed = nearest_feasible(arch, weights, fits_with_one_cheap_edge)
    assert changed == 1 and chosen[EDGE_NAMES[0]] == "avg_pool_3x3"
    assert nearest_feasible(arch, weights, lambda a: True) == (arch, 0)
    with pytest.raises(SearchError, match="no arch of the nasbench201 cell fits"):
        nearest_feasible(arch, weights, lambda a: False)


@pytest.mark.slow
def test_a_hardware_aware_search_returns_an_arch_that_fits():
    from tinynas.data import load_dataset

    digits = load_dataset("digits")
    small = replace(digits, x_train=digits.x_train[:512], y_train=digits.y_train[:512])
    board = load_profile("nano33ble").with_budgets(latency_target_ms=20.0)
    result = search_cell(small, config=DartsConfig(epochs=1, hessian_every=0, base_channels=4, hw_lambda=5.0),
                         profile=board)
    assert result.cost is not None and result.cost["fits"] and result.cost["latency_ms"] <= 20.0
    assert result.changed_to_fit is not None and len(result.expected_latency_ms) == 1
    assert result.to_json()["cost"]["fits"]
