"""DARTS, DrNAS and RobustDARTS on the NAS-Bench-201 cell: the derived arch belongs to the nasbench201 space,
the pieces compute what the papers define, and a short real search runs on digits."""

from __future__ import annotations

import numpy as np
import pytest

from tinynas.darts import DartsConfig, derive_arch, early_stop_epoch, search_cell
from tinynas.errors import SearchError
from tinynas.space import get_space
from tinynas.space.nasbench201 import EDGE_NAMES, OPS


def test_derive_arch_takes_the_argmax_without_none():
    w = np.full((6, 5), 0.1)
    w[:, OPS.index("none")] = 0.9  # none dominates everywhere, yet is never chosen
    w[:, OPS.index("nor_conv_3x3")] = 0.5
    w[2, OPS.index("skip_connect")] = 0.6
    arch = derive_arch(w)
    space = get_space("nasbench201", input_shape=(8, 8, 1), num_classes=10)
    space.validate(arch)
    assert arch["edge_2_1"] == "skip_connect"
    assert all(arch[n] == "nor_conv_3x3" for n in EDGE_NAMES if n != "edge_2_1")
    with pytest.raises(SearchError, match="6x5"):
        derive_arch(np.zeros((5, 5)))


def test_robust_darts_early_stop_rule():
    flat = [1.0] * 30
    assert early_stop_epoch(flat, min_epoch=10) is None
    rising = [1.0] * 12 + [1.0 + 0.3 * i for i in range(1, 15)]
    t = early_stop_epoch(rising, min_epoch=10)
    means = [np.mean(rising[max(0, i - 4):i + 1]) for i in range(len(rising))]
    assert t is not None and t >= 10 and means[t] / means[t - 4] > 1.3
    assert all(means[i] / means[i - 4] <= 1.3 for i in range(10, t))
    # a rise before min_epoch does not count
    assert early_stop_epoch([1.0, 5.0, 9.0] + [9.0] * 20, min_epoch=10) is None


@pytest.mark.parametrize("changes, message", [
    ({"method": "gdas"}, "unknown differentiable method"),
    ({"method": "drnas", "order": 2}, "2 only for darts"),
    ({"drnas_regularizer": "l1"}, "'l2' or 'kl'"),
    ({"epochs": 0}, "at least 1"),
    ({"epochs": 5, "warmup_epochs": 5}, "warmup_epochs must be in"),
    ({"warmup_epochs": -1}, "warmup_epochs must be in"),
    ({"regularize": 0.0}, "regularize must be > 0"),
    ({"drop_path": 1.0}, r"drop_path in \[0, 1\)"),
])
def test_bad_configs_are_refused(changes, message):
    with pytest.raises(SearchError, match=message):
        DartsConfig(**changes)


def test_supernet_mixing_selects_ops():
    """One-hot mixing makes each edge one op: all `none` gives a zero cell, which a reduction then starts over."""
    import tensorflow as tf

    from tinynas.darts.cell import build_cell_supernet

    model = build_cell_supernet(input_shape=(8, 8, 1), num_classes=10, cells_per_stage=1, base_channels=4)
    cell = model.stages[0][0]
    x = tf.random.normal((2, 8, 8, 4))
    none = tf.one_hot([OPS.index("none")] * 6, 5)
    assert float(tf.reduce_max(tf.abs(cell(x, none)))) == 0.0
    skip = tf.one_hot([OPS.index("skip_connect")] * 6, 5)
    # node1 = x, node2 = x + node1, node3 = x + node1 + node2 = 4x
    np.testing.assert_allclose(cell(x, skip).numpy(), 4 * x.numpy(), rtol=1e-5)
    pool = tf.one_hot([OPS.index("avg_pool_3x3")] * 6, 5)
    corner = cell(tf.ones((1, 8, 8, 4)), pool).numpy()
    np.testing.assert_allclose(corner, np.full_like(corner, 4.0), rtol=1e-5)  # padding excluded from the mean


