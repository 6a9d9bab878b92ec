"""What ``--strategy ofa`` costs per board once its supernet exists, and a sweep against single runs.

Two processes, one TensorFlow thread each, so they run side by side on two cores:

- ``--mode singles``: ``tinynas run --strategy ofa`` for each board of ``--singles`` one after another, sharing one
  cache: the first board trains the supernet, the others reuse it (the seconds per board once it exists).
- ``--mode sweep``: ``tinynas sweep --strategy ofa`` over ``--boards`` with a cache of its own: one supernet, then
  each board's own search; the boards share the supernet and the fine-tunes of common winners
  (tinynas.pipeline.sweep).

``--score predictor`` runs the same with ``--strategy-option score=predictor`` (give ``--subnets`` in the
thousands), ``--label`` names the rows' run (so both kinds sit in one rows file) and ``--cache`` points the
runs at a cache that already holds the supernet and its predictor pairs (benchmarks/ofa/README.md (q)).

Each board's stage seconds come from its run's journal (``stage`` start/done events). Subnets scored is the search
budget in candidates (``--subnets``), so a board's search seconds are measured, not set by a time budget. Rows
go to ``--json`` (one file, merged by rename); ``--table-only`` prints what it holds.

    PYTHONPATH=. .venv/bin/python scripts/bench_ofa_sweep.py --mode singles --json R.json --work W &
    PYTHONPATH=. .venv/bin/python scripts/bench_ofa_sweep.py --mode sweep --json R.json --work W
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_ofa import _stage_done, _store  # noqa: E402  (the rows file and run folders of scripts/bench_ofa.py)

#: the five MCU boards of scripts/bench_search.py's sweep, tightest last
BOARDS = ("nucleo-h743zi", "nano33ble", "esp32s3-devkitc", "pico", "nucleo-l432kc")


def stage_seconds(run_dir: Path) -> dict[str, float]:
    """Seconds per stage of a run, from its journal's start/done pairs (summed over resumes)."""
    from tinynas.pipeline.journal import Journal

    seconds: dict[str, float] = {}
    started: dict[str, float] = {}
    for e in Journal(run_dir / "journal.jsonl").entries():
        if e.get("type") != "stage" or "time" not in e:
            continue
        if e.get("event") == "start":
            started[e["stage"]] = float(e["time"])
        elif e.get("event") == "done" and e["stage"] in started:
            seconds[e["stage"]] = seconds.get(e["stage"], 0.0) + float(e["time"]) - started.pop(e["stage"])
    return seconds


def board_row(run_dir: Path) -> dict[str, Any]:
    """One board's row: its winner's int8 and float test accuracy, subnets scored and told, stage seconds."""
    summary = json.loads((run_dir / "summary.json").read_text())
    supernet = _stage_done(run_dir, "supernet")
    winner = summary.get("winner") or {}
    return {"int8": winner.get("int8_accuracy"), "float": winner.get("float_test_accuracy"),
            "wall_s": summary.get("wall_seconds"), "scored": summary.get("candidates_evaluated"),
            "told": summary.get("candidates_shared"),
            "supernet_reused": None if supernet is None else supernet.get("reused"),
            "stages": {k: round(v, 1) for k, v in stage_seconds(run_dir).items()}}


