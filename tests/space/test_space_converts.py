"""What the TFLite converter makes of a space's Keras model is the space's Graph:
same ops, same shapes, same constant operands (so the cost model counts the right tensors)."""

from __future__ import annotations

import numpy as np
import pytest

from tinynas.space import get_space

CASES = [
    ("mcunet", (8, 8, 1)),
    ("dscnn", (40, 1)),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, shape", CASES, ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in CASES])
def test_int8_model_reads_back_as_the_same_graph(name, shape):
    from tinynas.deploy.quantize import quantize_int8
    from tinynas.space.keras_builder import build_keras_model
    from tinynas.space.tflite_reader import read_tflite

    space = get_space(name, input_shape=shape, num_classes=4)
    arch = space.sample(np.random.default_rng(5))
    if name == "mcunet":
        arch = space.canonical(arch.replace(width=0.25, head=True, s1_depth=2, s2_depth=1, s3_depth=1,
                                            s4_depth=2, s5_depth=1))
    graph = space.graph(arch)
    model = build_keras_model(graph, seed=0)
    # A fresh Dense has an all-zero bias, which the converter drops; a trained one keeps it.
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            layer.bias.assign(np.linspace(-0.1, 0.1, layer.units).astype(np.float32))
    rep = np.random.default_rng(0).random((8, *graph.input_shape[1:]), dtype=np.float32)
    back = read_tflite(quantize_int8(model, representative=rep))
    assert [op.kind for op in back.ops] == [op.kind for op in graph.ops]
    assert back.input_shape == graph.input_shape and back.output_shape == graph.output_shape
    for ours, theirs in zip(graph.ops, back.ops):
        assert back.tensor(theirs.outputs[0]).shape == graph.tensor(ours.outputs[0]).shape, ours.kind
        ours_consts = sorted((t.shape, t.dtype) for t in graph.constant_inputs(ours))
        theirs_consts = sorted((t.shape, t.dtype) for t in back.constant_inputs(theirs))
        assert theirs_consts == ours_consts, ours.kind
