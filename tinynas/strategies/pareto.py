"""Pareto fronts of evaluated candidates: accuracy up, a cost (latency, arena, flash) down.

Strategies expose ``pareto_front()`` through this module, and reports can call
``pareto_indices`` directly on any table of points.
"""

from __future__ import annotations

from typing import Sequence


def pareto_indices(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the points no other point dominates, every coordinate minimized.

    A point dominates another when it is no worse in every coordinate and better
    in at least one; equal points do not dominate each other, so all are kept.
    O(n^2), which is plenty for the hundreds of candidates a search evaluates.
    """
    front = []
    for i, p in enumerate(points):
        dominated = False
        for j, q in enumerate(points):
            if j != i and all(a <= b for a, b in zip(q, p)) and any(a < b for a, b in zip(q, p)):
                dominated = True
                break
        if not dominated:
            front.append(i)
    return front
