"""Whole-pipeline comparison per board and seed: ``tinynas run --strategy staged`` (evolution only) against
``staged --refine darts|drnas|rdarts`` (evolution, then a layer-wise supernet around its best arch) at EQUAL
WALL TIME, the bar of issue 13; ``darts`` / ``drnas`` / ``rdarts`` on their own (supernet, then evolution from
its derived arch) run at the equal candidate budget.

How equal wall time is set: for each board and seed the refined run goes first with ``--candidates``
candidates; the time its refine stage took (journal time of the refine stage's ``done`` minus the search
stage's) is converted into candidates at that run's own search pace (search ``elapsed_s`` / candidates), and
plain ``staged`` gets ``--candidates`` + round(refine seconds / seconds per candidate). So plain staged spends
the refine stage's time on more evolution candidates; prefilter and final training are the same in both (same
top-k, epochs). Why candidates rather than ``--budget-minutes``: the machine is shared, and a time budget
measured on one run and spent on another under a different load gave plain staged fewer candidates than the
refined run in a trial; the pace of the refined run itself cancels the load. ``search+ s`` shows what each
actually spent (refined: search + refine), so the residual difference is visible.

Columns: int8 TFLM test accuracy of the deployed winner; ``cands`` search candidates trained; ``infeasible``:
the supernet's derived arch broke a budget before the repair (``changed``: blocks the repair changed);
``mix``: how the refine stage chose its blocks (``disagreement`` of the top candidates, or ``neighbourhood``
of the best arch when they agree on every block); ``skipped``: blocks the derived arch left out of the base's
stages ("-" where no skip was offered); ``won``: the derived arch won the final; ``handed``: final training
took it; ``sup val``: the supernet's validation accuracy at the epoch whose arch was taken (how far its
weights learned: at chance, alpha followed the hardware loss alone). Usage:

    PYTHONPATH=. .venv/bin/python scripts/bench_differentiable_pipeline.py [--boards nucleo-l010rb,nano33ble]
        [--seeds 0,1,2] [--strategies staged,staged+drnas] [--space mcunet|dscnn]
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
from pathlib import Path

def _journal(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "journal.jsonl").read_text().splitlines() if x.strip()]


def _stage_done_time(lines: list[dict], stage: str) -> float | None:
    times = [e["time"] for e in lines if e.get("type") == "stage" and e.get("stage") == stage
             and e.get("event") == "done" and "time" in e]
    return times[-1] if times else None


def _left_out(done: dict, lines: list[dict]) -> str:
    """Blocks the derived arch left out of the base's stages ("-" where the stage offered no skip)."""
    if [0, 0] not in done.get("options", []):
        return "-"
    base = next((e["arch"] for e in lines if e.get("type") == "candidate" and e.get("id") == done["base"]), None)
    if base is None:
        return "?"
    # mcunet: the stages' depths; dscnn: its block count
    depth = lambda arch: sum(int(v) for k, v in arch["decisions"].items()  # noqa: E731
                             if k.endswith("_depth") or k == "blocks")
    return str(depth(base) - depth(done["arch"]))