def test_candidate_convolutions_have_no_batchnorm_scale_unless_asked():
    """DARTS's search ops: BatchNorm without affine parameters; ``affine_ops`` (a diagnostic) adds them."""
    import tensorflow as tf

    from tinynas.darts.cell import build_cell_supernet

    def edge_norm_weights(affine_ops: bool) -> set[str]:
        model = build_cell_supernet(input_shape=(8, 8, 1), num_classes=10, base_channels=4, affine_ops=affine_ops)
        model(tf.zeros((1, 8, 8, 1)), tf.fill((6, 5), 0.2))
        edge = model.stages[0][0].edges[0]
        return {w.path.rsplit("/", 1)[-1] for op in edge.ops.values() for w in op.trainable_weights
                if "batch_normalization" in w.path}

    assert edge_norm_weights(False) == set()
    assert edge_norm_weights(True) == {"gamma", "beta"}


def test_drop_path_drops_whole_samples_of_every_op_but_the_skip():
    """RobustDARTS's DP variant: in training, an op's output is zeroed for a share p of the samples and the rest
    scaled by 1 / (1 - p); the skip passes untouched, and inference and p = 0 never drop."""
    import tensorflow as tf

    from tinynas.darts.cell import DROPPED_OPS, build_cell_supernet

    model = build_cell_supernet(input_shape=(8, 8, 1), num_classes=10, base_channels=4, drop_path=True)
    assert np.all(model.drop_factors(400).numpy() == 1.0)  # probability 0 until it is set
    model.set_drop_prob(0.5)
    factors = model.drop_factors(400).numpy()
    assert factors.shape == (3, 6, len(DROPPED_OPS), 400) and set(np.unique(factors)) == {0.0, 2.0}
    assert 0.4 < (factors == 0.0).mean() < 0.6
    edge, x = model.stages[0][0].edges[0], tf.ones((400, 8, 8, 4))
    pool, skip = tf.one_hot(OPS.index("avg_pool_3x3"), 5), tf.one_hot(OPS.index("skip_connect"), 5)
    drops = factors[0, 0]
    per_sample = edge(x, pool, training=True, drops=drops).numpy().reshape(400, -1)
    np.testing.assert_allclose(per_sample, np.repeat(drops[DROPPED_OPS.index("avg_pool_3x3")][:, None], 256, 1))
    assert np.allclose(edge(x, skip, training=True, drops=drops).numpy(), 1.0)
    # the whole network: training passes differ, inference and functions traced without it do not
    images, uniform = tf.random.normal((16, 8, 8, 1)), tf.fill((6, 5), 0.2)
    assert not np.allclose(model(images, uniform, training=True), model(images, uniform, training=True))
    np.testing.assert_allclose(model(images, uniform), model(images, uniform))
    with model.without_drop_path():
        plain = tf.function(lambda v: model(v, uniform, training=True))
        first = plain(images).numpy()
    np.testing.assert_allclose(plain(images).numpy(), first, rtol=1e-5)
    # the layer-wise supernet has no DropPath: refused by name, not ignored
    from tinynas.darts.search import _search_loop
    from tinynas.data import load_dataset

    with pytest.raises(SearchError, match="only the nasbench201 cell"):
        _search_loop(load_dataset("digits"), model=object(), shape=(6, 5), derive=derive_arch,
                     cfg=DartsConfig(drop_path=0.5))


def test_drnas_gradient_flows_through_the_dirichlet_sample():
    import tensorflow as tf

    from tinynas.darts.search import _State
    from tinynas.darts.cell import build_cell_supernet

    model = build_cell_supernet(input_shape=(8, 8, 1), num_classes=3, base_channels=4)
    state = _State(model, DartsConfig(method="drnas"), shape=(6, 5))
    x, y = np.random.default_rng(0).normal(size=(8, 8, 8, 1)).astype(np.float32), np.arange(8) % 3
    grad = state._alpha_grad(tf.constant(x), tf.constant(y.astype(np.int32))).numpy()
    assert grad.shape == (6, 5) and np.isfinite(grad).all() and np.abs(grad).sum() > 0
    sample = state.mixing().numpy()
    np.testing.assert_allclose(sample.sum(axis=1), 1.0, rtol=1e-5)
    kl = DartsConfig(method="drnas", drnas_regularizer="kl")
    state.cfg = kl
    state.alpha.assign(tf.zeros((6, 5)))  # beta = 1: the prior itself, KL 0
    assert abs(float(state._regularizer())) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("config", [DartsConfig(method="drnas", epochs=1, hessian_every=0, base_channels=4),
                                    # with RobustDARTS's L2 and DropPath: the training graphs carry the DropPath
                                    # draw, which the eigenvalue's Hessian-vector products must be traced without
                                    DartsConfig(order=2, epochs=1, hessian_every=1, hessian_samples=64,
                                                base_channels=4, regularize=27.0, drop_path=0.5)],
                         ids=["drnas-1st-order", "darts-2nd-order-hessian-l2-droppath"])
