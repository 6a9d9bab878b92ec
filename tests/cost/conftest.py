"""Fixtures of the cost-model tests: a few random archs of every space, int8-converted and measured
in the real TFLite Micro interpreter once per session (the ground truth the estimates must meet)."""

from __future__ import annotations

import numpy as np
import pytest

# (space, input shape, classes, how many archs): what fits the 120 s budget of these tests on
# 2 busy cores (an mcunet or nasbench201 arch takes ~13 s to convert); the full check is
# scripts/bench_cost_model.py.
CASES = [
    ("nanonas", (32, 32, 3), 10, 3),
    ("dscnn", (49, 10, 1), 12, 3),
    ("mcunet", (32, 32, 3), 10, 1),
    ("nasbench201", (16, 16, 3), 10, 1),
    ("tinyformer", (40, 1), 10, 2),  # ~5 s each: attention, LayerNorm as int8 ops (issue 14)
]


def convert_graph(graph, seed: int) -> bytes:
    """The int8 model as deploy writes it for a microcontroller: converted, then its tensor names stripped."""
    from tinynas.deploy.flatbuffer import strip_tensor_names
    from tinynas.deploy.quantize import quantize_untrained

    return strip_tensor_names(quantize_untrained(graph, seed=seed, num_samples=8))[0]


@pytest.fixture(scope="session")
def converted_archs():
    """[(space name, graph, int8 .tflite bytes, measured arena bytes)] for the CASES above."""
    from tinynas.deploy.arena import measure_arena_bytes
    from tinynas.space.base import get_space

    out = []
    for k, (name, shape, classes, count) in enumerate(CASES):
        space = get_space(name, input_shape=shape, num_classes=classes)
        rng = np.random.default_rng([7, k])
        for i in range(count):
            graph = space.graph(space.sample(rng))
            data = convert_graph(graph, seed=100 * k + i)
            out.append((name, graph, data, measure_arena_bytes(data)))
    return out
