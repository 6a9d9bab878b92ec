"""The mcunet space: canonical archs, stride schedule, resolutions, widths, residuals."""

from __future__ import annotations

import numpy as np
import pytest

from tinynas.errors import SpaceError
from tinynas.space import get_space
from tinynas.space.mcunet import STAGES, downsample_count, make_divisible, resolution_options


def smallest(space, **changes):
    """Width 0.25, every stage depth 1, smallest resolution, no head (plus changes)."""
    arch = space.decode([0] * len(space.decisions()))
    return space.canonical(arch.replace(**changes)) if changes else arch


def test_unused_blocks_are_canonical_so_equal_networks_share_an_id():
    space = get_space("mcunet", input_shape=(32, 32, 3), num_classes=10)
    arch = smallest(space)
    assert arch["s1_depth"] == 1
    noisy = arch.replace(s1_b3_kernel=7, s1_b4_expand=6)
    with pytest.raises(SpaceError, match="canonical"):
        space.validate(noisy)
    assert space.canonical(noisy) == arch and space.canonical(noisy).id == arch.id
    # decode turns any index vector into a canonical arch
    decoded = space.decode([len(d.options) - 1 if "_b" in d.name else 0 for d in space.decisions()])
    space.validate(decoded)
    assert decoded["s2_b4_kernel"] == 3 and decoded["s2_b1_kernel"] == 7
    # a used block is part of the network: changing it changes the graph and the id
    used = arch.replace(s1_b1_kernel=5)
    assert used.id != arch.id and space.contains(used)


def test_mutate_grows_depth_with_real_blocks_and_always_changes_the_network():
    space = get_space("mcunet", input_shape=(32, 32, 3), num_classes=10)
    rng = np.random.default_rng(4)
    arch = space.sample(rng)
    seen_graph_sizes = set()
    for _ in range(200):
        child = space.mutate(arch, rng)
        space.validate(child)
        assert child != arch
        seen_graph_sizes.add(len(space.graph(child).ops))
        arch = child
    assert len(seen_graph_sizes) > 3


def test_size_counts_distinct_networks():
    space = get_space("mcunet", input_shape=(96, 96, 3), num_classes=2)
    per_stage = 1 + 9 + 9**2 + 9**3 + 9**4  # a stage may be left out (depth 0)
    assert space.size() == 10 * len(resolution_options((96, 96, 3))) * 2 * per_stage ** len(STAGES)


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((8, 8, 1), (8, 16, 24, 32)),
        ((28, 28, 1), (28, 32, 12, 16, 20, 24)),
        ((32, 32, 3), (32, 16, 24)),
        ((96, 96, 3), (32, 48, 64, 80, 96, 16, 24)),
        ((50, 50, 3), (32, 48, 50, 16, 24)),
        ((49, 10, 1), (49,)),
        ((40, 1), (40,)),
    ],
)
def test_resolution_options(shape, expected):
    assert resolution_options(shape) == expected
    space = get_space("mcunet", input_shape=shape, num_classes=3)
    assert dict((d.name, d.options) for d in space.decisions())["resolution"] == expected


@pytest.mark.parametrize(
    "shape, resolution, final_map",
    [
        ((8, 8, 1), 8, (2, 2)),  # tiny digits keep a 2x2 map instead of collapsing to 1x1
        ((8, 8, 1), 32, (2, 2)),
        ((32, 32, 3), 32, (2, 2)),
        ((96, 96, 3), 96, (3, 3)),  # the full stride 32 of MobileNetV2 / MCUNet-VWW
        ((49, 10, 1), 49, (2, 3)),  # each axis downsamples on its own
        ((40, 1), 40, (1, 3)),
    ],
)
def test_stride_schedule_adapts_to_the_input(shape, resolution, final_map):
    space = get_space("mcunet", input_shape=shape, num_classes=3)
    graph = space.graph(smallest(space, resolution=resolution))
    (mean,) = [op for op in graph.ops if op.kind == "MEAN"]
    assert graph.tensor(mean.inputs[0]).shape[1:3] == final_map
    expected_input = (1, resolution, resolution, shape[2]) if len(shape) == 3 and shape[0] == shape[1] else (1, *shape)
    assert graph.input_shape == expected_input


def test_downsample_count():
    assert [downsample_count(s) for s in (1, 2, 3, 4, 7, 8, 32, 96, 224, 1000)] == [0, 0, 0, 1, 2, 2, 4, 5, 5, 5]


