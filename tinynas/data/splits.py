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


def group_split(groups: np.ndarray, fractions: Sequence[float], *, y: np.ndarray, seed: int) -> list[np.ndarray]:
    """Like ``stratified_split``, but whole groups (a subject, a recording session) go to one part.

    Windows of one person's recording resemble each other more than anyone else's: split
    by window, the test split would hold that person's other windows, and accuracy on it
    would say little about a new wearer. The parts follow the classes as well as the groups
    can: often a group holds one class only (a session per activity, a folder per speaker and
    word), and a part drawn by group size alone could hold a single class. First each carved
    part gets one group of every class while another group of it is left (for training);
    then the other groups, largest first in a seeded order, each go where they bring the
    per-class counts nearest every part's fraction. Every part gets at least one group.
    """
    groups, y = np.asarray(groups).astype(str), np.asarray(y)
    names, inverse = np.unique(groups, return_inverse=True)
    k = len(fractions)
    if len(names) < k + 1:
        from tinynas.errors import DatasetError

        raise DatasetError(f"{len(names)} group(s) cannot be split into {k + 1} parts by group; "
                           "record more subjects or sessions, or leave group_column out")
    classes, y_idx = np.unique(y, return_inverse=True)
    counts = np.zeros((len(names), len(classes)), dtype=np.int64)  # samples of each class in each group
    np.add.at(counts, (inverse, y_idx), 1)
    shares = np.asarray([float(f) for f in fractions] + [1.0 - float(sum(fractions))])
    target = shares[:, None] * counts.sum(axis=0)[None, :]
    held = np.zeros_like(target)
    part_of = np.full(len(names), -1)
    order = np.random.default_rng(seed).permutation(len(names))

    def cost(part: int, g: int) -> float:
        """How much giving group g to ``part`` moves that part's class counts away from its target."""
        return float(np.abs(held[part] + counts[g] - target[part]).sum() - np.abs(held[part] - target[part]).sum())

    def give(part: int, g: int) -> None:
        part_of[g] = part
        held[part] += counts[g]

    for c in np.argsort((counts > 0).sum(axis=0), kind="stable"):  # the class in fewest groups first
        for part in range(k):
            free = [g for g in order if part_of[g] < 0 and counts[g, c] > 0]
            if held[part, c] == 0 and len(free) >= 2:
                give(part, min(free, key=lambda g: cost(part, g)))
    for part in range(k):  # every part gets a group, even when no class had one to spare
        if not (part_of == part).any():
            give(part, min((g for g in order if part_of[g] < 0), key=lambda g: cost(part, g)))
    rest = sorted((g for g in order if part_of[g] < 0), key=lambda g: -counts[g].sum())  # stable: seeded ties
    for i, g in enumerate(rest):
        if i == len(rest) - 1 and not (part_of == k).any():
            give(k, g)  # training keeps a group whatever the counts say
        else:
            give(min(range(k + 1), key=lambda part: (cost(part, g), -(target[part] - held[part]).sum())), g)
    rng = np.random.default_rng(seed)
    return [rng.permutation(np.flatnonzero(part_of[inverse] == part)).astype(np.int64) for part in range(k + 1)]


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
