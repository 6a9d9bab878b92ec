"""The gcn space: graph convolutions on a dataset's fixed graph, as int8 ops TFLite Micro has."""

from __future__ import annotations

import numpy as np
import pytest

from tinynas.cost import estimate
from tinynas.data.graphs import grid_adjacency
from tinynas.errors import SpaceError
from tinynas.space import Arch, get_space
from tinynas.space.gcn import normalized_adjacency

# What the space may emit: int8 kernels TFLite Micro has, and nothing else (no gather/scatter).
TFLM_INT8_OPS = {"FULLY_CONNECTED", "RESHAPE", "TRANSPOSE", "ADD", "MUL", "MEAN", "REDUCE_MAX", "SOFTMAX"}
GRID = grid_adjacency(8, 8)


def arch(**over) -> Arch:
    base = dict(layers=2, hidden=16, normalization="symmetric", self_loops=True, residual=False, readout="mean")
    return Arch.from_dict("gcn", {**base, **over})


def space(nodes_side: int = 8, features: int = 3, classes: int = 10, adjacency=GRID):
    return get_space("gcn", input_shape=(nodes_side * nodes_side, features), num_classes=classes, adjacency=adjacency)


def test_the_task_decides_the_readouts():
    """A graph task has no marked node to read; pooling a node task's nodes loses the node asked about."""
    def readouts(node_task):
        space = get_space("gcn", input_shape=(64, 3), num_classes=10, adjacency=GRID, node_task=node_task)
        return next(d.options for d in space.decisions() if d.name == "readout")

    assert readouts(False) == ("mean", "max", "flatten")
    assert readouts(True) == ("flatten", "node")
    assert readouts(None) == ("mean", "max", "flatten", "node")  # costing without data
    graph_task = get_space("gcn", input_shape=(64, 3), num_classes=10, adjacency=GRID, node_task=False)
    with pytest.raises(SpaceError, match=r"readout 'node' does not fit a graph task .*\['mean', 'max', 'flatten'\]"):
        graph_task.validate(arch(readout="node"))


def test_normalizations():
    a = grid_adjacency(3, 3)
    rw = normalized_adjacency(a, normalization="random_walk", self_loops=False)
    assert np.allclose(rw.sum(axis=1), 1.0) and rw[0, 1] == pytest.approx(0.5)  # corner: 2 neighbours
    sym = normalized_adjacency(a, normalization="symmetric", self_loops=True)
    assert np.allclose(sym, sym.T) and sym[4, 4] == pytest.approx(1 / 5)  # centre: 4 neighbours + itself
    assert sym[0, 1] == pytest.approx(1 / np.sqrt(3 * 4))


def test_sampled_archs_are_int8_tflm_ops_with_one_shared_a_hat():
    sp = space()
    rng = np.random.default_rng(0)
    archs = [sp.sample(rng) for _ in range(40)]
    assert len({a.id for a in archs}) > 30
    for a in archs:
        g = sp.graph(a)
        assert {op.kind for op in g.ops} <= TFLM_INT8_OPS
        assert g.ops[-1].kind == "SOFTMAX" and g.output_shape == (1, 10)
        props = [op for op in g.ops if op.attrs.get("fixed") == "adjacency"]
        assert len(props) == int(a["layers"]) and len({op.inputs[1] for op in props}) == 1
        assert np.allclose(props[0].attrs["values"], sp.a_hat(a))
        assert g.tensor(props[0].inputs[1]).shape == (64, 64)
        cost = estimate(g)
        assert cost.arena_bytes > 0 and cost.flash_bytes > 64 * 64


def test_layer_is_fc_then_transposed_a_hat_fc_and_readouts():
    g = space().graph(arch(layers=1, readout="max"))
    kinds = [(op.kind, g.tensor(op.outputs[0]).shape) for op in g.ops]
    assert kinds == [("FULLY_CONNECTED", (1, 64, 16)), ("RESHAPE", (64, 16)), ("TRANSPOSE", (16, 64)),
                     ("FULLY_CONNECTED", (16, 64)), ("TRANSPOSE", (64, 16)), ("RESHAPE", (1, 64, 16)),
                     ("REDUCE_MAX", (1, 16)), ("FULLY_CONNECTED", (1, 10)), ("SOFTMAX", (1, 10))]
    node = space(features=5).graph(arch(readout="node", residual=True))
    first = node.ops[0]
    assert first.attrs.get("fixed") == "select_last" and node.tensor(first.outputs[0]).shape == (1, 64, 1)
    assert np.array_equal(first.attrs["values"], [[0, 0, 0, 0, 64]])  # x nodes: MEAN leaves the node's row
    assert [op.kind for op in node.ops].count("ADD") == 1
    # one layer has no residual: canonical() says so, and both spell the same network
    sp = space()
    assert sp.canonical(arch(layers=1, residual=True)) == arch(layers=1, residual=False)


