"""The nanonas space: the authors' filter growth, the cell limit, and 1-D inputs."""

from __future__ import annotations

import pytest

from tinynas.errors import SpaceError
from tinynas.space import Arch, get_space
from tinynas.space.nanonas import cell_filters, max_cells


def test_filter_growth_follows_the_authors_rule():
    # n = ceil(n * m), m = 2, 1.5, 1.25, 1.125, ... (NanoNAS.Model)
    assert cell_filters(4, 0) == [4]
    assert cell_filters(4, 3) == [4, 8, 12, 15]
    assert cell_filters(1, 5) == [1, 2, 3, 4, 5, 6]
    assert cell_filters(10, 4) == [10, 20, 30, 38, 43]


@pytest.mark.parametrize(
    "shape, cells", [((8, 8, 1), 3), ((32, 32, 3), 5), ((50, 50, 3), 5), ((49, 10, 1), 3), ((40, 1), 5), ((1, 1, 3), 0)]
)
def test_cells_are_limited_by_the_input(shape, cells, check_graph):
    assert max_cells(shape) == cells
    space = get_space("nanonas", input_shape=shape, num_classes=2)
    assert dict((d.name, d.options) for d in space.decisions())["c"] == tuple(range(cells + 1))
    arch = Arch.from_dict("nanonas", {"k": 3, "c": cells})
    graph = space.graph(arch)
    check_graph(graph, num_classes=2)
    (mean,) = [op for op in graph.ops if op.kind == "MEAN"]
    assert min(graph.tensor(mean.inputs[0]).shape[1:3]) >= 1


def test_too_many_cells_for_the_input_says_why():
    space = get_space("nanonas", input_shape=(8, 8, 1), num_classes=10)
    with pytest.raises(SpaceError, match=r"c=4 cells.*at most 3"):
        space.graph(Arch.from_dict("nanonas", {"k": 8, "c": 4}))


def test_graph_structure():
    space = get_space("nanonas", input_shape=(50, 50, 3), num_classes=2)
    graph = space.graph(Arch.from_dict("nanonas", {"k": 4, "c": 2}))
    assert [op.kind for op in graph.ops] == [
        "CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX",
    ]
    convs = [op for op in graph.ops if op.kind == "CONV_2D"]
    assert [op.attrs["filters"] for op in convs] == [4, 8, 12]
    assert all(op.attrs["kernel"] == (3, 3) and op.attrs["activation"] == "relu" for op in convs)
    assert [graph.tensor(op.outputs[0]).shape[1] for op in convs] == [50, 25, 12]


def test_one_d_input():
    space = get_space("nanonas", input_shape=(40, 1), num_classes=10)
    graph = space.graph(Arch.from_dict("nanonas", {"k": 8, "c": 2}))
    assert graph.input_shape == (1, 40, 1)
    assert graph.ops[0].kind == "RESHAPE" and graph.tensor(graph.ops[0].outputs[0]).shape == (1, 1, 40, 1)
    pools = [op for op in graph.ops if op.kind == "MAX_POOL_2D"]
    assert all(op.attrs["pool"] == (1, 2) for op in pools)
    (mean,) = [op for op in graph.ops if op.kind == "MEAN"]
    assert graph.tensor(mean.inputs[0]).shape == (1, 1, 10, 24)
