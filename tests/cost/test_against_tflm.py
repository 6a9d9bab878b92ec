"""The cost model against the real thing: TFLite Micro's arena and the converter's file size,
on random archs of every space and on the MLPerf Tiny reference models."""

from __future__ import annotations

import statistics

import pytest

from tinynas.cost import estimate, estimate_tflite
from tinynas.deploy.arena import measure_arena_bytes
from tinynas.space.tflite_reader import read_tflite

# REFERENCE.md s1 (arena, x86-64 wheel) and s6 (MACs, in millions with 2 decimals).
MLPERF = {"kws": (24_272, 2.66), "vww": (103_672, 7.49), "ic": (55_984, 12.50), "ad": (4_632, 0.26)}


def _err(est: float, real: float) -> float:
    return abs(est - real) / real


@pytest.mark.slow
def test_arena_of_random_archs_matches_tflm(converted_archs):
    errors = []
    for name, graph, data, real in converted_archs:
        est = estimate(graph).arena_bytes
        errors.append(_err(est, real))
        assert _err(est, real) <= 0.05, f"{name}: estimated {est} B, TFLM needs {real} B"
    assert statistics.median(errors) <= 0.02
    assert {n for n, *_ in converted_archs} == {"nanonas", "dscnn", "mcunet", "nasbench201", "tinyformer"}


@pytest.mark.slow
def test_flash_of_random_archs_matches_file_size(converted_archs):
    errors = [_err(estimate(graph).flash_bytes, len(data)) for _, graph, data, _ in converted_archs]
    assert statistics.median(errors) <= 0.02
    assert max(errors) <= 0.05


@pytest.mark.slow
def test_space_graph_is_what_the_converter_wrote(converted_archs):
    """The ops and activation shapes of the space's graph, seen as the converter sees it, are
    those read back from the converted file, and both give the same arena (the op order the
    converter picks between independent branches may differ where it changes nothing)."""
    from tinynas.cost.convert import converter_view

    for name, graph, data, _ in converted_archs:
        mine = converter_view(graph)
        real = read_tflite(data)

        def signature(g):
            return sorted((op.kind, g.tensors[op.outputs[0]].shape) for op in g.ops)

        assert signature(mine) == signature(real), name
        assert estimate(graph).macs == estimate(real, converted=True).macs
        assert estimate(graph).arena_bytes == pytest.approx(estimate(real, converted=True).arena_bytes, rel=0.002)


@pytest.mark.parametrize("key", sorted(MLPERF))
def test_mlperf_models_arena_and_macs(key, mlperf_models):
    ref_arena, ref_mmacs = MLPERF[key]
    data = mlperf_models[key].read_bytes()
    real = measure_arena_bytes(data)
    cost = estimate_tflite(data)
    assert _err(cost.arena_bytes, real) <= 0.03
    assert _err(cost.arena_bytes, ref_arena) <= 0.03
    assert round(cost.macs / 1e6, 2) == ref_mmacs  # REFERENCE's precision
    assert _err(cost.macs, ref_mmacs * 1e6) <= 0.02
    assert cost.flash_bytes == len(data)


def test_estimate_of_a_read_file_does_not_depend_on_the_converted_flag(mlperf_models):
    for path in mlperf_models.values():
        graph = read_tflite(path)
        assert estimate(graph).arena_bytes == estimate(graph, converted=True).arena_bytes
