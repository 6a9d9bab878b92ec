"""Archs that only the grown dscnn and nanonas spaces have (issue 11) build in Keras with the
Graph's shapes, convert to int8 TFLite, and run in TFLite Micro with the arena, file size and
ops the cost model predicts: new options must not reach a board as a model the cost model misjudges."""

from __future__ import annotations

import numpy as np
import pytest

from tinynas.space import Arch, get_space

# One arch per new kind of option: early and unequal stem strides, a 7x7 stem, narrow widths,
# 7-8 blocks, 1-D strides of 3 and 4; nanonas's average pooling, 5x5 convs and stride-2 first conv.
NEW_ARCHS = [
    ("dscnn", (49, 10, 1), 12, {"blocks": 7, "channels": 12, "stem_kernel": "10x4", "stem_stride": "4x2"}),
    ("dscnn", (28, 28, 1), 10, {"blocks": 2, "channels": 20, "stem_kernel": "7x7", "stem_stride": "3x3"}),
    ("dscnn", (32, 32, 3), 10, {"blocks": 8, "channels": 4, "stem_kernel": "5x5", "stem_stride": "4x4"}),
    ("dscnn", (40, 1), 10, {"blocks": 2, "channels": 8, "stem_kernel": "1x7", "stem_stride": "1x4"}),
    ("dscnn", (40, 1), 10, {"blocks": 1, "channels": 28, "stem_kernel": "1x3", "stem_stride": "1x3"}),
    ("nanonas", (28, 28, 1), 10, {"k": 6, "c": "2-avg-k5-s2"}),
    ("nanonas", (8, 8, 1), 10, {"k": 5, "c": "1-k5"}),
    ("nanonas", (49, 10, 1), 12, {"k": 3, "c": "2-avg"}),
    ("nanonas", (40, 1), 10, {"k": 4, "c": "3-avg-s2"}),
]
IDS = [f"{n}-{'x'.join(map(str, s))}-{'-'.join(str(v) for v in d.values())}" for n, s, _, d in NEW_ARCHS]


@pytest.mark.parametrize("name, shape, classes, decisions", NEW_ARCHS, ids=IDS)
def test_new_arch_is_new(name, shape, classes, decisions, check_graph):
    """Each arch here uses an option the space did not have before issue 11, and builds a valid Graph."""
    space = get_space(name, input_shape=shape, num_classes=classes)
    arch = Arch.from_dict(name, decisions)
    check_graph(space.graph(arch), num_classes=classes)
    old = {"blocks": range(1, 7), "channels": (16, 24, 32, 48, 64, 96, 128, 172, 276),
           "stem_kernel": ("3x3", "5x5", "10x4", "1x3", "1x5", "1x9"), "stem_stride": ("1x1", "2x1", "2x2", "1x2"),
           "k": range(1, 33), "c": range(0, 9)}
    assert any(v not in old[k] for k, v in decisions.items())


# (Known gaps of the cost model on these archs, both fixed: the arena that came out ~270 B low on
# tiny 8x8 models, {"k": 5, "c": 1}, was the planning room of MEAN's three scratch buffers, modelled
# since issue 14; the flash ~150 B per 2x2 average pool too high is AVERAGE_POOL_2D_VALID in
# cost/flash.py.)
_CONVERTED: dict[str, tuple] = {}


def converted(name, shape, classes, decisions):
    """(graph, keras model, int8 .tflite bytes as deploy writes them: tensor names stripped) of an arch,
    converted once per session."""
    from tinynas.deploy.flatbuffer import strip_tensor_names
    from tinynas.deploy.quantize import quantize_untrained
    from tinynas.space.keras_builder import build_keras_model

    key = f"{name}-{shape}-{decisions}"
    if key not in _CONVERTED:
        graph = get_space(name, input_shape=shape, num_classes=classes).graph(Arch.from_dict(name, decisions))
        data, _ = strip_tensor_names(quantize_untrained(graph, seed=3, num_samples=8))
        _CONVERTED[key] = (graph, build_keras_model(graph, seed=0), data)
    return _CONVERTED[key]


@pytest.mark.slow
@pytest.mark.parametrize("name, shape, classes, decisions", NEW_ARCHS, ids=IDS)
def test_new_arch_builds_converts_and_runs_in_tflm(name, shape, classes, decisions):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from tinynas.cost.convert import converter_view
    from tinynas.deploy.interpreter import MicroInterpreter, output_agreement
    from tinynas.space.tflite_reader import read_tflite

    graph, model, data = converted(name, shape, classes, decisions)
    for op in graph.ops:
        assert tuple(model.get_layer(op.outputs[0]).output.shape[1:]) == graph.tensor(op.outputs[0]).shape[1:], op.kind

    def signature(g):
        return sorted((op.kind, g.tensors[op.outputs[0]].shape) for op in g.ops)

    assert signature(converter_view(graph)) == signature(read_tflite(data))

    # TFLite Micro's kernels compute what the TFLite reference kernels compute on the same int8 input
    micro = MicroInterpreter(data)
    lite = Interpreter(model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    lite.allocate_tensors()
    x = np.random.default_rng(0).normal(size=(3, *micro.input_shape)).astype(np.float32)
    ours = micro.predict_int8(x)
    for i in range(len(x)):
        lite.set_tensor(lite.get_input_details()[0]["index"], micro.quantize_input(x[i:i + 1]))
        lite.invoke()
        assert output_agreement(ours[i], lite.get_tensor(lite.get_output_details()[0]["index"])[0]) <= 1
    # and the int8 model is the float model of the Graph, up to quantization
    assert np.abs(micro.dequantize_output(ours) - np.asarray(model(x))).max() <= 0.08


@pytest.mark.slow
@pytest.mark.parametrize("name, shape, classes, decisions", NEW_ARCHS, ids=IDS)
def test_new_arch_arena_and_flash_are_what_the_cost_model_says(name, shape, classes, decisions):
    """Within 5 %, as for the old archs (tests/cost/test_against_tflm.py)."""
    from tinynas.cost import estimate
    from tinynas.deploy.arena import measure_arena_bytes

    graph, _, data = converted(name, shape, classes, decisions)
    cost = estimate(graph)
    real_arena = measure_arena_bytes(data)
    assert abs(cost.arena_bytes - real_arena) <= 0.05 * real_arena, (cost.arena_bytes, real_arena)
    assert abs(cost.flash_bytes - len(data)) <= 0.05 * len(data), (cost.flash_bytes, len(data))