def test_one_d_input_is_reshaped_and_uses_1xk_kernels():
    space = get_space("mcunet", input_shape=(40, 1), num_classes=10)
    arch = space.sample(np.random.default_rng(0))
    graph = space.graph(arch)
    assert graph.input_shape == (1, 40, 1)
    assert graph.ops[0].kind == "RESHAPE" and graph.tensor(graph.ops[0].outputs[0]).shape == (1, 1, 40, 1)
    for op in graph.ops:
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            assert op.attrs["kernel"][0] == 1 and op.attrs["stride"][0] == 1


def test_block_structure_widths_and_residuals(check_graph):
    space = get_space("mcunet", input_shape=(32, 32, 3), num_classes=10)
    arch = smallest(space, width=0.5, head=True, s1_depth=3, s1_b2_kernel=5, s1_b2_expand=6)
    graph = space.graph(arch)
    check_graph(graph, num_classes=10)
    convs = [op for op in graph.ops if op.kind == "CONV_2D"]
    assert all(op.attrs["filters"] % 8 == 0 for op in convs)
    assert convs[0].attrs["kernel"] == (3, 3) and convs[0].attrs["stride"] == (2, 2)
    assert convs[0].attrs["filters"] == make_divisible(32 * 0.5) == 16
    assert convs[-1].attrs["filters"] == make_divisible(320 * 0.5) and convs[-1].attrs["kernel"] == (1, 1)
    # projections are linear, everything else ReLU6
    acts = {op.attrs["activation"] for op in graph.ops if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")}
    assert acts == {None, "relu6"}
    # at width 0.5 the stages have 16, 24, 40, 48, 96 channels: only the 2nd and 3rd block of
    # stage 1 keep stride 1 and their channels, so only they add a residual
    assert sum(op.kind == "ADD" for op in graph.ops) == 2
    dws = [op for op in graph.ops if op.kind == "DEPTHWISE_CONV_2D"]
    assert dws[2].attrs["kernel"] == (5, 5)  # stem-block dw, s1_b1 dw, s1_b2 dw
    expand_of_s1_b2 = convs[4]  # stem, first-block projection, s1_b1 expand+project, s1_b2 expand
    assert expand_of_s1_b2.attrs["filters"] == 6 * make_divisible(24 * 0.5)


def test_make_divisible():
    assert [make_divisible(v) for v in (4, 8, 10, 11.2, 33.6, 320)] == [8, 8, 16, 16, 32, 320]


def test_smallest_network_fits_a_tiny_mcu():
    """Width 0.25, depth 1 per stage, no head: activations of tens of KB at 32x32x3."""
    space = get_space("mcunet", input_shape=(32, 32, 3), num_classes=10)
    graph = space.graph(smallest(space))
    biggest_activation = max(t.nbytes for t in graph.tensors.values() if not t.constant)
    weights = sum(t.nbytes for t in graph.tensors.values() if t.constant)
    assert biggest_activation <= 16 * 16 * 24  # the first expand output
    assert weights < 40_000


def test_input_resolution_not_offered_is_rejected_with_options():
    space = get_space("mcunet", input_shape=(32, 32, 3), num_classes=10)
    bad = smallest(space).replace(resolution=64)
    with pytest.raises(SpaceError, match=r"resolution.*\[32, 16, 24\]"):
        space.graph(bad)


@pytest.mark.slow
def test_sequence_model_with_stride_two_depthwise_runs_in_keras():
    """A sequence is an Lx1 image: its depthwise (2, 1) strides must build and run in TensorFlow,
    whose depthwise kernel takes only equal strides (this failed in CI before the builder mapped it)."""
    from tinynas.space.keras_builder import build_keras_model

    space = get_space("mcunet", input_shape=(40, 1), num_classes=5)
    arch = space.canonical(space.sample(np.random.default_rng(11)).replace(
        width=min(space.decisions()[[d.name for d in space.decisions()].index("width")].options)))
    graph = space.graph(arch)
    strides = {tuple(op.attrs["stride"]) for op in graph.ops if op.kind == "DEPTHWISE_CONV_2D"}
    assert any(sh != sw for sh, sw in strides)
    model = build_keras_model(graph, seed=0)
    for op in graph.ops:
        assert tuple(model.get_layer(op.outputs[0]).output.shape[1:]) == graph.tensor(op.outputs[0]).shape[1:]
    y = np.asarray(model(np.random.default_rng(0).random((3, 40, 1, 1), dtype=np.float32)))
    assert y.shape == (3, 5) and np.isfinite(y).all()
