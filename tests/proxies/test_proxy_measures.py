"""Every registered proxy on small real networks: finite, deterministic with a seed, the model it
is given unchanged, and the right sign on pairs whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinynas.errors import ProxyError
from tinynas.proxies import Batch, compute_proxy, get_proxy, proxy_names, register_proxy, score_graph
from tinynas.proxies.benchmark import digits_batch
from tinynas.proxies.measures import synflow_tape
from tinynas.proxies.registry import ProxyInput
from tinynas.space import get_space
from tinynas.space.nasbench201 import NasBench201Space

GOOD = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ZERO = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"  # ~10 % on CIFAR-10 in the published table
ALL = ["fisher", "grad_norm", "grasp", "jacob_cov", "macs", "naswot", "params", "snip", "synflow", "zen"]


def nb201(width: int = 4) -> NasBench201Space:
    return NasBench201Space(input_shape=(16, 16, 3), num_classes=10, cells_per_stage=1, base_channels=width)


@pytest.fixture(scope="module")
def batch() -> Batch:
    return digits_batch(input_shape=(16, 16, 3), n=8, seed=0)


@pytest.fixture(scope="module")
def good_scores(batch):
    s = nb201()
    graph = s.graph(s.from_string(GOOD))
    return graph, score_graph(graph, proxies=ALL, batch=batch, seed=3)


def test_registry_lists_every_proxy_with_its_sign():
    assert set(ALL) <= set(proxy_names())
    assert set(proxy_names(needs_data=False)) >= {"synflow", "zen", "params", "macs"}
    assert get_proxy("synflow").higher_is_better and not get_proxy("synflow").needs_data
    assert get_proxy("naswot").needs_data and not get_proxy("params").needs_tf
    with pytest.raises(ProxyError, match="known: .*synflow"):
        get_proxy("synflo")
    with pytest.raises(ProxyError, match="already registered"):
        register_proxy("synflow", higher_is_better=True)(lambda inp: 0.0)


def test_finite_and_deterministic(good_scores, batch):
    graph, first = good_scores
    assert all(math.isfinite(v) for v in first.values()), first
    again = score_graph(graph, proxies=ALL, batch=batch, seed=3)
    assert again == pytest.approx(first, rel=1e-5)
    other_seed = score_graph(graph, proxies=["synflow", "zen"], seed=4)
    assert other_seed["synflow"] != first["synflow"]


def test_known_pair_conv_cell_beats_zero_cell(good_scores, batch):
    s = nb201()
    _, good = good_scores
    bad = score_graph(s.graph(s.from_string(ZERO)), proxies=ALL, batch=batch, seed=3)
    # GraSP is left out: on one pair its sign is not reliable (published Spearman 0.51 on NB201;
    # here it gives -10.5 to the conv cell and 0 to the zero cell).
    for name in (n for n in ALL if n != "grasp"):
        sign = 1 if get_proxy(name).higher_is_better else -1
        assert sign * good[name] > sign * bad[name], (name, good[name], bad[name])


def test_wider_twin_scores_higher():
    narrow, wide = nb201(4), nb201(8)
    arch = narrow.from_string(GOOD)
    a = score_graph(narrow.graph(arch), proxies=["synflow", "params", "macs", "zen"], seed=0)
    b = score_graph(wide.graph(arch), proxies=["synflow", "params", "macs", "zen"], seed=0)
    for name in a:
        assert b[name] > a[name], name


def test_fast_synflow_equals_autodiff_on_every_space():
    rng = np.random.default_rng(0)
    for name, shape in (("mcunet", (32, 32, 3)), ("nanonas", (32, 32, 1)), ("nasbench201", (16, 16, 3))):
        space = get_space(name, input_shape=shape, num_classes=5)
        for _ in range(2):
            inp = ProxyInput(space.graph(space.sample(rng)), seed=1)
            fast = get_proxy("synflow").fn(inp)
            assert fast == pytest.approx(synflow_tape(inp), rel=1e-9)


def test_one_dimensional_nets_with_unequal_strides():
    # mcunet on a 1-D signal uses (1, 2) depthwise strides, which TF's CPU kernel refuses as such
    space = get_space("mcunet", input_shape=(40, 1), num_classes=10)
    graph = space.graph(space.sample(np.random.default_rng(3)))
    assert any(op.kind == "DEPTHWISE_CONV_2D" and op.attrs["stride"] == (1, 2) for op in graph.ops)
    rng = np.random.default_rng(0)
    batch = Batch(x=rng.standard_normal((8, 40, 1)).astype(np.float32), y=rng.integers(0, 10, 8))
    scores = score_graph(graph, proxies=["synflow", "zen", "naswot", "snip"], batch=batch)
    assert all(math.isfinite(v) for v in scores.values()), scores


def test_synflow_does_not_overflow_on_a_deep_net():
    deep = NasBench201Space(input_shape=(32, 32, 3), num_classes=10, cells_per_stage=5, base_channels=16)
    value = score_graph(deep.graph(deep.from_string(GOOD)), proxies=["synflow"])["synflow"]
    assert math.isfinite(value) and value > 1e30  # far past float16, on the way past float32's 3.4e38


def test_batch_of_one_and_missing_batch_are_refused(good_scores):
    graph, _ = good_scores
    one = Batch(x=np.ones((1, 16, 16, 3), np.float32), y=np.zeros(1, np.int64))
    with pytest.raises(ProxyError, match="at least 2 examples"):
        score_graph(graph, proxies=["naswot"], batch=one)
    with pytest.raises(ProxyError, match="needs data"):
        score_graph(graph, proxies=["snip"])


@pytest.mark.slow
def test_keras_model_unchanged_and_scored_from_its_weights(batch):
    from tinynas.space.keras_builder import build_keras_model

    s = nb201()
    graph = s.graph(s.from_string(GOOD))
    model = build_keras_model(graph, seed=0)
    before = [w.copy() for w in model.get_weights()]
    scores = {name: compute_proxy(name, graph=graph, model=model, batch=batch) for name in ALL}
    after = model.get_weights()
    assert len(before) == len(after) and all(np.array_equal(a, b) for a, b in zip(before, after))
    assert all(math.isfinite(v) for v in scores.values())
    # the scores come from the model's weights, not from a fresh init
    fresh = score_graph(graph, proxies=["synflow"], seed=0)["synflow"]
    assert scores["synflow"] != pytest.approx(fresh)


def test_baselines_never_import_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from tinynas.proxies import score_graph\n"
        "from tinynas.space import get_space\n"
        "s = get_space('nasbench201', input_shape=(32, 32, 3), num_classes=10)\n"
        "print(score_graph(s.graph(s.sample(np.random.default_rng(0))), proxies=['params', 'macs']))\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_every_proxy_scores_tinyformer_nets():
    """Attention, LayerNorm as ops, hard_swish, class token: every proxy runs on the Graph and is finite."""
    rng = np.random.default_rng(0)
    space = get_space("tinyformer", input_shape=(40, 1), num_classes=4)
    batch = Batch(x=rng.standard_normal((8, 40, 1)).astype(np.float32), y=rng.integers(0, 4, 8))
    for overrides in ({"heads": 2, "ffn_activation": "hard_swish", "pooling": "class_token"},
                      {"heads": 1, "ffn_activation": "relu", "pooling": "mean", "positional": "learned"}):
        arch = space.sample(rng).replace(embed_dim=16, depth=1, **overrides)
        inp = ProxyInput(space.graph(arch), seed=1)
        assert get_proxy("synflow").fn(inp) == pytest.approx(synflow_tape(inp), rel=1e-6)
        scores = score_graph(space.graph(arch), proxies=ALL, batch=batch, seed=3)
        assert all(math.isfinite(v) for v in scores.values()), scores
