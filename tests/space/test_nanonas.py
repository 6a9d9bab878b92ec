"""The nanonas space: the authors' filter growth, the cell limit, and 1-D inputs."""

from __future__ import annotations

import pytest

from tinynas.errors import SpaceError
from tinynas.space import Arch, get_space
from tinynas.space.nanonas import CellPlan, cell_filters, cell_plan, cells_options, max_cells


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
    options = dict((d.name, d.options) for d in space.decisions())["c"]
    # NanoNAS's own counts come first; the variant strings of issue 11 follow them
    assert options[:cells + 1] == tuple(range(cells + 1))
    assert all(isinstance(o, str) for o in options[cells + 1:])
    arch = Arch.from_dict("nanonas", {"k": 3, "c": cells})
    graph = space.graph(arch)
    check_graph(graph, num_classes=2)
    (mean,) = [op for op in graph.ops if op.kind == "MEAN"]
    assert min(graph.tensor(mean.inputs[0]).shape[1:3]) >= 1


def test_too_many_cells_for_the_input_says_why():
    space = get_space("nanonas", input_shape=(8, 8, 1), num_classes=10)
    with pytest.raises(SpaceError, match=r"c=4: 4 cells.*at most 3"):
        space.graph(Arch.from_dict("nanonas", {"k": 8, "c": 4}))
    # the stride-2 first conv leaves a 4x4 map: one cell fewer
    with pytest.raises(SpaceError, match=r"c='3-s2': 3 cells.*at most 2 after the stride-2 first conv"):
        space.graph(Arch.from_dict("nanonas", {"k": 8, "c": "3-s2"}))


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


# -- variants of c (issue 11): avg pooling, 5x5 kernels, a stride-2 first conv -----------------------
def test_c_values_parse_and_print_back():
    assert cell_plan(3) == CellPlan(cells=3)
    assert cell_plan("2-avg-k5-s2") == CellPlan(cells=2, pool="avg", kernel=5, stem_stride=2)
    assert cell_plan("0-s2") == CellPlan(cells=0, stem_stride=2)
    for value in cells_options((28, 28, 1)):
        assert cell_plan(value).value == value
    assert CellPlan(cells=2).value == 2  # NanoNAS's own network keeps its int (and its id)


@pytest.mark.parametrize("bad", ["2", "2-", "x-avg", "2-max", "2-s2-avg", "2-avg-avg", "-avg", ""])
def test_malformed_c_strings_name_the_form(bad):
    with pytest.raises(SpaceError, match=r"cell count .* variant tags in the order avg-k5-s2"):
        cell_plan(bad)
    space = get_space("nanonas", input_shape=(28, 28, 1), num_classes=10)
    assert not space.contains(Arch.from_dict("nanonas", {"k": 4, "c": bad}))


def test_variants_are_offered_only_where_they_change_the_network():
    assert cells_options((1, 1, 3)) == (0,)  # a 1x1 map: no pool, and a stride or a 5x5 kernel change nothing
    options = cells_options((8, 8, 1))
    assert "0-avg" not in options and "1-avg" in options  # avg needs a cell to pool
    assert "2-s2" in options and "3-s2" not in options  # 8 -> 4 after the stride: 2 cells
    assert len(options) == len(set(options))


def test_variant_graph():
    space = get_space("nanonas", input_shape=(28, 28, 1), num_classes=10)
    graph = space.graph(Arch.from_dict("nanonas", {"k": 6, "c": "2-avg-k5-s2"}))
    assert [op.kind for op in graph.ops] == [
        "CONV_2D", "AVERAGE_POOL_2D", "CONV_2D", "AVERAGE_POOL_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX",
    ]
    convs = [op for op in graph.ops if op.kind == "CONV_2D"]
    assert [op.attrs["filters"] for op in convs] == cell_filters(6, 2) == [6, 12, 18]
    assert all(op.attrs["kernel"] == (5, 5) for op in convs)
    assert [op.attrs["stride"] for op in convs] == [(2, 2), (1, 1), (1, 1)]
    assert [graph.tensor(op.outputs[0]).shape[1] for op in convs] == [14, 7, 3]
    summary = space.summary(Arch.from_dict("nanonas", {"k": 6, "c": "2-avg-k5-s2"}))
    assert "avg pool, 5x5 convs, first stride 2" in summary


def test_one_d_variant_uses_one_d_kernels_strides_and_pools(check_graph):
    space = get_space("nanonas", input_shape=(40, 1), num_classes=10)
    graph = space.graph(Arch.from_dict("nanonas", {"k": 8, "c": "4-avg-k5-s2"}))
    check_graph(graph, num_classes=10)
    convs = [op for op in graph.ops if op.kind == "CONV_2D"]
    assert all(op.attrs["kernel"] == (1, 5) for op in convs) and convs[0].attrs["stride"] == (1, 2)
    assert all(op.attrs["pool"] == (1, 2) for op in graph.ops if op.kind == "AVERAGE_POOL_2D")
    (mean,) = [op for op in graph.ops if op.kind == "MEAN"]
    assert graph.tensor(mean.inputs[0]).shape[1:3] == (1, 1)  # 40 -> 20 -> 10 -> 5 -> 2 -> 1


def test_every_c_option_builds_on_every_input(check_graph):
    for shape in ((8, 8, 1), (28, 28, 1), (49, 10, 1), (32, 32, 3), (40, 1), (4, 4, 1), (3, 40, 1)):
        space = get_space("nanonas", input_shape=shape, num_classes=3)
        for c in space.decisions()[1].options:
            check_graph(space.graph(Arch.from_dict("nanonas", {"k": 2, "c": c})), num_classes=3)


def test_a_tight_board_has_hundreds_of_feasible_networks():
    """The reason for the variants: on nucleo-l010rb (14 KB arena, 48 KB of model flash) NanoNAS's
    (k, c) grid alone holds 57 networks at 28x28 and 74 at 49x10; with them, hundreds."""
    from tinynas.hardware.loader import load_profile
    from tinynas.pipeline.constraints import CostCheck

    profile = load_profile("nucleo-l010rb", overlays=False)
    for shape, classes in (((28, 28, 1), 10), ((49, 10, 1), 12)):
        space = get_space("nanonas", input_shape=shape, num_classes=classes)
        check = CostCheck(space=space, profile=profile)
        archs = [Arch.from_dict("nanonas", {"k": k, "c": c}) for k in space.decisions()[0].options
                 for c in space.decisions()[1].options]
        plain = [a for a in archs if isinstance(a["c"], int)]
        assert 40 <= sum(map(check, plain)) <= 90
        assert sum(map(check, archs)) >= 300
