"""The verify stage's rounds, replayed on finished ``score=predictor`` runs: what each schedule finds.

For each run (``--work``'s ``ofa_<board>_s<seed>`` folders, as ``scripts/bench_ofa.py --ofa-score predictor``
leaves them) the search's journaled subnets are the pool; every schedule measures ``--measure`` of them by
inherited accuracy with the stage's own choice (tinynas.ofa.verify.measure_in_rounds, the predictor refitted
on the run's pairs with the measured subnets as anchors), and the table shows the best each found. One
measurement per subnet, memoized per seed in ``--memo``, so schedules that pick the same subnet share it:

    PYTHONPATH=. .venv/bin/python scripts/bench_ofa_verify.py --work W --seeds 0,1,2 --rounds 1,4 \\
        --weights 20,100 --memo M --json benchmarks/ofa/verify_rounds_glyphs12k.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BOARDS = ("nucleo-l010rb", "nucleo-l432kc", "nano33ble")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="bench_ofa.py's --work: run folders and the cache")
    p.add_argument("--boards", default=",".join(BOARDS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--samples", type=int, default=12000, help="glyphs num_samples, as the runs had")
    p.add_argument("--steps-per-phase", type=int, default=200)
    p.add_argument("--max-width", type=float, default=0.35)
    p.add_argument("--measure", type=int, default=20, help="subnets measured per schedule (verify_top)")
    p.add_argument("--rounds", default="1,4", help="verify_rounds values to replay")
    p.add_argument("--weights", default="20", help="anchor weights to replay (rounds > 1)")
    p.add_argument("--memo", required=True, help="folder for the per-seed measurements")
    p.add_argument("--json", default=None, help="write the rows here")
    args = p.parse_args()
    from tinynas.data.base import load_dataset
    from tinynas.ofa.evaluate import SubnetEvaluator
    from tinynas.ofa.predictor import AccuracyPredictor
    from tinynas.ofa.shrinking import ShrinkingSchedule, train_supernet
    from tinynas.ofa.verify import measure_in_rounds
    from tinynas.pipeline.stages import top_candidates
    from tinynas.space.arch import Arch
    from tinynas.space.base import get_space

    work, rows = Path(args.work), []
    ds = load_dataset("glyphs", seed=0, num_samples=args.samples)
    space = get_space("mcunet", input_shape=ds.input_shape, num_classes=ds.num_classes)
    schedules = [(1, None)] if "1" in args.rounds.split(",") else []
    schedules += [(int(r), float(w)) for r in args.rounds.split(",") if int(r) > 1 for w in args.weights.split(",")]
    for seed in (int(s) for s in args.seeds.split(",")):
        schedule = ShrinkingSchedule.scaled(len(ds.y_train), steps_per_phase=args.steps_per_phase,
                                            max_width=args.max_width, seed=seed)
        net, _ = train_supernet(dataset=ds, space=space, schedule=schedule, cache_dir=str(work / "cache"))
        scorer = SubnetEvaluator(supernet=net, dataset=ds, spec=None, recalibration_samples=2000, seed=seed)
        memo_path = Path(args.memo) / f"inherited_s{seed}.json"
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        memo = json.loads(memo_path.read_text()) if memo_path.is_file() else {}

        def measure(arch: Arch, prediction: float, round_: int) -> float:
            if arch.id not in memo:
                memo[arch.id] = scorer.inherited(arch)[0]
                memo_path.write_text(json.dumps(memo))
            return memo[arch.id]

        for board in args.boards.split(","):
            run = work / f"ofa_{board}_s{seed}"
            journal = [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]
            searched = [e for e in journal if e.get("stage") == "search" and "arch" in e]
            pool = [(Arch.from_json(e["arch"]), float(e["accuracy"])) for e in top_candidates(searched, len(searched))]
            pairs_file = json.loads((run / "stages" / "supernet" / "done.json").read_text())["predictor"]["pairs_file"]
            pairs = [(Arch.from_json(q["arch"]), float(q["accuracy"]))
                     for q in json.loads(Path(pairs_file).read_text())["pairs"]]
            row = {"board": board, "seed": seed, "pool": len(pool)}
            for rounds, weight in schedules:
                def refit(anchors, weight=weight):
                    predictor = AccuracyPredictor(space=space, seed=seed)
                    predictor.fit([a for a, _ in pairs], [acc for _, acc in pairs], anchors=anchors,
                                  anchor_weight=weight)
                    return predictor

                picks = measure_in_rounds(pool, n=args.measure, rounds=rounds, measure=measure, refit=refit)
                row[f"r{rounds}" + (f"_w{weight:g}" if weight else "")] = max(memo[a.id] for a, _, _ in picks)
            rows.append(row)
            print(json.dumps(row), flush=True)
    keys = [k for k in rows[0] if k.startswith("r")]
    print(f"\nbest inherited accuracy among {args.measure} measured subnets of each run's search (pool: its subnets)")
    print(f"{'board':<15}{'seed':>5}{'pool':>6}" + "".join(f"{k:>10}" for k in keys))
    for r in rows:
        print(f"{r['board']:<15}{r['seed']:>5}{r['pool']:>6}" + "".join(f"{r[k]:>10.3f}" for k in keys))
    for board in args.boards.split(","):
        mine = [r for r in rows if r["board"] == board]
        print(f"{board:<15}{'mean':>5}{'':>6}" + "".join(f"{statistics.mean(r[k] for r in mine):>10.3f}" for k in keys))
    if args.json:
        Path(args.json).write_text(json.dumps({"about": vars(args), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
