"""The dscnn space: Hello Edge DS-CNN on MFCC features and 1-D sensor windows."""

from __future__ import annotations

import numpy as np
import pytest

from tinynas.errors import SpaceError
from tinynas.space import Arch, get_space

DS_CNN_S = {"blocks": 4, "channels": 64, "stem_kernel": "10x4", "stem_stride": "2x2"}


def test_ds_cnn_s_matches_the_mlperf_tiny_kws_reference(mlperf_models, check_graph):
    """Hello Edge DS-CNN-S at 49x10 has the same weight and activation shapes as MLPerf Tiny's int8 KWS model."""
    from ai_edge_litert.interpreter import Interpreter

    space = get_space("dscnn", input_shape=(49, 10, 1), num_classes=12)
    graph = space.graph(Arch.from_dict("dscnn", DS_CNN_S))
    check_graph(graph, num_classes=12)
    ref = Interpreter(model_path=str(mlperf_models["kws"]))
    ref_ops = [d["op_name"] for d in ref._get_ops_details()]
    conv_kinds = ("CONV_2D", "DEPTHWISE_CONV_2D")
    assert [k for k in ref_ops if k in conv_kinds] == [op.kind for op in graph.ops if op.kind in conv_kinds]
    ref_shapes = sorted(tuple(int(d) for d in t["shape"]) for t in ref.get_tensor_details() if len(t["shape"]) == 4)
    ours = sorted(
        [t.shape for t in graph.tensors.values() if t.constant and len(t.shape) == 4]
        + [graph.tensor(op.outputs[0]).shape for op in graph.ops if op.kind in conv_kinds]
    )
    # the reference pools with AVERAGE_POOL_2D (1x1x64 output) where we use MEAN; the input is 1x49x10x1
    ref_shapes.remove((1, 1, 1, 64))
    ref_shapes.remove((1, 49, 10, 1))
    assert ours == ref_shapes


def test_stem_kernels_that_do_not_fit_are_not_offered():
    options = {
        shape: dict((d.name, d.options) for d in get_space("dscnn", input_shape=shape, num_classes=2).decisions())
        for shape in ((49, 10, 1), (8, 8, 1), (5, 5, 1), (40, 1), (4, 1))
    }
    # 7x7 / 1x7 stems and the 3x3, 4x2, 4x4 / 1x3, 1x4 strides came with the growth of issue 11
    assert options[(49, 10, 1)]["stem_kernel"] == ("3x3", "5x5", "7x7", "10x4")
    assert options[(8, 8, 1)]["stem_kernel"] == ("3x3", "5x5", "7x7")
    assert options[(40, 1)]["stem_kernel"] == ("1x3", "1x5", "1x7", "1x9")
    assert options[(40, 1)]["stem_stride"] == ("1x1", "1x2", "1x3", "1x4")
    assert options[(4, 1)]["stem_kernel"] == ("1x3",)
    assert options[(5, 5, 1)]["stem_kernel"] == ("3x3", "5x5")


def test_input_too_small_for_any_stem_is_a_clear_error():
    with pytest.raises(SpaceError, match=r"dscnn: input shape \(2, 40, 1\) is smaller than .* 3x3"):
        get_space("dscnn", input_shape=(2, 40, 1), num_classes=10)


def test_stem_kernel_of_another_input_is_rejected():
    space = get_space("dscnn", input_shape=(8, 8, 1), num_classes=10)
    with pytest.raises(SpaceError, match="stem_kernel"):
        space.graph(Arch.from_dict("dscnn", DS_CNN_S))


