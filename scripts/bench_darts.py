"""DARTS, DrNAS and RobustDARTS (DARTS-ES) on the NAS-Bench-201 cell: does DARTS collapse, do the others not?

DARTS is known to drift to parameter-free ops (skip connections, pooling) as its
search goes on (Zela et al. 2020; Chen et al. 2021); its Hessian's dominant
eigenvalue grows meanwhile, which is what RobustDARTS's early stop watches.
For each method this prints the derived cell's op counts, its NAS-Bench-201
string, its published CIFAR-10 validation accuracy (``benchmarks/
nasbench201_accuracy.csv``: how good the cell is when trained properly, a
transfer reference, since the search here runs on a built-in dataset), the
supernet's validation accuracy, the eigenvalue at the first and last epoch and
the wall time. Usage:

    .venv/bin/python scripts/bench_darts.py [--dataset glyphs] [--epochs 30] [--methods darts,drnas,darts-es]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]


def published() -> dict[str, float]:
    with open(ROOT / "benchmarks" / "nasbench201_accuracy.csv", newline="") as fh:
        return {row["arch_str"]: float(row["cifar10_val_acc"]) for row in csv.DictReader(fh)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="glyphs")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--methods", default="darts,drnas,darts-es")
    parser.add_argument("--samples", type=int, default=4000, help="training samples used (split in two halves)")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from dataclasses import replace

    from tinynas.darts import DartsConfig, search_cell
    from tinynas.data import load_dataset
    from tinynas.space.nasbench201 import arch_string

    data = load_dataset(args.dataset, seed=args.seed)
    data = replace(data, x_train=data.x_train[:args.samples], y_train=data.y_train[:args.samples])
    configs = {
        "darts": DartsConfig(epochs=args.epochs, base_channels=args.channels, seed=args.seed),
        "darts-2nd": DartsConfig(order=2, epochs=args.epochs, base_channels=args.channels, seed=args.seed),
        "drnas": DartsConfig(method="drnas", epochs=args.epochs, base_channels=args.channels, seed=args.seed),
        "darts-es": DartsConfig(epochs=args.epochs, early_stop=True, min_epoch=min(10, args.epochs // 2),
                                base_channels=args.channels, seed=args.seed),
    }
    table = published()
    rows = []
    for name in args.methods.split(","):
        result = search_cell(data, config=configs[name])
        text = arch_string(result.arch)
        eig = [e for e in result.eigenvalues if e is not None]
        rows.append({"method": name, "epochs": result.epochs_run, "stop_epoch": result.stop_epoch,
                     "ops": result.op_counts(), "arch": text, "nb201_cifar10": table.get(text),
                     "supernet_val": result.val_accuracy[-1], "eig_first": eig[0] if eig else None,
                     "eig_last": eig[-1] if eig else None, "seconds": result.seconds})
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return
    print(f"{args.dataset}, {args.samples} training samples, up to {args.epochs} epochs, C={args.channels}, "
          f"seed {args.seed}")
    print(f"{'method':<10} {'epochs':>6} {'skip':>4} {'pool':>4} {'conv':>4} {'NB201 C10':>9} {'supernet':>8} "
          f"{'eig first':>9} {'eig last':>9} {'s':>6}  cell")
    for r in rows:
        ops = r["ops"]
        conv = ops["nor_conv_1x1"] + ops["nor_conv_3x3"]
        epochs = f"{r['epochs']}" + ("*" if r["stop_epoch"] is not None else "")
        fmt = (lambda v: "-" if v is None else f"{v:.3f}")
        print(f"{r['method']:<10} {epochs:>6} {ops['skip_connect']:>4} {ops['avg_pool_3x3']:>4} {conv:>4} "
              f"{fmt(r['nb201_cifar10']):>9} {r['supernet_val']:>8.4f} {fmt(r['eig_first']):>9} "
              f"{fmt(r['eig_last']):>9} {r['seconds']:>6.0f}  {r['arch']}")
    print("* stopped early by RobustDARTS's eigenvalue rule (the arch of 4 epochs before the stop)")


if __name__ == "__main__":
    main()
