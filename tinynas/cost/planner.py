"""TFLite Micro's greedy memory planner, re-implemented so the cost model knows the arena's head.

The head of TFLM's arena holds every non-persistent tensor (and kernel scratch
buffer) at the offset the ``GreedyMemoryPlanner`` chose; its size is the
largest ``offset + size``. Faithful to tflite-micro
``micro/memory_planner/greedy_memory_planner.cc`` and ``micro/micro_allocation_info.cc``:
  - lifetimes in allocation scopes: subgraph inputs and outputs are created at
    scope 0, op ``i`` runs in scope ``i + 1``; a tensor is first created when an
    op outputs it (this resets the outputs' scope-0 mark) and last used by the
    last op that reads it; subgraph outputs live to the last scope;
  - each buffer's size is rounded up to 16 bytes (``MicroArenaBufferAlignment``);
  - buffers are added in tensor order (then scratch buffers), stored from the
    end of the array, then stably bubble-sorted by size, largest first, so among
    equal sizes the later-added buffer is placed first;
  - each is put at the first gap, in offset order, among the placed buffers
    whose lifetime overlaps its own.
"""

from __future__ import annotations

from dataclasses import dataclass

BUFFER_ALIGNMENT = 16


def align_up(n: int, alignment: int = BUFFER_ALIGNMENT) -> int:
    return -(-n // alignment) * alignment


@dataclass(frozen=True, slots=True)
class Buffer:
    """One planned buffer: aligned size and its lifetime (first and last scope, inclusive)."""

    size: int
    first: int
    last: int


def plan_offsets(buffers: list[Buffer]) -> list[int]:
    """Offsets of ``buffers`` (in the order given) as TFLM's greedy planner places them."""
    n = len(buffers)
    if n == 0:
        return []
    # Reversed add order, then a stable sort by size descending == TFLM's order.
    order = sorted(range(n - 1, -1, -1), key=lambda i: -buffers[i].size)
    offsets = [0] * n
    placed: list[tuple[int, int, int, int]] = []  # (offset, end, first, last), kept sorted by offset
    for i in order:
        b = buffers[i]
        size, first, last = b.size, b.first, b.last
        candidate = 0
        for off, end, f, l in placed:
            if f > last or first > l:
                continue  # not alive at the same time
            if off - candidate >= size:
                break
            if end > candidate:
                candidate = end
        offsets[i] = candidate
        # Insert after every entry with offset <= candidate (TFLM inserts before the first larger one).
        lo, hi = 0, len(placed)
        while lo < hi:
            mid = (lo + hi) // 2
            if placed[mid][0] > candidate:
                hi = mid
            else:
                lo = mid + 1
        placed.insert(lo, (candidate, candidate + size, first, last))
    return offsets


def peak_bytes(buffers: list[Buffer]) -> int:
    """The head size: the largest ``offset + size`` of the plan."""
    offsets = plan_offsets(buffers)
    return max((o + b.size for o, b in zip(offsets, buffers)), default=0)