def test_inputs_the_space_cannot_take():
    with pytest.raises(SpaceError, match=r"gcn takes graph samples of shape \(nodes, features\).*digits-grid"):
        get_space("gcn", input_shape=(8, 8, 1), num_classes=10)
    with pytest.raises(SpaceError, match="adjacency of shape \\(9, 9\\) does not match 64 nodes"):
        space(adjacency=grid_adjacency(3, 3))
    with pytest.raises(SpaceError, match="outside 2..256"):
        get_space("gcn", input_shape=(300, 2), num_classes=2)


def test_keras_build_without_adjacency_says_how_to_fix():
    from tinynas.space.keras_builder import build_keras_model

    g = space(adjacency=None).graph(arch())
    estimate(g)  # costing needs no adjacency
    with pytest.raises(SpaceError, match=r"fixed adjacency weights are unknown.*adjacency=dataset.adjacency"):
        build_keras_model(g, seed=0)


@pytest.mark.slow
def test_converter_and_tflm_agree_with_the_graph():
    """Each readout, residual and normalization: the converter writes the Graph's op list op by op, every
    tensor is int8 (no float island), TFLite Micro runs it, matches the float model and the arena estimate."""
    from tinynas.deploy.arena import measure_arena_bytes
    from tinynas.deploy.interpreter import MicroInterpreter
    from tinynas.deploy.quantize import quantize_int8
    from tinynas.space.keras_builder import build_keras_model
    from tinynas.space.tflite_reader import read_tflite

    rng = np.random.default_rng(0)
    a_karate = (rng.random((12, 12)) < 0.3).astype(np.float32)
    a_karate = np.maximum(a_karate, a_karate.T)
    cases = [
        (space(features=3), arch(layers=3, hidden=16, residual=True, readout="mean")),
        (space(features=3), arch(layers=2, hidden=8, normalization="random_walk", self_loops=False, readout="max")),
        (get_space("gcn", input_shape=(12, 4), num_classes=2, adjacency=a_karate),
         arch(layers=2, hidden=24, residual=True, readout="node")),
    ]
    for sp, a in cases:
        g = sp.graph(a)
        model = build_keras_model(g, seed=0)
        x = rng.random((32, *sp.input_shape)).astype(np.float32)
        if a["readout"] == "node":
            x[..., -1] = 0.0
            x[np.arange(32), rng.integers(0, sp.input_shape[0], 32), -1] = 1.0
        data = quantize_int8(model, representative=x)
        back = read_tflite(data)
        assert [(op.kind, back.tensor(op.outputs[0]).shape) for op in back.ops] == \
            [(op.kind, g.tensor(op.outputs[0]).shape) for op in g.ops], sp.summary(a)
        assert {t.dtype for t in back.tensors.values() if not t.constant} == {"int8"}
        micro = MicroInterpreter(data)
        float_probs = model.predict(x, verbose=0)
        int8_probs = micro.predict(x)
        assert np.mean(np.abs(int8_probs - float_probs)) < 0.05
        real = measure_arena_bytes(data)
        assert abs(estimate(g).arena_bytes - real) / real < 0.05


def test_zero_cost_proxies_score_gcn_archs():
    """The proxies' own forward pass runs the Graph (A_hat over the node axis); A_hat is no parameter."""
    from tinynas.proxies.net import Batch
    from tinynas.proxies.score import score_graph

    sp = space()
    rng = np.random.default_rng(1)
    batch = Batch(x=rng.random((16, 64, 3)).astype(np.float32), y=np.arange(16) % 10)
    for a in (arch(readout="max", residual=True, layers=3), arch(readout="flatten"), arch(readout="node")):
        scores = score_graph(sp.graph(a), proxies=["synflow", "naswot", "snip", "params"], batch=batch, seed=0)
        assert all(np.isfinite(v) for v in scores.values()), scores
    g = sp.graph(arch(layers=3, hidden=8))
    assert estimate(g).params == (3 * 8 + 8) + 2 * (8 * 8 + 8) + (8 * 10 + 10)


@pytest.mark.slow
def test_random_archs_convert_to_the_graph_with_no_float_op():
    """Random archs of both graph datasets' shapes: the converter's op list is the Graph's, no float
    tensor, and TFLite Micro allocates and invokes each."""
    from tinynas.deploy.interpreter import MicroInterpreter
    from tinynas.deploy.quantize import quantize_untrained
    from tinynas.space.tflite_reader import read_tflite

    rng = np.random.default_rng(3)
    karate = (rng.random((34, 34)) < 0.15).astype(np.float32)
    karate = np.maximum(karate, karate.T)
    for sp in (space(), get_space("gcn", input_shape=(34, 35), num_classes=2, adjacency=karate)):
        for _ in range(3):
            a = sp.canonical(sp.sample(rng))
            g = sp.graph(a)
            data = quantize_untrained(g, seed=0)
            back = read_tflite(data)
            assert [(op.kind, back.tensor(op.outputs[0]).shape) for op in back.ops] == \
                [(op.kind, g.tensor(op.outputs[0]).shape) for op in g.ops], sp.summary(a)
            assert {t.dtype for t in back.tensors.values() if not t.constant} == {"int8"}, sp.summary(a)
            out = MicroInterpreter(data).predict(rng.random((2, *sp.input_shape)).astype(np.float32))
            assert out.shape == (2, sp.num_classes) and np.isfinite(out).all()
