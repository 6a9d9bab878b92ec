"""The tinyformer space: small transformers for sequences and small images, in int8 TFLM ops only."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from tinynas.cost import estimate
from tinynas.cost.counts import graph_work
from tinynas.errors import SpaceError
from tinynas.space import Arch, get_space
from tinynas.space.tinyformer import token_count

# What the space may emit: int8 kernels TFLite Micro has (issue 14), and nothing else.
TFLM_INT8_OPS = {
    "RESHAPE", "CONV_2D", "CONCATENATION", "ADD", "MEAN", "SUB", "SQUARED_DIFFERENCE", "RSQRT", "MUL",
    "FULLY_CONNECTED", "TRANSPOSE", "BATCH_MATMUL", "SOFTMAX", "HARD_SWISH", "STRIDED_SLICE",
}
SHAPES = [(40, 1), (8, 8, 1), (64, 3), (16, 16, 1)]


def arch(**over) -> Arch:
    base = dict(tokenizer="k4s4", embed_dim=16, depth=1, heads=1, ffn_ratio=2, ffn_activation="relu",
                pooling="mean", positional="none")
    return Arch.from_dict("tinyformer", {**base, **over})


def _check(graph, num_classes: int) -> None:
    """Every op is an int8 TFLM kernel, reads only produced tensors, and the shapes chain."""
    produced = set(graph.inputs)
    for op in graph.ops:
        assert op.kind in TFLM_INT8_OPS, op.kind
        for t in graph.activation_inputs(op):
            assert t.name in produced and t.dtype == "int8"
        out = graph.tensor(op.outputs[0])
        assert out.dtype == "int8" and not out.constant and out.name not in produced
        produced.add(out.name)
    assert graph.ops[-1].kind == "SOFTMAX" and graph.output_shape == (1, num_classes)
    used = {n for op in graph.ops for n in op.inputs} | set(graph.outputs)
    assert set(graph.tensors) <= used


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_sampled_archs_build_to_int8_tflm_ops(shape):
    space = get_space("tinyformer", input_shape=shape, num_classes=6)
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(30)]
    assert len({a.id for a in archs}) > 20
    for a in archs:
        assert int(a["embed_dim"]) % int(a["heads"]) == 0
        _check(space.graph(a), 6)


def test_tokenizers_offered_per_input():
    def options(shape):
        return dict((d.name, d.options) for d in get_space("tinyformer", input_shape=shape, num_classes=2).decisions())

    assert options((40, 1))["tokenizer"] == ("k2s2", "k4s2", "k4s4", "k8s4", "k8s8", "k16s8", "k16s16")
    assert options((8, 8, 1))["tokenizer"] == ("p2", "p4")  # p8 would make one token
    assert options((6, 2))["tokenizer"] == ("k2s2", "k4s2")
    assert token_count((40, 1), "k8s4") == 9 and token_count((16, 16, 1), "p4") == 16


@pytest.mark.parametrize("shape, fix", [
    ((3, 1), "at least 4 samples"),
    ((1, 5), "at least 4 samples"),
    ((5000, 1), "at most"),
    ((1, 1, 3), "at least 2x4 pixels"),
    ((256, 256, 3), "resize"),
])
def test_input_the_space_cannot_take_names_the_fix(shape, fix):
    with pytest.raises(SpaceError, match=f"tinyformer: no tokenizer .*{fix}"):
        get_space("tinyformer", input_shape=shape, num_classes=4)


def test_heads_must_divide_the_embedding():
    space = get_space("tinyformer", input_shape=(40, 1), num_classes=4)
    with pytest.raises(SpaceError, match=r"embed_dim 16 is not divisible by heads 3.*\[1, 2, 4\]"):
        space.graph(arch(heads=3))
    space.validate(arch(embed_dim=24, heads=3))


def test_one_head_graph_is_the_converters_op_list():
    """The pre-norms fold into the FULLY_CONNECTED layers after them; the final norm is a MUL and an ADD."""
    space = get_space("tinyformer", input_shape=(40, 1), num_classes=4)
    g = space.graph(arch())
    assert [op.kind for op in g.ops] == [
        "RESHAPE", "CONV_2D", "RESHAPE",
        "FULLY_CONNECTED", "FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX", "FULLY_CONNECTED", "TRANSPOSE",
        "BATCH_MATMUL", "FULLY_CONNECTED", "ADD",
        "FULLY_CONNECTED", "FULLY_CONNECTED", "ADD",
        "MUL", "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX",
    ]
    scores = next(op for op in g.ops if op.kind == "BATCH_MATMUL")
    assert scores.attrs["adj_y"] and g.tensor(scores.outputs[0]).shape == (1, 10, 10)
    normalized = [op for op in g.ops if op.attrs.get("batch_norm_in")]
    assert len(normalized) == 4  # Q, K, V and the FFN's first layer
    assert len({op.inputs[0] for op in normalized}) == 2  # one norm per block input, shared by Q, K and V


def test_the_keras_model_shares_one_batch_norm_per_normalized_tensor():
    from tinynas.space.keras_builder import build_keras_model

    space = get_space("tinyformer", input_shape=(40, 1), num_classes=4)
    model = build_keras_model(space.graph(arch(depth=2)), seed=0)
    norms = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    assert len(norms) == 2 * 2 + 1  # attention and FFN per block, and the final norm


def test_multi_head_class_token_and_positional_embedding():
    space = get_space("tinyformer", input_shape=(8, 8, 1), num_classes=10)
    g = space.graph(arch(tokenizer="p2", embed_dim=32, heads=4, pooling="class_token", positional="learned",
                         ffn_activation="hard_swish"))
    kinds = [op.kind for op in g.ops]
    assert kinds[:4] == ["CONV_2D", "RESHAPE", "CONCATENATION", "ADD"]
    assert g.tensor(g.ops[3].outputs[0]).shape == (1, 17, 32)  # 16 patches + the class token
    bmm = [op for op in g.ops if op.kind == "BATCH_MATMUL"]
    assert [g.tensor(op.outputs[0]).shape for op in bmm] == [(1, 4, 17, 17), (1, 4, 17, 8)]
    assert "HARD_SWISH" in kinds and kinds[-3] == "STRIDED_SLICE"
    # the converter's batch-less RESHAPE before the output projection, and the broadcast residual ADD
    flat = next(op for op in g.ops if op.kind == "RESHAPE" and op.attrs.get("batch_axis") is False)
    assert g.tensor(flat.outputs[0]).shape == (17, 32)
    # BATCH_MATMUL MACs = B x M x N x K; learned embedding and class token count as parameters
    work = [w for w in graph_work(g) if w.kind == "BATCH_MATMUL"]
    assert [w.macs for w in work] == [4 * 17 * 17 * 8, 4 * 17 * 8 * 17]
    assert all(w.weight_bytes == 0 for w in work)
    cost = estimate(g)
    assert cost.params > 17 * 32 + 32


def test_cost_model_prices_every_op_on_a_profile():
    from tinynas.hardware import load_profile

    space = get_space("tinyformer", input_shape=(40, 1), num_classes=4)
    cost = estimate(space.graph(arch(heads=2, ffn_activation="hard_swish")), profile=load_profile("nano33ble"))
    assert cost.latency_ms > 0 and cost.arena_bytes > 0 and cost.flash_bytes > 0


@pytest.mark.slow
def test_keras_model_matches_graph_shapes():
    from tinynas.space.keras_builder import build_keras_model

    space = get_space("tinyformer", input_shape=(40, 1), num_classes=5)
    g = space.graph(arch(heads=2, pooling="class_token", positional="learned", ffn_activation="hard_swish"))
    model = build_keras_model(g, seed=0)
    for op in g.ops:
        if op.attrs.get("norm") == "batch":
            continue  # the scale half of a BatchNormalization: the Keras layer is named by its ADD
        want = g.tensor(op.outputs[0]).shape
        got = tuple(model.get_layer(op.outputs[0]).output.shape[1:])
        # a batch-less RESHAPE (and the projection after it) is (T, D) in the Graph, (batch, T, D) in Keras
        assert got == (want if len(want) == len(got) else want[1:]), op.kind
    y = np.asarray(model(np.random.default_rng(0).random((2, 40, 1), dtype=np.float32)))
    assert y.shape == (2, 5)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_int8_conversion_is_the_graph_runs_in_tflm_and_the_arena_estimate_holds():
    """The converter's int8 output of sampled archs has only int8 tensors and TFLM kernels, reads back
    as the space's Graph, runs in the real TFLite Micro interpreter, and needs the arena we estimate."""
    from tinynas.cost.convert import converter_view
    from tinynas.deploy.arena import measure_arena_bytes
    from tinynas.deploy.codegen import TFLM_BUILTIN_OPS
    from tinynas.deploy.interpreter import MicroInterpreter
    from tinynas.deploy.quantize import quantize_untrained
    from tinynas.space.tflite_reader import read_tflite

    errors = []
    for k, (shape, n) in enumerate([((40, 1), 2), ((8, 8, 1), 2)]):
        space = get_space("tinyformer", input_shape=shape, num_classes=4)
        rng = np.random.default_rng([3, k])
        for i in range(n):
            a = space.sample(rng).replace(depth=1 + i)  # keep conversions quick
            graph = space.graph(a)
            data = quantize_untrained(graph, seed=i)
            back = read_tflite(data)
            assert set(back.op_kinds()) <= TFLM_INT8_OPS & TFLM_BUILTIN_OPS, back.op_kinds()
            assert all(t.dtype in ("int8", "int32") for t in back.tensors.values()), "a float tensor"
            mine = converter_view(graph)
            assert [op.kind for op in back.ops] == [op.kind for op in mine.ops], a
            for ours, theirs in zip(mine.ops, back.ops):
                assert back.tensor(theirs.outputs[0]).shape == mine.tensor(ours.outputs[0]).shape, ours.kind
                assert (sorted(t.shape for t in back.constant_inputs(theirs))
                        == sorted(t.shape for t in mine.constant_inputs(ours))), ours.kind
            assert len(back.tensors) == len(graph.tensors)
            assert estimate(back, converted=True).arena_bytes == estimate(graph).arena_bytes
            model = MicroInterpreter(data)
            out = model.predict_int8(np.random.default_rng(0).random((2, *shape), dtype=np.float32))
            assert out.shape == (2, 4)
            real = measure_arena_bytes(data)
            errors.append(abs(estimate(graph).arena_bytes - real) / real)
    assert max(errors) <= 0.05 and statistics.median(errors) <= 0.02, errors
