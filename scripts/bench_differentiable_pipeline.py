"""Whole-pipeline comparison on one board: ``tinynas run`` with ``--strategy staged`` (evolution only) against
``darts`` / ``drnas`` (a layer-wise supernet search, then evolution from its derived arch), same candidates,
epochs and samples. Prints per strategy and seed the int8 test accuracy of the deployed winner, whether the
supernet's derived arch fitted before repair (``changed``: blocks the repair changed), whether the derived arch
won the final (``won``), the winner's latency and the wall time of the run.
``staged+darts`` (or ``+drnas``, ``+rdarts``) is ``staged --refine darts``: evolution, then a supernet around its
best arch; for it ``won`` says whether the refined arch won and ``handed`` whether final training took it.
(Equal candidate budgets, not equal wall time: the supernet stage is extra time, reported in ``s``.) Usage:

    PYTHONPATH=. .venv/bin/python scripts/bench_differentiable_pipeline.py [--board nucleo-l010rb] [--seeds 0]
        [--strategies staged,staged+drnas,darts]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--board", default="nucleo-l010rb")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--strategies", default="staged,darts,drnas")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--search-epochs", type=int, default=2)
    parser.add_argument("--search-samples", type=int, default=256)
    parser.add_argument("--final-epochs", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    print(f"board {args.board}, dataset {args.dataset}, space mcunet, {args.candidates} candidates, search "
          f"{args.search_epochs} epochs x {args.search_samples} samples, final {args.final_epochs} epochs, top 2")
    print(f"{'strategy':12} {'seed':>4} {'int8 acc':>8} {'val acc':>7} {'lat ms':>8} {'arena B':>8} "
          f"{'derived fit':>11} {'changed':>7} {'won':>5} {'handed':>6} {'s':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.strategies.split(","):
            strategy, _, refine = name.partition("+")
            for seed in args.seeds.split(","):
                out = Path(tmp) / f"{strategy}-{refine or 'none'}-{seed}"
                cmd = [sys.executable, "-m", "tinynas.cli.main", "run", "--profile", args.board, "--dataset",
                       args.dataset, "--space", "mcunet", "--strategy", strategy, "--seed", seed,
                       *(["--refine", refine] if refine else []),
                       "--budget-candidates", str(args.candidates), "--search-epochs", str(args.search_epochs),
                       "--search-samples", str(args.search_samples), "--final-epochs", str(args.final_epochs),
                       "--final-top-k", "2", "--no-progress", "--out", str(out)]
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                seconds = time.perf_counter() - t0
                if proc.returncode != 0:
                    print(f"{name:12} {seed:>4} failed (exit {proc.returncode}): {proc.stderr[-300:]}")
                    continue
                w = json.loads((out / "summary.json").read_text())["winner"]
                fit, changed, won, handed = "-", "-", "-", "-"
                done = out / "stages" / ("refine" if refine else "differentiable") / "done.json"
                if done.is_file():
                    stage = json.loads(done.read_text())
                    if "search" in stage:  # a refine stage may skip (top candidates agree on every block)
                        search, won = stage["search"], str(stage["derived"] == w["id"])
                        fit, changed = str(search["derived_infeasible"] is None), str(search["changed_to_fit"])
                    handed = str(stage.get("handed", "-"))
                print(f"{name:12} {seed:>4} {w.get('int8_accuracy') or float('nan'):>8.4f} "
                      f"{w['val_accuracy']:>7.4f} {w['cost']['latency_ms']:>8.1f} {w['cost']['arena_bytes']:>8} "
                      f"{fit:>11} {changed:>7} {won:>5} {handed:>6} {seconds:>6.0f}", flush=True)


if __name__ == "__main__":
    main()
