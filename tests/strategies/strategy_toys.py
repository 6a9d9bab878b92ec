"""A small fake search space with known accuracy functions, so strategies are tested without training."""

from __future__ import annotations

import numpy as np

from tinynas.space.arch import Arch
from tinynas.space.base import Decision, SearchSpace
from tinynas.space.graph import Graph, GraphBuilder
from tinynas.strategies.base import Observation

N_DECISIONS = 6
N_OPTIONS = 6
TARGET = (4, 1, 5, 2, 3, 0)  # option indices of the best arch


class ToySpace(SearchSpace):
    """Six decisions of six options each (46,656 archs); width decisions are ints, one is a string."""

    name = "toy"
    description = "test space with a known optimum"

    def _decisions_for_input(self) -> list[Decision]:
        decisions = [Decision(f"d{i}", tuple(range(N_OPTIONS))) for i in range(N_DECISIONS - 1)]
        decisions.append(Decision("act", ("a", "b", "c", "d", "e", "f")))
        return decisions

    def _build(self, arch: Arch) -> Graph:
        b = GraphBuilder(input_shape=self.input_shape, name="toy")
        x = b.flatten(b.input)
        x = b.fully_connected(x, units=self.num_classes)
        return b.build(outputs=[b.softmax(x)])


class SmallToySpace(ToySpace):
    """Three decisions of three options (27 archs): small enough that a strategy can exhaust it."""

    name = "toy"

    def _decisions_for_input(self) -> list[Decision]:
        return [Decision(f"d{i}", (0, 1, 2)) for i in range(3)]


def small_toy_observation(space: SearchSpace, arch: Arch) -> Observation:
    x = space.encode(arch)
    return Observation(accuracy=0.5 + 0.1 * x[0] - 0.05 * x[1] + 0.02 * x[2], latency_ms=1.0 + sum(x))


def toy_accuracy(space: SearchSpace, arch: Arch) -> float:
    """A smooth function with one peak at TARGET: 0.95 there, falling with the squared distance."""
    x = np.array(space.encode(arch), dtype=float)
    return float(0.95 * np.exp(-np.sum((x - np.array(TARGET)) ** 2) / 12.0))


def toy_latency(space: SearchSpace, arch: Arch) -> float:
    """Latency grows with the sum of the first five decisions (bigger options: slower)."""
    return 1.0 + float(sum(space.encode(arch)[:5]))


def toy_observation(space: SearchSpace, arch: Arch) -> Observation:
    return Observation(accuracy=toy_accuracy(space, arch), latency_ms=toy_latency(space, arch),
                       arena_bytes=1000 * (1 + space.encode(arch)[0]), flash_bytes=5000)


# -- the nanonas space, for strategies that only work there ----------------------------------
NANONAS_PEAK = (13, 3)  # (k, c) of the best network; odd k, reachable with k_step=2 from k=1


def cells(arch: Arch) -> int:
    """The cell count of a nanonas arch's ``c`` (``3`` or a variant such as ``"3-avg-k5"``)."""
    return int(str(arch["c"]).split("-")[0])


def nanonas_accuracy(arch: Arch) -> float:
    """Unimodal in (k, c): 0.9 at NANONAS_PEAK, lower with distance (k counts in steps of 2);
    a variant of c (``"3-avg"``) scores 0.1 less than NanoNAS's own network with as many cells."""
    k, c = int(arch["k"]), cells(arch)
    variant = 0.0 if isinstance(arch["c"], int) else 0.1
    return 0.9 - 0.01 * abs(k - NANONAS_PEAK[0]) - 0.05 * abs(c - NANONAS_PEAK[1]) - variant


def nanonas_fits(arch: Arch) -> bool:
    """A stand-in budget: k * (c + 1) <= 60 (the peak fits, the biggest networks do not)."""
    return int(arch["k"]) * (cells(arch) + 1) <= 60