def table(rows: dict[str, Any]) -> str:
    """The rows of each run (``single``, ``sweep``, or another prefix a later bench stored), then each sweep's
    total against the cold single run and its boards' int8 against their single runs."""
    lines = [rows.get("about", ""), "",
             "| run | board | supernet s | search s (+ verify) | subnets scored (told) | final s | deploy s | wall s | int8 % |",
             "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[str, dict[str, Any]] = {}
    for key, r in rows.items():
        if "/" in key and not key.endswith("/total"):
            run, board = key.split("/", 1)
            groups.setdefault(run, {})[board] = r
    for run, group in groups.items():
        for board, r in group.items():
            st = r["stages"]
            sn = f"{st.get('supernet', 0):.0f}" + (" (reused)" if r.get("supernet_reused") else "")
            int8 = "-" if r["int8"] is None else f"{100 * r['int8']:.1f}"
            search = f"{st.get('search', 0):.0f}" + (f" + {st['verify']:.0f}" if "verify" in st else "")
            lines.append(f"| {run} | {board} | {sn} | {search} | {r['scored']} ({r.get('told') or 0}) | "
                         f"{st.get('final', 0):.0f} | {st.get('deploy', 0):.0f} | {r['wall_s']:.0f} | {int8} |")
    single = groups.get("single", {})
    if single:
        first = next(iter(single.values()))
        warm = list(single.values())[1:]
        lines += ["", f"one single run from a cold cache ({next(iter(single))}): {first['wall_s']:.0f} s"]
        if warm:
            search = [r["stages"].get("search", 0) for r in warm]
            lines.append(f"single runs with the supernet cached: search {min(search):.0f}-{max(search):.0f} s, "
                         f"whole run {min(r['wall_s'] for r in warm):.0f}-{max(r['wall_s'] for r in warm):.0f} s")
    for run, swept in groups.items():
        total = rows.get(f"{run}/total")
        if run == "single":
            continue
        if total:
            line = f"{run} of {len(swept)} boards: {total['wall_s']:.0f} s"
            if single:
                line += f", {total['wall_s'] / first['wall_s']:.2f}x the cold single run"
        else:  # single runs of another kind (--label), e.g. searched by the accuracy predictor
            search = [r["stages"].get("search", 0) for r in swept.values()]
            line = f"{run}: search {min(search):.0f}-{max(search):.0f} s per board"
        both = [b for b in swept if b in single and swept[b]["int8"] is not None and single[b]["int8"] is not None]
        if both:
            line += "; int8 minus the single run: " + ", ".join(
                f"{b} {100 * (swept[b]['int8'] - single[b]['int8']):+.1f}" for b in both)
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=("singles", "sweep"), default=None, help="which half to run (default: neither)")
    p.add_argument("--boards", default=",".join(BOARDS), help="the sweep's boards")
    p.add_argument("--singles", default=None, help="boards of the single runs, the first cold (default: --boards)")
    p.add_argument("--subnets", type=int, default=120, help="subnets scored per board (the search budget)")
    p.add_argument("--steps-per-phase", type=int, default=200, help="the ofa default")
    p.add_argument("--final-epochs", type=int, default=5)
    p.add_argument("--final-top-k", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default=None, help="run directories and caches (required with --mode)")
    p.add_argument("--json", required=True)
    p.add_argument("--table-only", action="store_true")
    p.add_argument("--score", choices=("inherited", "predictor"), default="inherited",
                   help="the ofa option score (predictor: fitted on --predictor-samples subnets per supernet)")
    p.add_argument("--predictor-samples", type=int, default=1000)
    p.add_argument("--label", default=None, help="the rows' run name (default: the mode's, single or sweep)")
    p.add_argument("--cache", default=None, help="the cache directory (default: one per run name under --work)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    path = Path(args.json)
    about = (f"glyphs (12,000, seed {args.seed}), mcunet, --strategy ofa steps_per_phase={args.steps_per_phase}, "
             f"{args.subnets} subnets scored per board, final top {args.final_top_k} x {args.final_epochs} epochs; "
             f"one TensorFlow thread per process")
    options: dict[str, Any] = {"steps_per_phase": args.steps_per_phase}
    if args.score == "predictor":
        options.update(score="predictor", predictor_samples=args.predictor_samples)
    if not args.table_only and args.mode:
        if not args.work:
            p.error("--work is required with --mode")
        from tinynas.pipeline.run import run
        from tinynas.pipeline.settings import RunSettings
        from tinynas.pipeline.sweep import sweep

        _store(path, "about", about)
        work = Path(args.work)
        base = RunSettings(profile=BOARDS[0], dataset="glyphs", space="mcunet", strategy="ofa",
                           budget_candidates=args.subnets, search_samples=None, final_epochs=args.final_epochs,
                           final_top_k=args.final_top_k, seed=args.seed,
                           strategy_options=options)
        label = args.label or ("single" if args.mode == "singles" else "sweep")
        if args.mode == "singles":
            cache = args.cache or str(work / label / "cache")
            for board in (args.singles or args.boards).split(","):
                out = work / label / board
                run(settings=base.replace(profile=board, cache_dir=cache), out=out)
                _store(path, f"{label}/{board}", board_row(out))
        else:
            start = time.perf_counter()
            sweep(settings=base.replace(cache_dir=args.cache), profiles=args.boards.split(","), out=work / label)
            wall = time.perf_counter() - start
            state = json.loads((work / label / "sweep_state.json").read_text())
            for board in state["run_order"]:  # the order the boards ran in
                if (work / label / board / "summary.json").is_file():
                    _store(path, f"{label}/{board}", board_row(work / label / board))
            _store(path, f"{label}/total", {"wall_s": round(wall, 1)})
    rows = json.loads(path.read_text()) if path.is_file() else {}
    print(table(rows))


if __name__ == "__main__":
    main()