def test_one_d_input_stays_in_2d_ops(check_graph):
    space = get_space("dscnn", input_shape=(40, 1), num_classes=10)
    arch = Arch.from_dict("dscnn", {"blocks": 2, "channels": 32, "stem_kernel": "1x5", "stem_stride": "1x2"})
    graph = space.graph(arch)
    check_graph(graph, num_classes=10)
    assert graph.input_shape == (1, 40, 1)
    assert [op.kind for op in graph.ops] == [
        "RESHAPE", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D",
        "MEAN", "FULLY_CONNECTED", "SOFTMAX",
    ]
    assert graph.tensor(graph.ops[0].outputs[0]).shape == (1, 1, 40, 1)
    assert graph.ops[1].attrs["kernel"] == (1, 5) and graph.ops[1].attrs["stride"] == (1, 2)
    assert graph.ops[2].attrs["kernel"] == (1, 3)
    assert graph.tensor(graph.ops[-4].outputs[0]).shape == (1, 1, 20, 32)
    acts = {op.attrs["activation"] for op in graph.ops if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")}
    assert acts == {"relu"}


# -- the growth of issue 11: narrow widths, deeper stacks, 7x7 stems, early strides ------------------
def test_stem_stride_longer_than_its_kernel_is_refused():
    space = get_space("dscnn", input_shape=(28, 28, 1), num_classes=10)
    arch = Arch.from_dict("dscnn", {"blocks": 2, "channels": 8, "stem_kernel": "3x3", "stem_stride": "4x4"})
    with pytest.raises(SpaceError, match=r"stem stride 4x4 is longer than stem kernel 3x3"):
        space.graph(arch)
    assert space.contains(arch.replace(stem_kernel="5x5"))
    one_d = get_space("dscnn", input_shape=(40, 1), num_classes=10)
    arch = Arch.from_dict("dscnn", {"blocks": 2, "channels": 8, "stem_kernel": "1x3", "stem_stride": "1x4"})
    assert not one_d.contains(arch) and one_d.contains(arch.replace(stem_kernel="1x5"))


def test_every_stem_builds_on_every_input(check_graph):
    for shape in ((49, 10, 1), (28, 28, 1), (8, 8, 1), (32, 32, 3), (3, 3, 1), (40, 1), (4, 1)):
        space = get_space("dscnn", input_shape=shape, num_classes=3)
        options = {d.name: d.options for d in space.decisions()}
        for kernel in options["stem_kernel"]:
            for stride in options["stem_stride"]:
                arch = Arch.from_dict("dscnn", {"blocks": 1, "channels": 4, "stem_kernel": kernel,
                                                "stem_stride": stride})
                if space.contains(arch):
                    check_graph(space.graph(arch), num_classes=3)


def test_early_stride_shrinks_the_map():
    space = get_space("dscnn", input_shape=(49, 10, 1), num_classes=12)
    graph = space.graph(Arch.from_dict("dscnn", {"blocks": 8, "channels": 4, "stem_kernel": "10x4",
                                                 "stem_stride": "4x2"}))
    assert graph.tensor(graph.ops[0].outputs[0]).shape == (1, 13, 5, 4)
    assert sum(op.kind == "DEPTHWISE_CONV_2D" for op in graph.ops) == 8


def test_a_tight_board_has_hundreds_of_feasible_networks():
    """Issue 11: on nucleo-l010rb (14 KB arena, 48 KB of model flash) Hello Edge's grid held 27
    networks at 28x28, and a 6-minute search trained all of them; the grown space holds hundreds."""
    import itertools

    from tinynas.hardware.loader import load_profile
    from tinynas.pipeline.constraints import CostCheck

    profile = load_profile("nucleo-l010rb", overlays=False)
    for shape, classes in (((28, 28, 1), 10), ((49, 10, 1), 12)):
        space = get_space("dscnn", input_shape=shape, num_classes=classes)
        check = CostCheck(space=space, profile=profile)
        rng = np.random.default_rng(0)
        archs = [space.sample(rng) for _ in range(300)]
        # a uniform sample: fraction feasible x number of valid archs
        valid = sum(space.contains(space.decode(i))
                    for i in itertools.product(*(range(len(d.options)) for d in space.decisions())))
        assert sum(map(check, archs)) / len(archs) * valid >= 300
