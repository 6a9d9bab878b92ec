"""DARTS, DrNAS and RobustDARTS (DARTS-ES, L2, DP) on the NAS-Bench-201 cell: does DARTS collapse, do the others not?

DARTS is known to drift to parameter-free ops (skip connections, pooling) as its
search goes on (Zela et al. 2020; Chen et al. 2021); its Hessian's dominant
eigenvalue grows meanwhile, which is what RobustDARTS's early stop watches.

For each method and seed this records, per search epoch, the fraction of
parameter-free ops (``skip_connect``, ``none``, ``avg_pool_3x3``) in the cell
derived from that epoch's mixing weights (``DartsResult.weights`` keeps them per
epoch, so the search needs no hook), and for the final derived cell its
published CIFAR-10 validation accuracy (``benchmarks/nasbench201_accuracy.csv``:
how good the cell is when trained properly, a transfer check, since the search
here runs on a small built-in dataset), the epoch RobustDARTS stopped at, the
eigenvalue at the first and last epoch and the wall time. The derivation
excludes ``none`` (DARTS's argmax rule), so a derived cell's parameter-free ops
are skips and pools.

Each finished (method, seed) row is appended to ``--out`` (JSON lines, flushed)
as soon as it finishes, so a run cut short keeps its rows; ``--table-from``
prints the table of one or more such files (runs split over processes). ``--epochs-out`` also appends one
row per search epoch as it ends (the derived cell, its parameter-free share, the eigenvalue), so a run killed
mid-search leaves its trajectory; given to ``--table-from`` with the ``--out`` files, the per-epoch rows of a
run with no finished row become its row, marked unfinished, the cell of its last epoch as its result (rows
written before they carried ``warmup_epochs`` take ``--warmup-epochs``). ``--cells-per-stage`` sets the
supernet's depth (default 1; NAS-Bench-201's skeleton has 5, the depth of the published collapse) and is recorded
in every row; rows written before it existed read as 1.

RobustDARTS's DARTS-ES follows DARTS's trajectory exactly until it stops, so a ``darts`` run with the
eigenvalue every epoch (``--hessian-every 1``) also gives DARTS-ES: ``--table-from ... --es-post-hoc`` adds
a ``darts-es*`` row per such run, the stop rule (``tinynas.darts.early_stop_epoch``, min_epoch 10 counted
from the first alpha update) applied to its recorded eigenvalues, and the cell of 4 epochs before the stop.
``rdarts-l2`` and ``rdarts-dp`` are RobustDARTS's regularised variants without the stop: the network's weight
decay times ``--l2-factor`` (default 27: 8.1e-3, the paper's largest) and DropPath on every op but the skip,
ramped to ``--drop-path`` (default 0.6, the paper's largest).
Usage:

    .venv/bin/python scripts/bench_darts.py --dataset digits --epochs 50 --seeds 0,1,2 \\
        --methods darts,drnas,darts-es --out runs.jsonl
    .venv/bin/python scripts/bench_darts.py --table-from a.jsonl,b.jsonl --every 5
    .venv/bin/python scripts/bench_darts.py --dataset digits --epochs 60 --warmup-epochs 10 --batch-size 16 \
        --seeds 0 --methods darts --hessian-every 1 --out runs.jsonl --epochs-out epochs.jsonl
    .venv/bin/python scripts/bench_darts.py --dataset digits --epochs 40 --warmup-epochs 10 --batch-size 16 \
        --cells-per-stage 5 --seeds 0 --methods darts --hessian-every 1 --out deep.jsonl --epochs-out deep_ep.jsonl
    .venv/bin/python scripts/bench_darts.py --table-from runs.jsonl --es-post-hoc --every 10
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
PARAM_FREE = ("skip_connect", "none", "avg_pool_3x3")


def published() -> dict[str, float]:
    with open(ROOT / "benchmarks" / "nasbench201_accuracy.csv", newline="") as fh:
        return {row["arch_str"]: float(row["cifar10_val_acc"]) for row in csv.DictReader(fh)}


def param_free_fraction(arch: Any) -> float:
    """The share of the cell's edges whose op has no parameters (what DARTS collapses to)."""
    ops = [str(op) for _, op in arch.decisions]
    return sum(op in PARAM_FREE for op in ops) / len(ops)


