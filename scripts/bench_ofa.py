"""Once-for-all (``--strategy ofa``) against ``staged`` on glyphs, per board and seed, and what a supernet costs.

For each board, strategy and seed: ``tinynas run`` with the same search minutes, final training and deploy
settings; the int8 TFLM test accuracy of the deployed winner, the run's wall seconds, the supernet's training
seconds (``reused`` once it exists: one supernet per seed, shared by every board through ``--work``'s cache)
and the seconds of each board's specialization (its search stage). ``--scratch-epochs N`` also trains each
ofa winner from scratch for N epochs (the issue's fine-tuned against from-scratch comparison).

Rows go to ``--json`` as they finish (merged, written by rename), keyed board/strategy/seed, and rows already
there are skipped: so ``--strategies staged`` and ``--strategies ofa`` run as two processes, one per core
(each run uses one TensorFlow thread, so both get the same machine), and a later session adds seeds.
``--strategies ofa-short`` runs ofa with the supernet schedule ``--strategy ofa`` defaulted to before it
became the benchmarked one (48 steps per phase on 1,000 samples: 3 epochs per phase, twice for the full network,
what ``--search-epochs 3 --search-samples 1000`` gave), to measure what the longer schedule adds.
``--ofa-score predictor`` runs ofa with ``score=predictor`` and ``--predictor-candidates`` (2,000) as its candidate
budget beside the minutes (benchmarks/ofa/README.md (q)), ``--verify-rounds`` its verify stage's rounds ((r));
``--fill-budget`` lets ofa's final spend the minutes its search left ((s)); keep such rows in a file of their own.
``--table-only`` prints the table of what the file holds. The dataset is the same for every seed
(``--data-seed``); the seed changes the run (search, training, supernet).

    PYTHONPATH=. .venv/bin/python scripts/bench_ofa.py --samples 1500 --minutes 0.5 --steps-per-phase 40 \\
        --final-epochs 2 --json /tmp/ofa_small.json   # a few minutes
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BOARDS = ("nucleo-l010rb", "nucleo-l432kc", "nano33ble")


def _stage_done(out: Path, stage: str) -> dict[str, Any] | None:
    done = out / "stages" / stage / "done.json"
    return json.loads(done.read_text()) if done.is_file() else None


def _one(settings: Any, out: Path, dataset: Any) -> dict[str, Any]:
    from tinynas.errors import TinyNASError
    from tinynas.pipeline.run import run

    start = time.perf_counter()
    try:
        result = run(settings=settings, out=out, dataset=dataset)
    except TinyNASError as exc:
        return {"error": str(exc)[:300], "wall_s": time.perf_counter() - start}
    s, w = result.summary, result.summary["winner"]
    search = _stage_done(out, "search") or {}
    supernet = _stage_done(out, "supernet")
    return {"int8": w.get("int8_accuracy"), "float": w.get("float_test_accuracy"), "arch": w["arch"],
            "qat": w.get("qat"), "wall_s": round(time.perf_counter() - start, 1),
            "search_s": search.get("elapsed_s"), "candidates": s.get("candidates_evaluated"),
            "supernet": None if supernet is None else {k: supernet.get(k) for k in ("reused", "seconds")},
            "verify": _stage_done(out, "verify"),  # score=predictor: what measuring its best found
            # fill_budget: the top and epochs the final planned from the minutes the search left
            "final": {k: v for k, v in (_stage_done(out, "final") or {}).items() if k in ("budget", "fill")}}


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _store(path: Path, key: str, row: dict[str, Any]) -> dict[str, Any]:
    """Add one row to the results file, merged with what another process wrote since (temp file + rename)."""
    rows = _load(path)
    rows[key] = row
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(rows, indent=1))
    os.replace(tmp, path)
    return rows


def _scratch(row: dict[str, Any], *, dataset: Any, epochs: int, seed: int) -> dict[str, Any]:
    from tinynas.space import get_space
    from tinynas.space.arch import Arch
    from tinynas.train import TrainBudget, train_graph

    space = get_space("mcunet", input_shape=dataset.input_shape, num_classes=dataset.num_classes)
    start = time.perf_counter()
    result = train_graph(space.graph(Arch.from_json(row["arch"])), dataset,
                         budget=TrainBudget(epochs=epochs, evaluate_test=True), seed=seed)
    return {"epochs": epochs, "float": result.test_accuracy, "seconds": round(time.perf_counter() - start, 1)}


def _mean(values: list[float]) -> str:
    if not values:
        return "-"
    text = f"{100 * statistics.mean(values):.1f}"
    return text + (f" ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else "")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _shape(arch: dict[str, Any] | None) -> str:
    """``w0.2 r24 d2-0-0-2-0``: width, resolution and blocks per stage, what tells the winners apart."""
    if not arch:
        return "-"
    d = arch["decisions"]
    depths = "-".join(str(d[k]) for k in sorted(d) if k.endswith("_depth"))
    return f"w{d['width']} r{d['resolution']} d{depths}"


def header(rows: dict[str, Any], about: str) -> str:
    """The settings the rows were run with (each row records them; ``about``, this invocation's, for rows
    from before that) and their seeds, so ``--table-only`` does not print its own defaults."""
    recorded = sorted({r.get("about") or about for r in rows.values()}) or [about]
    seeds = sorted({int(k.rsplit("/s", 1)[1]) for k in rows})
    return " | ".join(recorded) + f"; seeds {', '.join(map(str, seeds))}"


def table(rows: dict[str, Any], about: str) -> str:
    boards = list(dict.fromkeys(k.split("/")[0] for k in rows))
    lines = [header(rows, about), "",
             "| board | staged int8 % | ofa int8 % | seeds (staged/ofa) | staged wall s | ofa wall s | "
             "ofa supernet s | ofa search s | ofa subnets | staged cands |", "|---|---|---|---|---|---|---|---|---|---|"]
    for board in boards:
        got = {st: [r for k, r in sorted(rows.items()) if k.startswith(f"{board}/{st}/")] for st in ("staged", "ofa")}
        ok = {st: [r for r in rs if r.get("int8") is not None] for st, rs in got.items()}
        errors = [f"{st} s{i}: {r['error'][:80]}" for st, rs in got.items() for i, r in enumerate(rs) if "error" in r]
        med = lambda rs, f: f"{statistics.median(f(r) for r in rs):.0f}" if rs else "-"  # noqa: E731
        sn = [r["supernet"] for r in ok["ofa"] if r.get("supernet")]
        sn_s = ", ".join("reused" if x.get("reused") else f"{x.get('seconds', 0):.0f}" for x in sn) or "-"
        lines.append(f"| {board} | {_mean([r['int8'] for r in ok['staged']])} | {_mean([r['int8'] for r in ok['ofa']])}"
                     f" | {len(ok['staged'])}/{len(ok['ofa'])} | {med(got['staged'], lambda r: r['wall_s'])} | "
                     f"{med(got['ofa'], lambda r: r['wall_s'])} | {sn_s} | "
                     f"{med(ok['ofa'], lambda r: r.get('search_s') or 0)} | {med(ok['ofa'], lambda r: r['candidates'])}"
                     f" | {med(ok['staged'], lambda r: r['candidates'])} |")
        lines += [f"  error: {e}" for e in errors]
    seeds = sorted({k.split("/")[2] for k in rows}, key=lambda x: int(x[1:]))
    if len(seeds) > 1:
        lines += ["", "| board | seed | staged int8 % | staged winner | ofa int8 % | ofa winner |", "|---|---|---|---|---|---|"]
        for board in boards:
            for seed in seeds:
                pair = [rows.get(f"{board}/{st}/{seed}") or {} for st in ("staged", "ofa")]
                cells = [f"{_pct(r.get('int8'))} | {_shape(r.get('arch'))}" for r in pair]
                lines.append(f"| {board} | {seed} | {' | '.join(cells)} |")
    scratch = [(k, r) for k, r in sorted(rows.items()) if "/ofa/" in k and r.get("scratch")]
    if scratch:
        lines += ["", "| ofa winner | fine-tuned float test % | from scratch float test % (epochs) | difference |",
                  "|---|---|---|---|"]
        for key, r in scratch:
            sc = r["scratch"]
            lines.append(f"| {key} | {100 * r['float']:.1f} | {100 * sc['float']:.1f} ({sc['epochs']}) | "
                         f"{100 * (r['float'] - sc['float']):+.1f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--boards", default=",".join(BOARDS))
    p.add_argument("--strategies", default="staged,ofa")
    p.add_argument("--seeds", default="0", help="comma-separated run seeds")
    p.add_argument("--samples", type=int, default=2000, help="glyphs num_samples (the issue's table: 12000)")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=1.0, help="search minutes of each run (the issue: 10)")
    p.add_argument("--steps-per-phase", type=int, default=60)
    p.add_argument("--max-width", type=float, default=0.35)
    p.add_argument("--final-epochs", type=int, default=3)
    p.add_argument("--final-top-k", type=int, default=2)
    p.add_argument("--scratch-epochs", type=int, default=0, help="train each ofa winner from scratch this long")
    p.add_argument("--work", default=None, help="run directories and the shared cache (default: a temp dir)")
    p.add_argument("--json", default=None, help="rows file (resumable; default: WORK/rows.json)")
    p.add_argument("--table-only", action="store_true")
    p.add_argument("--ofa-score", choices=("inherited", "predictor"), default="inherited",
                   help="the ofa option score; predictor: the search ends after --predictor-candidates subnets")
    p.add_argument("--predictor-candidates", type=int, default=2000)
    p.add_argument("--verify-rounds", type=int, default=None,
                   help="with --ofa-score predictor: the ofa option verify_rounds (default: the strategy's, 4; "
                        "README (q)'s rows had 1)")
    p.add_argument("--fill-budget", action="store_true",
                   help="the ofa option fill_budget: the final stage spends the minutes the search left")
    p.add_argument("--readers-phase", action="store_true",
                   help="the ofa option readers_phase: the supernet ends with the readers phase of README (t)")
    p.add_argument("--save", default=None, help="also write the table to this file")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    work = Path(args.work or tempfile.mkdtemp(prefix="bench_ofa_"))
    path = Path(args.json or work / "rows.json")
    about = (f"glyphs num_samples={args.samples} (data seed {args.data_seed}), {args.minutes} search min per run"
             + (f" (ofa: score=predictor, {args.predictor_candidates} subnets"
                + (f", verify_rounds {args.verify_rounds})" if args.verify_rounds else ")")
                if args.ofa_score == "predictor" else "")
             + ", "
             f"final top {args.final_top_k} x {args.final_epochs} epochs"
             + (" (ofa: fill_budget, the final planned from the minutes the search left)" if args.fill_budget else "")
             + (" (ofa: readers_phase)" if args.readers_phase else "")
             + f", supernet max_width {args.max_width}, "
             f"{args.steps_per_phase} steps/phase on every training sample; one TensorFlow thread per run")
    rows = _load(path)
    if not args.table_only:
        from tinynas.data.base import load_dataset
        from tinynas.pipeline.settings import RunSettings

        dataset = load_dataset("glyphs", seed=args.data_seed, num_samples=args.samples)
        for seed in (int(s) for s in args.seeds.split(",")):
            for board in args.boards.split(","):
                for strategy in args.strategies.split(","):
                    key = f"{board}/{strategy}/s{seed}"
                    rows = _load(path)
                    if key not in rows:
                        base = dict(profile=board, dataset="glyphs", space="mcunet", budget_minutes=args.minutes,
                                    search_epochs=2, final_epochs=args.final_epochs, final_top_k=args.final_top_k,
                                    seed=seed, cache_dir=str(work / "cache"))
                        extra = {**({"fill_budget": True} if args.fill_budget else {}),
                                 **({"readers_phase": True} if args.readers_phase else {})}
                        if strategy == "ofa" and args.ofa_score == "predictor":  # README (q)
                            settings = RunSettings(strategy="ofa", search_samples=None, **base,
                                                   budget_candidates=args.predictor_candidates, strategy_options={
                                                       "max_width": args.max_width, "score": "predictor",
                                                       "steps_per_phase": args.steps_per_phase,
                                                       **({"verify_rounds": args.verify_rounds}
                                                          if args.verify_rounds else {}),
                                                       **extra})
                        elif strategy == "ofa":  # the supernet trains on every sample, as in README (h)
                            settings = RunSettings(strategy="ofa", search_samples=None, **base, strategy_options={
                                "max_width": args.max_width, "steps_per_phase": args.steps_per_phase,
                                **extra})
                        elif strategy == "ofa-short":  # the schedule `--strategy ofa` defaulted to before stop 32
                            settings = RunSettings(strategy="ofa", **base, strategy_options={
                                "max_width": args.max_width, "steps_per_phase": 48, "supernet_samples": 1000})
                        else:
                            settings = RunSettings(strategy=strategy, search_samples=1000, prefilter_candidates=60,
                                                   **base)
                        row = dict(_one(settings, work / f"{strategy}_{board}_s{seed}", dataset), about=about)
                        rows = _store(path, key, row)
                        print(key, json.dumps({k: v for k, v in row.items() if k != "arch"}), flush=True)
                    if strategy == "ofa" and args.scratch_epochs and rows[key].get("arch") \
                            and not rows[key].get("scratch"):
                        row = dict(rows[key], scratch=_scratch(rows[key], dataset=dataset,
                                                               epochs=args.scratch_epochs, seed=seed))
                        rows = _store(path, key, row)
                        print(key, "scratch", json.dumps(row["scratch"]), flush=True)
    text = table(rows, about)
    print(text)
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save).write_text(text + "\n")


if __name__ == "__main__":
    main()
