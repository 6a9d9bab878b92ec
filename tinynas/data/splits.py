"""Deterministic, stratified splits and subsets of labelled data.

Loaders use ``stratified_split`` to carve validation and test sets; the trainer
uses ``stratified_subset`` for low-fidelity budgets (a few hundred samples that
keep the class balance). Both depend only on the labels and the seed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainders, ties by class)."""
    counts = counts.astype(np.int64)
    if total >= counts.sum():
        return counts.copy()
    exact = counts * (total / counts.sum())
    base = np.floor(exact).astype(np.int64)
    remainder = total - int(base.sum())
    order = np.lexsort((np.arange(len(counts)), -(exact - base)))
    for c in order[:remainder]:
        base[c] += 1
    return np.minimum(base, counts)


def stratified_split(y: np.ndarray, fractions: Sequence[float], *, seed: int) -> list[np.ndarray]:
    """Index arrays of ``len(fractions) + 1`` disjoint parts of ``y``; the last part takes the rest.

    Each part holds ``fraction`` of every class (rounded), so small classes stay
    represented. Indices within each part are shuffled with ``seed``.
    """
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        start = 0
        for i, frac in enumerate(fractions):
            n = int(round(len(idx) * float(frac)))
            parts[i].append(idx[start:start + n])
            start += n
        parts[-1].append(idx[start:])
    out = []
    for chunks in parts:
        joined = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
        out.append(rng.permutation(joined).astype(np.int64))
    return out


def stratified_subset(y: np.ndarray, n: int, *, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` samples of ``y`` keeping class proportions (all of them if ``n >= len(y)``)."""
    y = np.asarray(y)
    if n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    take = _allocate(counts, n)
    chosen = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(chosen))
