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


def group_split(groups: np.ndarray, fractions: Sequence[float], *, seed: int) -> list[np.ndarray]:
    """Like ``stratified_split``, but whole groups (a subject, a recording session) go to one part.

    Windows of one person's recording resemble each other more than anyone else's: split
    by window, the test split would hold that person's other windows, and accuracy on it
    would say little about a new wearer. Groups are taken in a seeded order while each brings
    a part nearer its fraction of the samples; every part gets at least one group.
    """
    groups = np.asarray(groups).astype(str)
    names = np.unique(groups)
    if len(names) < len(fractions) + 1:
        from tinynas.errors import DatasetError

        raise DatasetError(f"{len(names)} group(s) cannot be split into {len(fractions) + 1} parts by group; "
                           "record more subjects or sessions, or leave group_column out")
    order = np.random.default_rng(seed).permutation(names)
    sizes = {name: int(np.sum(groups == name)) for name in names}
    parts: list[list[str]] = [[] for _ in range(len(fractions) + 1)]
    taken = 0
    for i, frac in enumerate(fractions):
        want, held = float(frac) * len(groups), 0
        while taken < len(order) - (len(fractions) - i) and (
                not parts[i] or abs(held + sizes[order[taken]] - want) < abs(held - want)):
            parts[i].append(order[taken])
            held += sizes[order[taken]]
            taken += 1
    parts[-1] = list(order[taken:])
    rng = np.random.default_rng(seed)
    return [rng.permutation(np.flatnonzero(np.isin(groups, part))).astype(np.int64) for part in parts]


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
