"""Once-for-all (``--strategy ofa``) against ``staged`` on glyphs, per board, and what a supernet costs.

For each board: ``tinynas run`` with ``staged`` and with ``ofa`` (one shared cache, so the
first ofa board trains the supernet and later boards reuse it), both given the same
search minutes; prints the int8 TFLM test accuracy of each deployed winner, the wall
seconds of each run, the supernet's training seconds, and the seconds of each board's
specialization once the supernet exists (its search stage). Then the ofa winner of the
first board trained from scratch with the final budget against its fine-tuned accuracy.
Prints a markdown table; ``--save`` writes it under benchmarks/ofa/.

    .venv/bin/python scripts/bench_ofa.py --samples 2000 --minutes 1 --steps-per-phase 60 --final-epochs 3  # ~20 min
"""

from __future__ import annotations

import argparse
import json
import logging
import os
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


def _stage_seconds(out: Path, stage: str) -> float | None:
    done = out / "stages" / stage / "done.json"
    if not done.is_file():
        return None
    data = json.loads(done.read_text())
    return data.get("elapsed_s", data.get("seconds"))


def _one(settings: Any, out: Path, dataset: Any) -> dict[str, Any]:
    from tinynas.errors import TinyNASError
    from tinynas.pipeline.run import run

    start = time.perf_counter()
    try:
        result = run(settings=settings, out=out, dataset=dataset)
    except TinyNASError as exc:
        return {"error": str(exc)[:200], "wall_s": time.perf_counter() - start}
    w = result.summary["winner"]
    return {"int8": w.get("int8_accuracy"), "float": w.get("float_test_accuracy"), "arch": w["arch"],
            "wall_s": time.perf_counter() - start, "search_s": _stage_seconds(out, "search"),
            "supernet": json.loads((out / "stages" / "supernet" / "done.json").read_text())
            if (out / "stages" / "supernet" / "done.json").is_file() else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--boards", default=",".join(BOARDS))
    p.add_argument("--samples", type=int, default=2000, help="glyphs num_samples (the issue's table: 12000)")
    p.add_argument("--minutes", type=float, default=1.0, help="search minutes of each run")
    p.add_argument("--steps-per-phase", type=int, default=60)
    p.add_argument("--max-width", type=float, default=0.35)
    p.add_argument("--final-epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", default=None, help="also write the table to this file")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from tinynas.data.base import load_dataset
    from tinynas.pipeline.settings import RunSettings
    from tinynas.space.arch import Arch

    dataset = load_dataset("glyphs", seed=args.seed, num_samples=args.samples)
    work = Path(tempfile.mkdtemp(prefix="bench_ofa_"))
    rows = []
    first_ofa = None
    for board in args.boards.split(","):
        base = dict(profile=board, dataset="glyphs", space="mcunet", budget_minutes=args.minutes,
                    search_epochs=2, search_samples=1000, final_epochs=args.final_epochs, final_top_k=2,
                    seed=args.seed, cache_dir=str(work / "cache"))
        staged = _one(RunSettings(strategy="staged", prefilter_candidates=60, **base), work / f"staged_{board}",
                      dataset)
        ofa = _one(RunSettings(strategy="ofa", strategy_options={"max_width": args.max_width,
                                                                 "steps_per_phase": args.steps_per_phase},
                               **base), work / f"ofa_{board}", dataset)
        first_ofa = first_ofa or (ofa if "arch" in ofa else None)
        rows.append((board, staged, ofa))
        print(board, json.dumps({"staged": {k: v for k, v in staged.items() if k != "arch"},
                                 "ofa": {k: v for k, v in ofa.items() if k not in ("arch", "supernet")}}),
              flush=True)

    def acc(r: dict) -> str:
        return f"{100 * r['int8']:.1f}" if r.get("int8") is not None else f"error: {r.get('error', '?')[:60]}"

    lines = [f"glyphs num_samples={args.samples} ({len(dataset.y_train)} train), seed {args.seed}, "
             f"{args.minutes} search min per run, final {args.final_epochs} epochs, supernet max_width "
             f"{args.max_width}, {args.steps_per_phase} steps/phase; 2 shared cores", "",
             "| board | staged int8 % | ofa int8 % | staged wall s | ofa wall s | ofa supernet s | ofa search s |",
             "|---|---|---|---|---|---|---|"]
    for board, staged, ofa in rows:
        sn = ofa.get("supernet") or {}
        sn_s = "reused" if sn.get("reused") else f"{sn.get('seconds', 0):.0f}"
        lines.append(f"| {board} | {acc(staged)} | {acc(ofa)} | {staged['wall_s']:.0f} | {ofa['wall_s']:.0f} | "
                     f"{sn_s} | {ofa.get('search_s') or 0:.0f} |")
    if first_ofa is not None:
        from tinynas.space import get_space
        from tinynas.train import TrainBudget, train_graph

        arch = Arch.from_json(first_ofa["arch"])
        space = get_space("mcunet", input_shape=dataset.input_shape, num_classes=dataset.num_classes)
        scratch = train_graph(space.graph(arch), dataset, budget=TrainBudget(epochs=args.final_epochs,
                                                                              evaluate_test=True), seed=args.seed)
        lines += ["", f"fine-tuned ofa winner ({space.summary(arch)}): float test {100 * first_ofa['float']:.1f} %; "
                      f"the same arch from scratch, {args.final_epochs} epochs: float test "
                      f"{100 * scratch.test_accuracy:.1f} %"]
    text = "\n".join(lines)
    print(text)
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save).write_text(text + "\n")


if __name__ == "__main__":
    main()
