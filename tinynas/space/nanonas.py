"""The ``nanonas`` space: NanoNAS's plain CNN, two decisions (k, c), for the NanoNAS
hill climb and for any other strategy that wants a tiny, cheap-to-train space.

Structure, read from the authors' code (Garavagno et al. 2024, "An affordable
hardware-aware neural architecture search for deploying convolutional neural
networks on ultra-low-power computing platforms"; github.com/AndreaMattiaGaravagno/NanoNAS,
``NanoNAS.Model``): CONV 3x3 with k filters (ReLU) -> c cells of
[MAX_POOL 2x2 stride 2 (valid) -> CONV 3x3 (ReLU)] whose filters grow as
n_i = ceil(n_{i-1} * m_i) with m_1 = 2 and m_{i+1} = m_i - 2^-i (x2, x1.5, x1.25, ...)
-> global average pool (MEAN) -> FULLY_CONNECTED -> SOFTMAX.

Differences from the authors' Keras model, all because the TFLite converter
cannot fold them into a conv: the input Rescaling + BatchNormalization is left to
the trainer's input normalisation, the BatchNormalization each cell puts between
pool and conv sits after the conv here (where it folds), and the training-only
Dropout(0.5) before the classifier is not part of the graph. Like the authors'
``number_of_cells_limited`` rule, a cell is allowed only while the map it pools
is larger than 1x1, so c is limited by the input size. A 1-D input (L, C) is
reshaped to (1, 1, L, C) and uses (1, 3) kernels and (1, 2) pools.

Variants (ours, issue 11): the (k, c) grid alone is too small to search on a tight
board (a 14 KB arena holds 57 of its 160 networks at 28x28, every one of them
trained within minutes). So ``c`` also takes strings: the cell count followed by
variant tags, e.g. ``"2-avg-k5-s2"``. ``avg``: 2x2 average instead of max pooling;
``k5``: 5x5 (1-D: 1x5) kernels in every conv; ``s2``: the first conv has stride 2,
which quarters the largest activation (what bounds k on a small arena) and leaves
one cell fewer to the input. An int c is NanoNAS's own network, so every arch of
the original space keeps its decisions and its id; the strings come after the ints
among c's options, so old decision-index vectors also decode as before.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

from tinynas.errors import SpaceError
from tinynas.space.arch import Arch
from tinynas.space.base import Decision, SearchSpace, register_space
from tinynas.space.graph import Graph, GraphBuilder

K_OPTIONS = tuple(range(1, 33))
MAX_CELLS = 8
VARIANT_TAGS = ("avg", "k5", "s2")  # the order tags are written in a c string


def cell_filters(k: int, c: int) -> list[int]:
    """Filters of the first conv and of each of the ``c`` cells (NanoNAS's growth rule)."""
    filters = [k]
    n, multiplier = float(k), 2.0
    for i in range(1, c + 1):
        n = math.ceil(n * multiplier)
        multiplier -= 2.0 ** -i
        filters.append(int(n))
    return filters


def _pooled_sizes(input_shape: Sequence[int], stem_stride: int = 1) -> list[int]:
    """The map sizes the cells pool: length of a 1-D input, height and width of a 2-D one,
    after a first conv of ``stem_stride`` (SAME padding: ceil(size / stride))."""
    sizes = [int(input_shape[0])] if len(input_shape) == 2 else [int(input_shape[0]), int(input_shape[1])]
    return [-(-s // stem_stride) for s in sizes]


def max_cells(input_shape: Sequence[int], *, stem_stride: int = 1) -> int:
    """How many 2x2 pool cells the input allows (each pools a map larger than 1 on every pooled axis)."""
    sizes = _pooled_sizes(input_shape, stem_stride)
    c = 0
    while c < MAX_CELLS and all(s > 1 for s in sizes):
        sizes = [s // 2 for s in sizes]
        c += 1
    return c


@dataclass(frozen=True)
class CellPlan:
    """What a value of ``c`` builds: the cell count and the variant of NanoNAS's network."""

    cells: int
    pool: str = "max"  # "max" | "avg"
    kernel: int = 3
    stem_stride: int = 1

    @property
    def value(self) -> int | str:
        """The ``c`` option of this plan: NanoNAS's own network is a plain int (its original id)."""
        tags = [t for t, on in zip(VARIANT_TAGS, (self.pool == "avg", self.kernel == 5, self.stem_stride == 2)) if on]
        return self.cells if not tags else "-".join([str(self.cells), *tags])


def cell_plan(c: int | str) -> CellPlan:
    """The CellPlan of a ``c`` value (``3`` or ``"3-avg-k5-s2"``); SpaceError names the fix."""
    if isinstance(c, int) and not isinstance(c, bool):
        return CellPlan(cells=c)
    parts = c.split("-") if isinstance(c, str) else []
    tags = parts[1:]
    if (not parts or not (parts[0].isascii() and parts[0].isdigit()) or not tags or len(set(tags)) != len(tags)
            or any(t not in VARIANT_TAGS for t in tags)
            or tags != sorted(tags, key=VARIANT_TAGS.index)):
        raise SpaceError(
            f"nanonas decision 'c' must be a cell count (e.g. 2) or a count with variant tags in the "
            f"order {'-'.join(VARIANT_TAGS)} (e.g. '2-avg', '2-k5-s2'), got {c!r}"
        )
    return CellPlan(cells=int(parts[0]), pool="avg" if "avg" in tags else "max",
                    kernel=5 if "k5" in tags else 3, stem_stride=2 if "s2" in tags else 1)


def cells_options(input_shape: Sequence[int]) -> tuple[int | str, ...]:
    """Every ``c`` of an input: NanoNAS's counts 0..max first, then each variant's counts.

    Variants are offered only where they change the network: on an input whose pooled axes
    are all longer than 1, and ``avg`` with at least one cell; a variant's counts stop at
    what its (strided) map allows.
    """
    options: list[int | str] = list(range(0, max_cells(input_shape) + 1))
    if not all(s > 1 for s in _pooled_sizes(input_shape)):
        return tuple(options)  # a 1x1 map: a wider kernel or a stride would change nothing
    for s2, k5, avg in itertools.product((False, True), repeat=3):  # avg varies fastest
        if not (avg or k5 or s2):
            continue
        stride = 2 if s2 else 1
        for n in range(1 if avg else 0, max_cells(input_shape, stem_stride=stride) + 1):
            options.append(CellPlan(cells=n, pool="avg" if avg else "max", kernel=5 if k5 else 3,
                                    stem_stride=stride).value)
    return tuple(options)


@register_space
class NanoNASSpace(SearchSpace):
    """NanoNAS: k first-conv filters and c pool+conv cells."""

    name = "nanonas"
    description = (
        "NanoNAS plain CNN (Garavagno et al. 2024): k filters in the first 3x3 conv, "
        "c cells of 2x2 max pool + 3x3 conv with growing filters (ReLU); c variants "
        "'-avg' (average pooling), '-k5' (5x5 convs), '-s2' (stride-2 first conv)"
    )
    default_input_shape = (32, 32, 3)
    summary_legend = (
        "k: filters of the first conv; c: cells of pool + conv after it, with variant tags (avg: average "
        "pooling, k5: 5x5 convs, s2: a stride-2 first conv); filters: each conv's filters, first to last")

    def _decisions_for_input(self) -> list[Decision]:
        return [
            Decision("k", K_OPTIONS),
            Decision("c", cells_options(self.input_shape)),
        ]

    def validate(self, arch: Arch) -> None:
        c = arch.get("c") if arch.space == self.name else None
        if isinstance(c, (int, str)) and not isinstance(c, bool):
            plan = cell_plan(c)
            limit = max_cells(self.input_shape, stem_stride=plan.stem_stride)
            if plan.cells > limit:
                strided = " after the stride-2 first conv" if plan.stem_stride == 2 else ""
                raise SpaceError(
                    f"nanonas arch has c={c!r}: {plan.cells} cells, but an input of shape {self.input_shape} "
                    f"allows at most {limit}{strided} (each cell halves the map with a 2x2 pool and needs a map "
                    f"larger than 1x1); pick at most {limit} cells or a larger input"
                )
        super().validate(arch)

    def summary(self, arch: Arch) -> str:
        plan = cell_plan(arch["c"])
        text = f"k={arch['k']} c={arch['c']} filters={cell_filters(int(arch['k']), plan.cells)}"
        if plan.value != plan.cells:
            text += f" ({plan.pool} pool, {plan.kernel}x{plan.kernel} convs, first stride {plan.stem_stride})"
        return text

    def _build(self, arch: Arch) -> Graph:
        k, plan = int(arch["k"]), cell_plan(arch["c"])
        one_d = len(self.input_shape) == 2
        b = GraphBuilder(input_shape=self.input_shape, name=f"nanonas_{arch.id}")
        x = b.input
        if one_d:
            length, channels = self.input_shape
            x = b.reshape(x, (1, 1, length, channels))
        kernel = (1, plan.kernel) if one_d else (plan.kernel, plan.kernel)
        stride = (1, plan.stem_stride) if one_d else (plan.stem_stride, plan.stem_stride)
        pool = (1, 2) if one_d else (2, 2)
        filters = cell_filters(k, plan.cells)
        x = b.conv2d(x, filters=filters[0], kernel=kernel, stride=stride, activation="relu")
        for n in filters[1:]:
            x = b.pool2d(x, kind=plan.pool, pool=pool, padding="valid")
            x = b.conv2d(x, filters=n, kernel=kernel, activation="relu")
        x = b.global_avg_pool(x)
        x = b.fully_connected(x, units=self.num_classes)
        x = b.softmax(x)
        return b.build(outputs=[x])
