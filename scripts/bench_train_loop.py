"""Where a short candidate training should run untraced: seconds per candidate, traced against eager.

``tinynas.train.loop`` traces its train step and inference function once per model, which pays off over
many steps; a search candidate on a few hundred samples takes only a handful. This times the same
trainings (``train_graph``, the search's low-fidelity budget, 1 epoch on N samples, batch 64, plus the
BatchNorm recalibration) with the loop forced traced and forced eager, on random archs of mcunet and
dscnn for digits, one TensorFlow thread as in the test suite, and prints the table that sets
``EAGER_MAX_STEPS``. Usage:

    .venv/bin/python scripts/bench_train_loop.py [--archs 3] [--samples 64,128,256,512,1024]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=3, help="random archs per space")
    parser.add_argument("--samples", default="64,128,256,512,1024", help="training samples (1 epoch each)")
    args = parser.parse_args()
    os.environ.setdefault("TINYNAS_HOME", tempfile.mkdtemp(prefix="tinynas_bench_"))

    import numpy as np

    import tinynas.train.loop as loop
    from tinynas.data import load_dataset
    from tinynas.space import get_space
    from tinynas.train import TrainBudget, train_graph
    from tinynas.train.trainer import BN_RECALIBRATION_SAMPLES

    digits = load_dataset("digits")
    samples = [int(s) for s in args.samples.split(",")]
    print(f"{'space':<8} {'samples':>7} {'steps':>5}  {'traced s':>8}  {'eager s':>8}  {'eager/traced':>12}  "
          f"{'val acc traced / eager':>22}")
    for name in ("mcunet", "dscnn"):
        space = get_space(name, input_shape=digits.input_shape, num_classes=digits.num_classes)
        rng = np.random.default_rng(0)
        graphs = [space.graph(space.sample(rng)) for _ in range(args.archs)]
        train_graph(graphs[0], digits, budget=TrainBudget.low_fidelity(epochs=1, max_train_samples=64), seed=0)
        for n in samples:
            budget = TrainBudget.low_fidelity(epochs=1, max_train_samples=n)
            steps = -(-n // budget.batch_size) + -(-min(n, BN_RECALIBRATION_SAMPLES) // loop.EVAL_BATCH)
            times: dict[str, list[float]] = {"traced": [], "eager": []}
            accs: dict[str, list[float]] = {"traced": [], "eager": []}
            for mode, limit in (("traced", -1), ("eager", 10**9)):
                loop.EAGER_MAX_STEPS = limit
                for graph in graphs:
                    start = time.perf_counter()
                    result = train_graph(graph, digits, budget=budget, seed=0)
                    times[mode].append(time.perf_counter() - start)
                    accs[mode].append(result.val_accuracy)
            traced, eager = statistics.mean(times["traced"]), statistics.mean(times["eager"])
            print(f"{name:<8} {n:>7} {steps:>5}  {traced:>8.2f}  {eager:>8.2f}  {eager / traced:>12.2f}  "
                  f"{statistics.mean(accs['traced']):>10.4f} / {statistics.mean(accs['eager']):.4f}", flush=True)


if __name__ == "__main__":
    main()