def test_a_short_search_on_digits_derives_a_nasbench201_arch(config):
    from dataclasses import replace

    from tinynas.data import load_dataset

    digits = load_dataset("digits")
    small = replace(digits, x_train=digits.x_train[:512], y_train=digits.y_train[:512])  # 4 steps per epoch
    result = search_cell(small, config=config)
    get_space("nasbench201", input_shape=(8, 8, 1), num_classes=10).validate(result.arch)
    assert result.epochs_run == 1 and len(result.weights) == 1 and len(result.val_accuracy) == 1
    assert np.allclose(np.sum(result.weights[0], axis=1), 1.0, atol=1e-3)
    # scripts/bench_darts.py reads the per-epoch derived cells from weights: the returned arch must be one of them
    assert result.arch_epoch == 0 and derive_arch(np.asarray(result.weights[result.arch_epoch])).id == result.arch.id
    if config.hessian_every:
        assert result.eigenvalues[0] is not None and np.isfinite(result.eigenvalues[0])
    info = result.to_json()
    assert sum(info["op_counts"].values()) == 6 and info["op_counts"]["none"] == 0


@pytest.mark.slow
def test_warm_up_epochs_train_only_the_weights():
    """During warm-up alpha keeps its initialisation and no eigenvalue is taken; then the search starts."""
    from dataclasses import replace

    import tensorflow as tf

    from tinynas.data import load_dataset

    digits = load_dataset("digits")
    small = replace(digits, x_train=digits.x_train[:512], y_train=digits.y_train[:512])  # 4 steps per epoch
    config = DartsConfig(epochs=2, warmup_epochs=1, hessian_every=1, hessian_samples=32, base_channels=4)
    result = search_cell(small, config=config)
    init = tf.nn.softmax(1e-3 * tf.random.Generator.from_seed(config.seed).normal((6, 5)), axis=-1).numpy()
    np.testing.assert_allclose(result.weights[0], init, atol=2e-5)
    assert np.abs(np.asarray(result.weights[1]) - init).max() > 5e-5
    assert result.eigenvalues[0] is None and np.isfinite(result.eigenvalues[1])


def test_a_dataset_too_small_for_two_halves_is_refused():
    from tinynas.data import load_dataset

    with pytest.raises(SearchError, match="needs at least"):
        search_cell(load_dataset("digits"), config=DartsConfig(batch_size=1000))


def test_sequence_datasets_are_refused():
    from tinynas.data import load_dataset

    with pytest.raises(SearchError, match="image inputs"):
        search_cell(load_dataset("mnist1d"), config=DartsConfig())


@pytest.mark.slow
def test_the_exact_hessian_equals_second_derivatives_taken_row_by_row():
    """The eigenvalue's Hessian is built from one Hessian-vector product per entry of alpha (to bound its
    memory); rows differentiated directly, one gradient entry at a time, must give the same numbers."""
    import tensorflow as tf

    from tinynas.darts.cell import build_cell_supernet
    from tinynas.darts.search import _State

    model = build_cell_supernet(input_shape=(8, 8, 1), num_classes=3, base_channels=4)
    state = _State(model, DartsConfig(), shape=(6, 5))
    state.alpha.assign(np.random.default_rng(1).normal(size=(6, 5)).astype(np.float32))
    x, y = np.random.default_rng(0).normal(size=(16, 8, 8, 1)).astype(np.float32), (np.arange(16) % 3).astype(np.int32)
    hessian = state.hessian(x, y)
    rows = [0, 7, 14, 22, 29]  # one per edge, different ops (eager second derivatives take ~1 s per row)
    with tf.GradientTape(persistent=True) as outer:
        with tf.GradientTape() as inner:
            loss = state._loss(tf.constant(x), tf.constant(y), state.mixing_mean_tensor())
        grad = tf.reshape(inner.gradient(loss, state.alpha), [-1])
        entries = [grad[i] for i in rows]
    reference = np.stack([outer.gradient(g, state.alpha).numpy().reshape(30) for g in entries])
    scale = np.abs(reference).max()
    assert scale > 0
    np.testing.assert_allclose(hessian[rows], reference, atol=1e-5 * scale)
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-5 * np.abs(hessian).max())
