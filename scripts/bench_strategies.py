"""Search strategies on a cheap synthetic objective: best accuracy found after N evaluations.

No training: a fake space of six 6-way decisions whose accuracy is a smooth
function with one peak (0.95), the same as tests/strategies use. Prints, per
strategy and budget, the mean and spread of the best accuracy over seeds, and
the strategy's own overhead per evaluation.

    .venv/bin/python scripts/bench_strategies.py [--seeds 10] [--budgets 30,60,120]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tinynas.space.arch import Arch
from tinynas.space.base import Decision, SearchSpace
from tinynas.space.graph import Graph, GraphBuilder
from tinynas.strategies import Observation, make_strategy

TARGET = (4, 1, 5, 2, 3, 0)


class BenchSpace(SearchSpace):
    name = "bench"

    def _decisions_for_input(self) -> list[Decision]:
        return [Decision(f"d{i}", tuple(range(6))) for i in range(6)]

    def _build(self, arch: Arch) -> Graph:
        b = GraphBuilder(input_shape=self.input_shape)
        return b.build(outputs=[b.softmax(b.fully_connected(b.flatten(b.input), units=self.num_classes))])


def observe(space: SearchSpace, arch: Arch) -> Observation:
    x = np.array(space.encode(arch), dtype=float)
    return Observation(accuracy=float(0.95 * np.exp(-np.sum((x - np.array(TARGET)) ** 2) / 12.0)),
                       latency_ms=1.0 + float(x[:5].sum()))


def run(name: str, space: SearchSpace, seed: int, budget: int, batch: int) -> tuple[float, float]:
    strategy = make_strategy(name, space=space, seed=seed)
    told, t0 = 0, time.perf_counter()
    while told < budget:
        for arch in strategy.ask(batch):
            strategy.tell(arch, observe(space, arch))
            told += 1
    return strategy.best()[1].accuracy, (time.perf_counter() - t0) / told


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budgets", default="30,60,120")
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    space = BenchSpace(input_shape=(4, 4, 1), num_classes=3)
    budgets = [int(b) for b in args.budgets.split(",")]
    print(f"space: 6 decisions x 6 options ({space.size():,} archs), optimum 0.95; {args.seeds} seeds, ask({args.batch})")
    print(f"{'strategy':<10} " + " ".join(f"{'best@' + str(b):>15}" for b in budgets) + f" {'ms/eval':>8}")
    for name in ("random", "evolution", "reinforce"):
        cells, costs = [], []
        for budget in budgets:
            results = [run(name, space, seed, budget, args.batch) for seed in range(args.seeds)]
            best = [r[0] for r in results]
            costs += [r[1] for r in results]
            cells.append(f"{np.mean(best):.3f} +- {np.std(best):.3f}")
        print(f"{name:<10} " + " ".join(f"{c:>15}" for c in cells) + f" {1000 * np.mean(costs):>8.3f}")


if __name__ == "__main__":
    main()