def run_one(name: str, seed: int, args: argparse.Namespace, table: dict[str, float]) -> dict[str, Any]:
    from dataclasses import replace

    import numpy as np

    from tinynas.darts import DartsConfig, search_cell
    from tinynas.darts.search import derive_arch
    from tinynas.data import load_dataset
    from tinynas.space.nasbench201 import arch_string

    data = load_dataset(args.dataset, seed=seed)
    data = replace(data, x_train=data.x_train[:args.samples], y_train=data.y_train[:args.samples])
    common = dict(epochs=args.epochs, base_channels=args.channels, cells_per_stage=args.cells_per_stage, seed=seed,
                  batch_size=args.batch_size, warmup_epochs=args.warmup_epochs, hessian_samples=args.hessian_samples,
                  affine_ops=args.affine_ops)
    label = name + ("+affine" if args.affine_ops else "")  # the method's rows, apart from its default runs
    hess = args.hessian_every
    configs = {
        "darts": lambda: DartsConfig(hessian_every=hess, **common),
        "darts-2nd": lambda: DartsConfig(order=2, hessian_every=hess, **common),
        "drnas": lambda: DartsConfig(method="drnas", hessian_every=hess, **common),
        # the early stop needs the eigenvalue every epoch
        "darts-es": lambda: DartsConfig(early_stop=True, min_epoch=min(10, args.epochs // 2), hessian_every=1,
                                        **common),
        # RobustDARTS's regularised variants, no early stop (the paper's R-DARTS(L2) / R-DARTS(DP))
        "rdarts-l2": lambda: DartsConfig(regularize=args.l2_factor, hessian_every=hess, **common),
        "rdarts-dp": lambda: DartsConfig(drop_path=args.drop_path, hessian_every=hess, **common),
    }

    def log_epoch(epoch: int, result: Any) -> None:
        if not args.epochs_out:
            return
        arch = derive_arch(np.asarray(result.weights[-1]))
        row = {"method": label, "seed": seed, "cells_per_stage": args.cells_per_stage, "epoch": epoch + 1,
               "max_epochs": args.epochs, "warmup_epochs": args.warmup_epochs,
               "param_free": param_free_fraction(arch), "arch": arch_string(arch), "eigenvalue": result.eigenvalues[-1],
               "supernet_val": result.val_accuracy[-1], "seconds": round(time.perf_counter() - started, 1)}
        with open(args.epochs_out, "a") as fh:
            fh.write(json.dumps(row) + "\n")

    started = time.perf_counter()
    result = search_cell(data, config=configs[name](), progress=log_epoch)
    archs = [derive_arch(np.asarray(w)) for w in result.weights]
    per_epoch = [param_free_fraction(a) for a in archs]
    text = arch_string(result.arch)
    eig = [e for e in result.eigenvalues if e is not None]
    half = len(data.y_train) // 2
    return {"method": label, "seed": seed, "dataset": args.dataset, "samples": len(data.y_train),
            "channels": args.channels, "cells_per_stage": args.cells_per_stage, "batch_size": args.batch_size,
            "warmup_epochs": args.warmup_epochs,
            "alpha_steps": max(0, result.epochs_run - args.warmup_epochs) * (half // args.batch_size),
            "hessian_samples": args.hessian_samples, "max_epochs": args.epochs, "epochs": result.epochs_run,
            "weight_decay": result.config.weight_decay,
            "drop_path": result.config.drop_path,
            "stop_epoch": None if result.stop_epoch is None else result.stop_epoch + 1,
            "arch_epoch": None if result.arch_epoch is None else result.arch_epoch + 1,
            "param_free": per_epoch, "final_param_free": param_free_fraction(result.arch),
            "archs": [arch_string(a) for a in archs], "eigenvalues": result.eigenvalues,
            "ops": result.op_counts(), "arch": text, "nb201_cifar10": table.get(text),
            "supernet_val": result.val_accuracy[-1] if result.val_accuracy else None,
            "eig_first": eig[0] if eig else None, "eig_last": eig[-1] if eig else None,
            "seconds": round(result.seconds, 1)}


def es_post_hoc(row: dict[str, Any], table: dict[str, float], *, min_epoch: int = 10) -> dict[str, Any] | None:
    """The DARTS-ES result of a darts row whose eigenvalue was computed every epoch after warm-up: the same row
    cut at RobustDARTS's stop (the cell of ``lookback`` epochs earlier), or unchanged when the rule never fired;
    None when the row lacks the per-epoch eigenvalues."""
    from tinynas.darts import early_stop_epoch

    warm = row.get("warmup_epochs", 0)
    eigs = row.get("eigenvalues", [])[warm:]
    if row["method"] != "darts" or not eigs or any(e is None for e in eigs) or "archs" not in row:
        return None
    cut = dict(row, method="darts-es*")
    t = early_stop_epoch(eigs, min_epoch=min_epoch)
    if t is None:
        return cut
    stop, lookback = t + warm, 4
    arch = row["archs"][stop - lookback]
    cut.update(stop_epoch=stop + 1, arch_epoch=stop - lookback + 1, epochs=stop + 1,
               param_free=row["param_free"][:stop + 1], final_param_free=row["param_free"][stop - lookback],
               arch=arch, nb201_cifar10=table.get(arch), eig_last=eigs[t])
    return cut


def unfinished_rows(epoch_rows: list[dict[str, Any]], finished: list[dict[str, Any]], table: dict[str, float],
                    *, warmup_epochs: int) -> list[dict[str, Any]]:
    """Table rows for the runs of ``--epochs-out`` rows that have no finished row (a search cut short): the
    trajectory up to its last epoch, the cell of that epoch as its result, ``unfinished`` set. Rows written
    before the per-epoch rows carried ``warmup_epochs`` take ``warmup_epochs``. Raises ValueError when a run's
    epochs are not 1..k (the file holds two runs of one method, seed and depth)."""
    done = {(r["method"], r["seed"], cells_per_stage(r)) for r in finished}
    runs: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for r in epoch_rows:
        runs.setdefault((r["method"], r["seed"], cells_per_stage(r)), []).append(r)
    out = []
    for key, epochs in runs.items():
        if key in done:
            continue
        epochs.sort(key=lambda r: r["epoch"])
        if [r["epoch"] for r in epochs] != list(range(1, len(epochs) + 1)):
            raise ValueError(f"per-epoch rows of {key} are not epochs 1..k: the file holds more than one run of it; "
                             "write each run to its own --epochs-out file")
        eigs = [r["eigenvalue"] for r in epochs]
        known = [e for e in eigs if e is not None]
        last = epochs[-1]
        out.append({"method": key[0], "seed": key[1], "cells_per_stage": key[2],
                    "warmup_epochs": last.get("warmup_epochs", warmup_epochs),
                    "max_epochs": last.get("max_epochs", len(epochs)), "epochs": len(epochs), "stop_epoch": None,
                    "arch_epoch": len(epochs), "param_free": [r["param_free"] for r in epochs],
                    "final_param_free": last["param_free"], "archs": [r["arch"] for r in epochs],
                    "eigenvalues": eigs, "arch": last["arch"], "nb201_cifar10": table.get(last["arch"]),
                    "supernet_val": last["supernet_val"], "eig_first": known[0] if known else None,
                    "eig_last": known[-1] if known else None, "seconds": last["seconds"],
                    "unfinished": {"reached": len(epochs), "planned": last.get("max_epochs")}})
    return out


def cells_per_stage(row: dict[str, Any]) -> int:
    """The supernet's cells per stage; rows written before the field existed were searched with 1."""
    return int(row.get("cells_per_stage", 1))


def _unfinished_note(row: dict[str, Any]) -> str:
    cut = row.get("unfinished")
    if not cut:
        return ""
    return f"  (no finished row: per-epoch rows up to epoch {cut['reached']} of {cut['planned'] or '?'})"


def _fmt(v: Any, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def print_table(rows: list[dict[str, Any]], *, every: int) -> None:
    """Per method x seed: the fraction at every ``every``-th epoch, the final cell's; then a mean per method."""
    if not rows:
        print("no finished runs")
        return
    longest = max(r["max_epochs"] for r in rows)
    marks = [e for e in range(every, longest + 1, every)]
    if 1 not in marks:
        marks = [1, *marks]
    head = " ".join(f"{'e' + str(e):>5}" for e in marks)
    print(f"{'method':<9} {'seed':>4} {'N':>2} {head} {'final':>5} {'stop':>4} {'NB201 C10':>9} {'eig 1st':>7} "
          f"{'eig last':>8} {'s':>5}  cell")

    def at(r: dict[str, Any], e: int) -> float | None:
        return r["param_free"][e - 1] if e <= len(r["param_free"]) else None

    for r in rows:
        cells = " ".join(f"{_fmt(at(r, e)):>5}" for e in marks)
        print(f"{r['method']:<9} {r['seed']:>4} {cells_per_stage(r):>2} {cells} {r['final_param_free']:>5.2f} "
              f"{_fmt(r['stop_epoch'], 'd'):>4} {_fmt(r['nb201_cifar10']):>9} {_fmt(r['eig_first'], '.3f'):>7} "
              f"{_fmt(r['eig_last'], '.3f'):>8} {r['seconds']:>5.0f}  {r['arch']}"
              + _unfinished_note(r))
    print("mean per method and depth (over the seeds that reached the epoch):")
    for method, depth in dict.fromkeys((r["method"], cells_per_stage(r)) for r in rows):
        group = [r for r in rows if r["method"] == method and cells_per_stage(r) == depth]
        cells = []
        for e in marks:
            vals = [at(r, e) for r in group if at(r, e) is not None]
            cells.append(f"{_fmt(sum(vals) / len(vals) if vals else None):>5}")
        accs = [r["nb201_cifar10"] for r in group if r["nb201_cifar10"] is not None]
        stops = [r["stop_epoch"] for r in group if r["stop_epoch"] is not None]
        final = sum(r["final_param_free"] for r in group) / len(group)
        stop = f"{sum(stops) / len(stops):.0f}" if stops else "-"
        print(f"{method:<9} {'n=' + str(len(group)):>4} {depth:>2} {' '.join(cells)} {final:>5.2f} {stop:>4} "
              f"{_fmt(sum(accs) / len(accs) if accs else None):>9}")
    print("N: cells per stage of the supernet (NB201's is 5); e<k>: parameter-free fraction (skip, none, avg_pool;"
          " none is never derived) of the cell derived at epoch k; final: of the returned cell; stop: epoch"
          " RobustDARTS's eigenvalue rule stopped at (it returns the cell of 4 epochs earlier); NB201 C10: published"
          " CIFAR-10 validation accuracy of the returned cell")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--methods", default="darts,drnas,darts-es")
    parser.add_argument("--samples", type=int, default=4000, help="training samples used (split in two halves)")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells-per-stage", type=int, default=1,
                        help="cells per stage of the supernet (DartsConfig.cells_per_stage; NAS-Bench-201's is 5)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup-epochs", type=int, default=0,
                        help="epochs (of --epochs) that train only the weights before alpha moves")
    parser.add_argument("--hessian-samples", type=int, default=256, help="validation samples for the eigenvalue")
    parser.add_argument("--epochs-out", help="append one row per search epoch to this JSON-lines file")
    parser.add_argument("--es-post-hoc", action="store_true",
                        help="with --table-from: add DARTS-ES rows (darts-es*) from darts rows with every-epoch "
                             "eigenvalues")
    parser.add_argument("--l2-factor", type=float, default=27.0,
                        help="rdarts-l2: the network's weight decay is 3e-4 times this (RobustDARTS: 1, 3, 9, 27)")
    parser.add_argument("--drop-path", type=float, default=0.6,
                        help="rdarts-dp: DropPath probability at the last epoch, ramped from 0 (RobustDARTS: 0.2-0.6)")
    parser.add_argument("--affine-ops", action="store_true",
                        help="BatchNorm scale and shift in the candidate convolutions (DartsConfig.affine_ops); rows "
                             "are labelled METHOD+affine")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument("--hessian-every", type=int, default=0,
                        help="eigenvalue every k epochs for darts/drnas (0: never; darts-es always computes it)")
    parser.add_argument("--out", help="append each finished (method, seed) row to this JSON-lines file")
    parser.add_argument("--table-from", help="comma-separated JSON-lines files (--out, and --epochs-out for runs cut "
                                             "short): print their table and exit")
    parser.add_argument("--every", type=int, default=5, help="table column every k epochs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    if args.table_from:
        rows = []
        for path in args.table_from.split(","):
            with open(path) as fh:
                rows += [json.loads(line) for line in fh if line.strip()]
        table = published()
        per_epoch = [r for r in rows if "epoch" in r]  # --epochs-out rows: runs cut short become rows too
        rows = [r for r in rows if "epoch" not in r]
        rows += unfinished_rows(per_epoch, rows, table, warmup_epochs=args.warmup_epochs)
        if args.es_post_hoc:
            rows += [cut for cut in (es_post_hoc(r, table) for r in rows) if cut is not None]
        order = {m: i for i, m in enumerate(["darts", "darts-2nd", "drnas", "darts-es", "darts-es*", "rdarts-l2",
                                                     "rdarts-dp"])}
        rows.sort(key=lambda r: (order.get(r["method"], 9), cells_per_stage(r), r["seed"]))
        print_table(rows, every=args.every)
        return
    table = published()
    rows = []
    for name in args.methods.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            row = run_one(name, seed, args, table)
            rows.append(row)
            if args.out:
                with open(args.out, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                    fh.flush()
            print(f"done {row['method']} seed {seed}: {row['epochs']} epochs, "
                  f"final param-free {row['final_param_free']:.2f}, "
                  f"NB201 C10 {_fmt(row['nb201_cifar10'])}, {row['seconds']:.0f} s", file=sys.stderr, flush=True)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return
    print(f"{args.dataset}, {rows[0]['samples']} training samples, up to {args.epochs} epochs, C={args.channels}, "
          f"{args.cells_per_stage} cell(s) per stage, seeds {args.seeds}")
    print_table(rows, every=args.every)


if __name__ == "__main__":
    main()
