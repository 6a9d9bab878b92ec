"""The greedy memory planner re-implementation: TFLM's placement rules on hand-made buffer sets."""

from __future__ import annotations

from tinynas.cost.planner import Buffer, align_up, peak_bytes, plan_offsets


def test_align_up_to_16():
    assert [align_up(n) for n in (0, 1, 16, 17, 490)] == [0, 16, 16, 32, 496]


def test_buffers_alive_together_are_stacked_and_disjoint_ones_share():
    together = [Buffer(100 * 16, 0, 2), Buffer(50 * 16, 1, 3)]
    assert peak_bytes(together) == 150 * 16
    apart = [Buffer(100 * 16, 0, 1), Buffer(50 * 16, 2, 3)]
    assert plan_offsets(apart) == [0, 0]
    assert peak_bytes(apart) == 100 * 16


def test_largest_first_then_first_gap_that_fits():
    # a (big) lives 0-1, b 2-3 reuses a's place, c overlaps both and goes above a.
    bufs = [Buffer(64, 0, 1), Buffer(32, 2, 3), Buffer(16, 1, 2)]
    assert plan_offsets(bufs) == [0, 0, 64]
    # A small buffer fits in a gap left between two others that are alive with it.
    bufs = [Buffer(64, 0, 4), Buffer(32, 0, 1), Buffer(48, 2, 4), Buffer(16, 0, 4), Buffer(16, 3, 4)]
    offsets = plan_offsets(bufs)
    assert offsets[0] == 0
    for i, a in enumerate(bufs):  # no two buffers alive at once overlap in memory
        for j, b in enumerate(bufs):
            if i < j and not (a.last < b.first or b.last < a.first):
                assert offsets[i] + a.size <= offsets[j] or offsets[j] + b.size <= offsets[i]


def test_equal_sizes_place_the_later_added_buffer_first():
    # TFLM fills its sort array from the end, then bubble-sorts stably: ties go later-added first.
    bufs = [Buffer(32, 0, 1), Buffer(32, 0, 1)]
    assert plan_offsets(bufs) == [32, 0]


def test_empty_plan():
    assert peak_bytes([]) == 0