def _run(args: argparse.Namespace, *, board: str, strategy: str, refine: str, seed: str, out: Path,
         candidates: int) -> tuple[dict | None, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-m", "tinynas.cli.main", "run", "--profile", board, "--dataset", args.dataset,
           "--space", args.space, "--strategy", strategy, "--seed", seed, *(["--refine", refine] if refine else []),
           "--budget-candidates", str(candidates),
           "--search-epochs", str(args.search_epochs), "--search-samples", str(args.search_samples),
           "--final-epochs", str(args.final_epochs), "--final-top-k", str(args.top_k),
           "--prefilter-candidates", str(args.prefilter), "--no-progress", "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        return None, f"failed (exit {proc.returncode}): {proc.stderr[-300:]}"
    lines = _journal(out)
    search = json.loads((out / "stages" / "search" / "done.json").read_text())
    row = {"winner": json.loads((out / "summary.json").read_text())["winner"], "seconds": seconds,
           "cands": search["evaluated"], "search_s": float(search["elapsed_s"]), "refine_s": 0.0,
           "infeasible": "-", "changed": "-", "mix": "-", "won": "-", "handed": "-", "skipped": "-",
           "supernet_val": float("nan")}
    done_path = out / "stages" / ("refine" if refine else "differentiable") / "done.json"
    if done_path.is_file():
        done = json.loads(done_path.read_text())
        if "search" in done:  # a refine stage skips only when the best arch has nothing to mix
            row["infeasible"] = str(done["search"]["derived_infeasible"] is not None)
            row["changed"] = str(done["search"]["changed_to_fit"])
            row["won"] = str(done["derived"] == row["winner"]["id"])
            row["skipped"] = _left_out(done, lines)
            vals, at = done["search"]["val_accuracy"], done["search"]["arch_epoch"]
            row["supernet_val"] = vals[-1 if at is None else at] if vals else float("nan")
        row["mix"] = done.get("mix", "skipped" if done.get("skipped") else "-")
        row["handed"] = str(done.get("handed", "-"))
        if refine:
            t_search, t_refine = _stage_done_time(lines, "search"), _stage_done_time(lines, "refine")
            if t_search is not None and t_refine is not None:
                row["refine_s"] = t_refine - t_search
    return row, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--boards", default="nucleo-l010rb,nano33ble", help="tight first, then roomy")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--space", default="mcunet", help="a space with a layer-wise supernet: mcunet or dscnn")
    parser.add_argument("--strategies", default="staged,staged+drnas")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--search-epochs", type=int, default=2)
    parser.add_argument("--search-samples", type=int, default=256)
    parser.add_argument("--final-epochs", type=int, default=5)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--prefilter", type=int, default=150)
    args = parser.parse_args()
    names = args.strategies.split(",")
    refined = [n for n in names if n.startswith("staged+")]
    order = refined + [n for n in names if n not in refined]  # refined first: they set staged's wall time
    print("command: " + " ".join(["PYTHONPATH=.", "python", *sys.argv]))
    print(f"dataset {args.dataset}, space {args.space}, {args.candidates} candidates (refined and standalone), search "
          f"{args.search_epochs} epochs x {args.search_samples} samples, final {args.final_epochs} epochs, top "
          f"{args.top_k}; staged: " + (f"equal wall time with {refined[0]}: {args.candidates} + its refine seconds "
                                       f"/ its search seconds per candidate (rounded)" if refined
                                       else "equal candidates"))
    print(f"{'board':14} {'strategy':12} {'seed':>4} {'int8 acc':>8} {'val acc':>7} {'lat ms':>7} {'arena B':>7} "
          f"{'cands':>5} {'infeasible':>10} {'changed':>7} {'mix':>13} {'skipped':>7} {'won':>5} {'handed':>6} "
          f"{'sup val':>7} {'search+ s':>9} "
          f"{'total s':>7}", flush=True)
    rows: list[tuple[str, str, dict]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for board in args.boards.split(","):
            for seed in args.seeds.split(","):
                extra = 0
                for name in order:
                    strategy, _, refine = name.partition("+")
                    candidates = args.candidates + (extra if name == "staged" else 0)
                    out = Path(tmp) / f"{board}-{strategy}-{refine or 'none'}-{seed}"
                    row, error = _run(args, board=board, strategy=strategy, refine=refine, seed=seed, out=out,
                                      candidates=candidates)
                    if row is None:
                        print(f"{board:14} {name:12} {seed:>4} {error}", flush=True)
                        continue
                    spent = row["search_s"] + row["refine_s"]
                    if refined and name == refined[0] and row["cands"]:
                        extra = max(0, round(row["refine_s"] / (row["search_s"] / row["cands"])))
                    rows.append((board, name, row))
                    w = row["winner"]
                    acc = w.get("int8_accuracy")
                    print(f"{board:14} {name:12} {seed:>4} {acc if acc is not None else float('nan'):>8.4f} "
                          f"{w['val_accuracy']:>7.4f} {w['cost']['latency_ms']:>7.1f} {w['cost']['arena_bytes']:>7} "
                          f"{row['cands']:>5} {row['infeasible']:>10} {row['changed']:>7} {row['mix']:>13} "
                          f"{row['skipped']:>7} "
                          f"{row['won']:>5} {row['handed']:>6} {row['supernet_val']:>7.3f} {spent:>9.0f} "
                          f"{row['seconds']:>7.0f}", flush=True)
    print("\nmean int8 accuracy per board and strategy (seeds that finished); derived infeasible before repair")
    for board in args.boards.split(","):
        for name in order:
            mine = [r for b, n, r in rows if b == board and n == name]
            accs = [r["winner"]["int8_accuracy"] for r in mine if r["winner"].get("int8_accuracy") is not None]
            if not mine:
                continue
            searched = [r for r in mine if r["infeasible"] != "-"]
            bad = sum(r["infeasible"] == "True" for r in searched)
            print(f"{board:14} {name:12} seeds {len(mine)} int8 acc "
                  f"{statistics.mean(accs) if accs else float('nan'):.4f} "
                  f"(min {min(accs, default=float('nan')):.4f}) search+ s "
                  f"{statistics.mean(r['search_s'] + r['refine_s'] for r in mine):.0f}"
                  + (f", infeasible before repair {bad}/{len(searched)}" if searched else ""), flush=True)


if __name__ == "__main__":
    main()
