"""How many architectures per second each space turns into a Graph, and, once the
cost model is there, how many it judges (Graph + ``tinynas.cost.estimate``).

The goal (issue: search spaces): >= 500 mcunet archs/s on one core including the
Graph. Times are CPU seconds of this process (``time.process_time``), so other
jobs on a shared machine do not skew them. Usage:

    .venv/bin/python scripts/bench_space_graphs.py [--n 500] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tinynas.space import get_space

CASES = [
    ("mcunet", (96, 96, 3)),
    ("mcunet", (32, 32, 3)),
    ("mcunet", (8, 8, 1)),
    ("nanonas", (50, 50, 3)),
    ("dscnn", (49, 10, 1)),
    ("dscnn", (40, 1)),
]


def rate(fn, items) -> float:
    start = time.process_time()
    for item in items:
        fn(item)
    return len(items) / max(time.process_time() - start, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="archs per space")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        from tinynas.cost import estimate
    except ImportError:
        estimate = None
    print(f"{'space':<8} {'input':<10} {'ops/graph':>9} {'graphs/s':>9} {'graph+cost/s':>13}")
    for name, shape in CASES:
        space = get_space(name, input_shape=shape, num_classes=10)
        rng = np.random.default_rng(args.seed)
        archs = [space.sample(rng) for _ in range(args.n)]
        ops = np.mean([len(space.graph(a).ops) for a in archs[:50]])
        graphs = rate(space.graph, archs)
        judged = rate(lambda a: estimate(space.graph(a)), archs) if estimate else float("nan")
        print(f"{name:<8} {'x'.join(map(str, shape)):<10} {ops:>9.0f} {graphs:>9.0f} {judged:>13.0f}")


if __name__ == "__main__":
    main()
