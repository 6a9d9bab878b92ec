"""Subnets sliced from the elastic supernet are the space's networks: same Graph, same function."""

from __future__ import annotations

import numpy as np
import pytest

from tinynas.errors import SupernetError
from tinynas.space import get_space

SHAPE = (28, 28, 1)


@pytest.fixture(scope="module")
def supernet():
    from tinynas.ofa.supernet import ElasticMCUNet

    space = get_space("mcunet", input_shape=SHAPE, num_classes=5)
    return ElasticMCUNet(space=space, max_width=0.35, seed=0)


def _archs(space, n, seed=3):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        arch = space.sample(rng)
        if float(arch["width"]) <= 0.35:
            out.append(arch)
    # a left-out stage, no head, a downscaled resolution: the shapes that break naive slicing
    out.append(space.canonical(out[0].replace(s2_depth=0, s4_depth=0, head=False, resolution=12)))
    return out


def test_extracted_subnet_computes_what_the_supernet_computes(supernet):
    space = supernet.space
    x = np.random.default_rng(0).random((48, *SHAPE), dtype=np.float32)
    for arch in _archs(space, 4):
        stats = supernet.recalibrate(arch, x)
        model = supernet.extract(arch, stats)
        graph = space.graph(arch)
        assert tuple(model.input_shape[1:]) == graph.input_shape[1:]
        # every op's Keras layer has the Graph's output shape (the builder names layers by tensor)
        for op in graph.ops:
            layer = model.get_layer(op.outputs[0])
            assert tuple(layer.output.shape[1:]) == graph.tensor(op.outputs[0]).shape[1:], op.kind
        ours = supernet.predict(arch, x, stats)
        theirs = model.predict(supernet.prepare_inputs(x, int(arch["resolution"])).numpy(), verbose=0)
        np.testing.assert_allclose(theirs, ours, atol=1e-5)
        assert np.std(ours) > 1e-4  # not a constant output that would match by accident


@pytest.mark.slow
def test_extracted_subnet_converts_to_the_spaces_graph(supernet):
    from tinynas.deploy.quantize import quantize_int8
    from tinynas.space.tflite_reader import read_tflite

    space = supernet.space
    arch = _archs(space, 1, seed=11)[-1]
    x = np.random.default_rng(1).random((32, *SHAPE), dtype=np.float32)
    # an untrained all-zero bias is dropped by the converter; a trained one is kept
    bias = supernet.variables["classifier/bias"]
    bias.assign(np.linspace(-0.1, 0.1, bias.shape[0]).astype(np.float32))
    model = supernet.extract(arch, supernet.recalibrate(arch, x))
    graph = space.graph(arch)
    rep = supernet.prepare_inputs(x[:8], int(arch["resolution"])).numpy()
    back = read_tflite(quantize_int8(model, representative=rep))
    assert [op.kind for op in back.ops] == [op.kind for op in graph.ops]
    for ours, theirs in zip(graph.ops, back.ops):
        assert back.tensor(theirs.outputs[0]).shape == graph.tensor(ours.outputs[0]).shape, ours.kind
        assert sorted(t.shape for t in back.constant_inputs(theirs)) == \
            sorted(t.shape for t in graph.constant_inputs(ours)), ours.kind


def test_sorting_expansions_keeps_the_full_network(supernet):
    from tinynas.ofa.plan import largest_archs

    arch = largest_archs(supernet.space, max_width=0.35)[0]
    x = np.random.default_rng(2).random((16, *SHAPE), dtype=np.float32)
    before = supernet.logits(arch, x).numpy()
    state = supernet.state()
    supernet.sort_expansions()
    after = supernet.logits(arch, x).numpy()
    np.testing.assert_allclose(after, before, atol=1e-3)
    proj = supernet.variables["s1b1_project/kernel"].numpy()
    importance = np.abs(proj).sum(axis=(0, 1, 3))
    assert np.all(np.diff(importance) <= 1e-6)
    supernet.load_state(state, source="test")


def test_a_wider_arch_than_the_supernet_is_refused_with_the_fix(supernet):
    space = supernet.space
    arch = space.canonical(_archs(space, 1)[0].replace(width=1.0))
    with pytest.raises(SupernetError, match="not covered.*max width 0.35.*larger max_width"):
        supernet.extract(arch, {})
    assert not supernet.covers(arch)


def test_other_spaces_are_refused():
    from tinynas.ofa.plan import subnet_plan

    space = get_space("dscnn", input_shape=(40, 1), num_classes=4)
    with pytest.raises(SupernetError, match="'mcunet' space only"):
        subnet_plan(space, space.sample(np.random.default_rng(0)))


def test_recalibrated_statistics_do_not_depend_on_the_batch_size(supernet):
    """Pooled over batches, the first BatchNorm's statistics are those of all samples at once (a mean
    of per-batch variances would miss the spread of the batch means). Deeper layers see inputs
    normalized by each batch's own statistics (OFA's recalibration), so only the stem is exact."""
    arch = _archs(supernet.space, 1, seed=5)[0]
    x = np.random.default_rng(2).random((40, *SHAPE), dtype=np.float32)
    whole = supernet.recalibrate(arch, x, batch_size=40)
    pooled = supernet.recalibrate(arch, x, batch_size=7)  # uneven last batch
    assert whole.keys() == pooled.keys()
    mean, var = whole["stem"]
    np.testing.assert_allclose(pooled["stem"][0], mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pooled["stem"][1], var, rtol=1e-3, atol=1e-5)
    assert np.ptp(var) > 0  # distinct channels, not a trivially equal constant
