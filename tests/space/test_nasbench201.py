"""NAS-Bench-201 space: arch strings round-trip, known cells have the op counts the paper's
skeleton implies, degenerate cells stay honest, and the Graph builds in Keras."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest

from tinynas.errors import SpaceError
from tinynas.space import get_space
from tinynas.space.nasbench201 import NasBench201Space, arch_string, live_edges, parse_arch_string

ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
# node 1 is computed but never reaches the output: the converter prunes it, so must the Graph
DEAD_NODE = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
RESNET_LIKE = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"


def kinds(graph) -> Counter:
    return Counter(op.kind for op in graph.ops)


@pytest.fixture(scope="module")
def space() -> NasBench201Space:
    return get_space("nasbench201", input_shape=(32, 32, 3), num_classes=10)


def test_every_published_string_round_trips(shared_benchmarks, space):
    with (shared_benchmarks / "nasbench201_accuracy.csv").open() as fh:
        strings = [row["arch_str"] for row in csv.DictReader(fh)]
    assert len(strings) == 15625
    archs = {space.from_string(s) for s in strings}
    assert len(archs) == 15625 == space.size()
    for s in strings[::97]:
        assert arch_string(parse_arch_string(s)) == s


def test_op_counts_of_known_cells(space):
    # stem 1 conv; per reduction 3 convs (two 3x3 + 1x1 shortcut), 1 avg pool, 1 add; 15 cells; head.
    g = space.graph(space.from_string(ALL_CONV3))
    assert kinds(g) == Counter({"CONV_2D": 1 + 2 * 3 + 15 * 6, "RELU": 15 * 3 + 2 * 2 + 1, "ADD": 15 * 3 + 2,
                                "AVERAGE_POOL_2D": 2, "MEAN": 1, "FULLY_CONNECTED": 1, "SOFTMAX": 1})
    g = space.graph(space.from_string(RESNET_LIKE))  # two convs in series plus a skip: 2 convs, 1 add per cell
    assert kinds(g)["CONV_2D"] == 1 + 6 + 15 * 2 and kinds(g)["ADD"] == 2 + 15
    assert g.output_shape == (1, 10) and g.input_shape == (1, 32, 32, 3)


def test_dead_and_zero_nodes_are_not_emitted(space):
    dead = space.graph(space.from_string(DEAD_NODE))
    assert kinds(dead)["CONV_2D"] == 1 + 6  # cell = identity: only stem and reductions
    assert live_edges(space.from_string(DEAD_NODE)) == [(3, 0, "skip_connect")]
    zero = space.graph(space.from_string(ALL_NONE))
    assert kinds(zero)["MUL"] == 15  # each cell outputs zeros, and the Graph says so


def test_bad_strings_name_the_problem():
    with pytest.raises(SpaceError, match="unknown NAS-Bench-201 op 'conv_5x5'"):
        parse_arch_string("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(SpaceError, match="3 nodes"):
        parse_arch_string("|none~0|+|none~0|none~1|")
    with pytest.raises(SpaceError, match="op~1"):
        parse_arch_string("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|")


def test_size_options_and_sampling():
    small = NasBench201Space(input_shape=(16, 16, 3), num_classes=5, cells_per_stage=1, base_channels=4)
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = small.sample(rng)
        g = small.graph(arch)
        assert g.output_shape == (1, 5)
        assert small.from_string(arch_string(arch)) == arch
    with pytest.raises(SpaceError):
        NasBench201Space(input_shape=(16, 3), num_classes=5)


@pytest.mark.slow
def test_keras_model_of_a_zero_cell():
    from tinynas.space.keras_builder import build_keras_model

    small = NasBench201Space(input_shape=(16, 16, 3), num_classes=4, cells_per_stage=1, base_channels=4)
    graph = small.graph(small.from_string(ALL_NONE))
    model = build_keras_model(graph, seed=0)
    assert sum(type(layer).__name__ == "Conv2D" for layer in model.layers) == kinds(graph)["CONV_2D"]
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype("float32")
    y = model(x, training=False).numpy()
    assert y.shape == (2, 4) and np.allclose(y.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(y[0], y[1])  # the zero cell really outputs zeros: the input no longer matters
