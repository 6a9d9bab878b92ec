"""Trainings on small datasets: one pass per epoch against epochs of at least 1,000 samples.

A run's epochs were passes over the training set, so on a set of 30 series at 64 per batch the
final training's 20 epochs were 20 optimizer steps, and a search candidate's 3 epochs were 3.
``TrainBudget.on_train_set`` now passes over a small set several times per epoch (an epoch draws
what it would from a large set, up to ``MIN_EPOCH_SAMPLES``). For each built-in small dataset this
trains the same random archs of ``--space`` (default ``dscnn``; ``--archs`` of them, feasible or not:
the training is what is compared) with ``--seeds`` seeds at the final training's budget (``--epochs``,
default 20) both ways, and prints the mean test accuracy (float, Keras) of each. TensorFlow runs on
one thread.

    .venv/bin/python scripts/bench_small_data.py [--datasets arrowhead,gunpoint] [--archs 3] [--seeds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATASETS = ("arrowhead", "gunpoint", "italypowerdemand", "basicmotions", "japanesevowels")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--space", default="dscnn", help="the space whose random archs are trained")
    p.add_argument("--archs", type=int, default=3, help="random archs per dataset")
    p.add_argument("--seeds", type=int, default=2, help="training seeds per arch")
    p.add_argument("--epochs", type=int, default=20, help="the final training's epochs (run's default: 20)")
    args = p.parse_args()

    import numpy as np

    from tinynas.data import load_dataset
    from tinynas.space import get_space
    from tinynas.train import TrainBudget, train_graph

    print(f"{'dataset':<17} {'train':>5} {'val':>4} {'test':>5}  {'passes':>6}  {'one pass':>8}  {'passes':>8}  "
          f"{'steps':>11}  seconds")
    for name in args.datasets.split(","):
        ds = load_dataset(name)
        space = get_space(args.space, input_shape=ds.input_shape, num_classes=ds.num_classes)
        rng = np.random.default_rng(1)
        archs = [space.sample(rng) for _ in range(args.archs)]
        once = TrainBudget(epochs=args.epochs)
        passes = once.on_train_set(len(ds.y_train))
        accs: dict[str, list[float]] = {"once": [], "passes": []}
        started = time.perf_counter()
        for arch in archs:
            for seed in range(args.seeds):
                for label, budget in (("once", once), ("passes", passes)):
                    result = train_graph(space.graph(arch), ds, budget=budget, seed=seed)
                    accs[label].append(float(result.test_accuracy))
        steps = [args.epochs * -(-len(ds.y_train) * b.epoch_passes // b.batch_size) for b in (once, passes)]
        print(f"{name:<17} {len(ds.y_train):>5} {len(ds.y_val):>4} {len(ds.y_test):>5}  {passes.epoch_passes:>6}  "
              f"{statistics.mean(accs['once']):>8.3f}  {statistics.mean(accs['passes']):>8.3f}  "
              f"{steps[0]:>4} / {steps[1]:>4}  {time.perf_counter() - started:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
