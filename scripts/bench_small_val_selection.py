"""Which of the final top-k a small training set should deploy: the one its validation split picks, or the one
k-fold cross-validation on train + validation picks?

On the UCR/UEA sets the validation split carved from the training data holds 6-36 series, so the final top-k
often tie on it (a run then takes the lowest validation loss, ``pipeline/stages.py`` ``rank_key``). This
script measures, per dataset and seed, the float test accuracy of each finalist of a real ``tinynas run``
(``--no-qat``), and what each rule would have picked:

- ``val``: the run's winner (validation accuracy, then loss);
- ``cv``: highest mean fold accuracy, then lowest mean fold loss, over ``--folds`` stratified folds of train +
  validation, each finalist retrained per fold with the run's final budget (same epochs, passes and seed);
- ``oracle``: the finalist with the best test accuracy; ``mean``: the finalists' mean (a random pick).

The rule costs ``folds`` x top-k more final trainings. Usage:

    PYTHONPATH=. .venv/bin/python scripts/bench_small_val_selection.py [--datasets arrowhead,italypowerdemand]
        [--seeds 0,1,2] [--folds 4] [--space dscnn] [--board nucleo-l432kc] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def _finals(out: Path) -> list[dict]:
    lines = [json.loads(x) for x in (out / "journal.jsonl").read_text().splitlines() if x.strip()]
    return [e for e in lines if e.get("type") == "candidate" and e.get("stage") == "final" and e.get("error") is None]


def _folds(y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """Stratified: each class's indices shuffled and dealt round-robin into ``k`` folds."""
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    at = 0
    for c in np.unique(y):
        for i in rng.permutation(np.flatnonzero(y == c)):
            folds[at % k].append(int(i))
            at += 1
    return [np.asarray(sorted(f)) for f in folds]


def _cv(arch: dict, *, dataset: str, seed: int, folds: int, epochs: int) -> tuple[float, float, float]:
    """Mean fold accuracy and loss of ``arch`` retrained on each fold's complement, and the seconds it took."""
    from tinynas.data import load_dataset
    from tinynas.space import base as space_base
    from tinynas.space.arch import Arch
    from tinynas.train import TrainBudget, train_graph

    ds = load_dataset(dataset, seed=seed)
    x, y = np.concatenate([ds.x_train, ds.x_val]), np.concatenate([ds.y_train, ds.y_val])
    space = space_base.get_space(arch["space"], input_shape=ds.input_shape, num_classes=ds.num_classes)
    graph = space.graph(Arch.from_json(arch))
    accs, losses, t0 = [], [], time.perf_counter()
    for held in _folds(y, folds, seed):
        keep = np.setdiff1d(np.arange(len(y)), held)
        fold = replace(ds, x_train=x[keep], y_train=y[keep], x_val=x[held], y_val=y[held])
        budget = TrainBudget(epochs=epochs, evaluate_test=False).on_train_set(len(keep))
        r = train_graph(graph, fold, budget=budget, seed=seed)
        accs.append(r.val_accuracy)
        losses.append(r.val_loss)
    return statistics.mean(accs), statistics.mean(losses), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="arrowhead,italypowerdemand,japanesevowels")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--space", default="dscnn")
    parser.add_argument("--board", default="nucleo-l432kc")
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--final-epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="results.json")
    args = parser.parse_args()
    print("command: " + " ".join(["PYTHONPATH=.", "python", *sys.argv]))
    print(f"{'dataset':17} {'seed':>4} {'val n':>5} {'finalists: test acc (val acc, cv acc)':60} {'val':>6} {'cv':>6} "
          f"{'oracle':>6} {'mean':>6} {'cv s':>5}", flush=True)
    rows = []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets.split(","):
            for seed in map(int, args.seeds.split(",")):
                out = Path(tmp) / f"{dataset}-{seed}"
                cmd = [sys.executable, "-m", "tinynas.cli.main", "run", "--profile", args.board, "--dataset", dataset,
                       "--space", args.space, "--seed", str(seed), "--budget-candidates", str(args.candidates),
                       "--final-top-k", str(args.top_k), "--final-epochs", str(args.final_epochs), "--no-qat",
                       "--no-progress", "--out", str(out)]
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(f"{dataset:17} {seed:>4} run failed (exit {proc.returncode}): {proc.stderr[-300:]}",
                          flush=True)
                    continue
                winner = json.loads((out / "summary.json").read_text())["winner"]["id"]
                finals = _finals(out)
                seconds = 0.0
                for e in finals:
                    e["cv_accuracy"], e["cv_loss"], took = _cv(e["arch"], dataset=dataset, seed=seed,
                                                               folds=args.folds, epochs=args.final_epochs)
                    seconds += took
                cv_pick = min(finals, key=lambda e: (-e["cv_accuracy"], e["cv_loss"]))
                test = {e["id"]: e["test_accuracy"] for e in finals}
                from tinynas.data import load_dataset

                row = {"dataset": dataset, "seed": seed, "val_samples": len(load_dataset(dataset, seed=seed).y_val),
                       "finalists": [{k: e[k] for k in ("id", "accuracy", "val_loss", "test_accuracy", "cv_accuracy",
                                                        "cv_loss")} for e in finals],
                       "val": test[winner], "cv": test[cv_pick["id"]], "oracle": max(test.values()),
                       "mean": statistics.mean(test.values()), "cv_seconds": round(seconds, 1)}
                rows.append(row)
                cells = " ".join(f"{e['test_accuracy']:.3f}({e['accuracy']:.2f},{e['cv_accuracy']:.2f})"
                                 for e in finals)
                print(f"{dataset:17} {seed:>4} {row['val_samples']:>5} {cells:60} {row['val']:>6.3f} {row['cv']:>6.3f} "
                      f"{row['oracle']:>6.3f} {row['mean']:>6.3f} {seconds:>5.0f}", flush=True)
    print("\nmean float test accuracy of each rule's pick")
    for dataset in args.datasets.split(","):
        mine = [r for r in rows if r["dataset"] == dataset]
        if mine:
            means = {k: statistics.mean(r[k] for r in mine) for k in ("val", "cv", "oracle", "mean")}
            print(f"{dataset:17} seeds {len(mine)}  " + "  ".join(f"{k} {v:.4f}" for k, v in means.items()),
                  flush=True)
    if args.out:
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
