"""Every space's archs build in Keras with the Graph's shapes, layer by layer, and run."""

from __future__ import annotations

import numpy as np
import pytest

from tinynas.space import get_space

CASES = [
    ("mcunet", (8, 8, 1)),
    ("mcunet", (40, 1)),
    ("nanonas", (32, 32, 3)),
    ("nanonas", (40, 1)),
    ("dscnn", (49, 10, 1)),
    ("dscnn", (40, 1)),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, shape", CASES, ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in CASES])
def test_archs_build_in_keras_with_graph_shapes(name, shape):
    from tinynas.space.keras_builder import build_keras_model

    space = get_space(name, input_shape=shape, num_classes=5)
    rng = np.random.default_rng(11)
    arch = space.sample(rng)
    if name == "mcunet":  # keep the model small: the Keras build is what is tested, not its size
        arch = space.canonical(arch.replace(width=0.25, s2_depth=1, s3_depth=1, s4_depth=1, s5_depth=1))
    graph = space.graph(arch)
    model = build_keras_model(graph, seed=0)
    assert model.output_shape == (None, 5)
    assert tuple(model.input_shape[1:]) == graph.input_shape[1:]
    for op in graph.ops:
        layer = model.get_layer(op.outputs[0])
        assert tuple(layer.output.shape[1:]) == graph.tensor(op.outputs[0]).shape[1:], op.kind
    x = np.random.default_rng(0).random((3, *graph.input_shape[1:]), dtype=np.float32)
    y = np.asarray(model(x))
    assert y.shape == (3, 5)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
