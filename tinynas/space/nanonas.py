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
"""

from __future__ import annotations

import math
from typing import Sequence

from tinynas.errors import SpaceError
from tinynas.space.arch import Arch
from tinynas.space.base import Decision, SearchSpace, register_space
from tinynas.space.graph import Graph, GraphBuilder

K_OPTIONS = tuple(range(1, 33))
MAX_CELLS = 8


def cell_filters(k: int, c: int) -> list[int]:
    """Filters of the first conv and of each of the ``c`` cells (NanoNAS's growth rule)."""
    filters = [k]
    n, multiplier = float(k), 2.0
    for i in range(1, c + 1):
        n = math.ceil(n * multiplier)
        multiplier -= 2.0 ** -i
        filters.append(int(n))
    return filters


def max_cells(input_shape: Sequence[int]) -> int:
    """How many 2x2 pool cells the input allows (each pools a map larger than 1 on every pooled axis)."""
    sizes = [int(input_shape[0])] if len(input_shape) == 2 else [int(input_shape[0]), int(input_shape[1])]
    c = 0
    while c < MAX_CELLS and all(s > 1 for s in sizes):
        sizes = [s // 2 for s in sizes]
        c += 1
    return c


@register_space
class NanoNASSpace(SearchSpace):
    """NanoNAS: k first-conv filters and c pool+conv cells."""

    name = "nanonas"
    description = (
        "NanoNAS plain CNN (Garavagno et al. 2024): k filters in the first 3x3 conv, "
        "c cells of 2x2 max pool + 3x3 conv with growing filters (ReLU)"
    )
    default_input_shape = (32, 32, 3)

    def _decisions_for_input(self) -> list[Decision]:
        return [
            Decision("k", K_OPTIONS),
            Decision("c", tuple(range(0, max_cells(self.input_shape) + 1))),
        ]

    def validate(self, arch: Arch) -> None:
        c = arch.get("c") if arch.space == self.name else None
        limit = max_cells(self.input_shape)
        if isinstance(c, int) and not isinstance(c, bool) and c > limit:
            raise SpaceError(
                f"nanonas arch has c={c} cells but an input of shape {self.input_shape} allows at most "
                f"{limit} (each cell halves the map with a 2x2 pool and needs a map larger than 1x1); "
                f"pick c <= {limit} or a larger input"
            )
        super().validate(arch)

    def summary(self, arch: Arch) -> str:
        return f"k={arch['k']} c={arch['c']} filters={cell_filters(int(arch['k']), int(arch['c']))}"

    def _build(self, arch: Arch) -> Graph:
        k, c = int(arch["k"]), int(arch["c"])
        one_d = len(self.input_shape) == 2
        b = GraphBuilder(input_shape=self.input_shape, name=f"nanonas_{arch.id}")
        x = b.input
        if one_d:
            length, channels = self.input_shape
            x = b.reshape(x, (1, 1, length, channels))
        kernel = (1, 3) if one_d else (3, 3)
        pool = (1, 2) if one_d else (2, 2)
        filters = cell_filters(k, c)
        x = b.conv2d(x, filters=filters[0], kernel=kernel, activation="relu")
        for n in filters[1:]:
            x = b.pool2d(x, kind="max", pool=pool, padding="valid")
            x = b.conv2d(x, filters=n, kernel=kernel, activation="relu")
        x = b.global_avg_pool(x)
        x = b.fully_connected(x, units=self.num_classes)
        x = b.softmax(x)
        return b.build(outputs=[x])
