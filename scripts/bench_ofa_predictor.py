"""The once-for-all accuracy predictor: held-out error and ranking against inherited accuracy.

Scores ``--n`` subnets drawn uniformly from those a cached supernet covers (BN-recalibrated inherited
accuracy, exactly as ``tinynas run --strategy ofa --strategy-option score=predictor`` does), then fits
the MLP predictor with a fifth held out and prints its error and Kendall tau, overall and by width.
``--shard K/N`` scores every N-th subnet (one process per core); ``--merge`` joins the shards into the
pairs file the pipeline reads from the supernet's folder, so a run after it scores nothing:

    S="--samples 12000 --steps-per-phase 200 --max-width 0.35 --seed 0 --cache C --n 1000"
    PYTHONPATH=. .venv/bin/python scripts/bench_ofa_predictor.py $S --shard 0/2 &
    PYTHONPATH=. .venv/bin/python scripts/bench_ofa_predictor.py $S --shard 1/2
    PYTHONPATH=. .venv/bin/python scripts/bench_ofa_predictor.py $S --merge --json rows.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RECALIBRATION = 2000  # the ofa strategy's recalibration_samples default


def _shard_path(cache: str, k: int, n: int) -> Path:
    return Path(cache) / f"predictor_shard_{k}of{n}.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=12000, help="glyphs num_samples")
    p.add_argument("--steps-per-phase", type=int, default=200)
    p.add_argument("--max-width", type=float, default=0.35)
    p.add_argument("--seed", type=int, default=0, help="the supernet's seed and the subnet sample's")
    p.add_argument("--cache", required=True, help="cache directory holding (or to hold) the supernet")
    p.add_argument("--n", type=int, default=1000, help="subnets to score (the predictor's pairs)")
    p.add_argument("--shard", default=None, metavar="K/N", help="score every N-th subnet from the K-th")
    p.add_argument("--merge", action="store_true", help="join the shards, write the pairs file, fit, report")
    p.add_argument("--json", default=None, help="with --merge: write the report here")
    p.add_argument("--readers-phase", action="store_true",
                   help="the supernet of the ofa option readers_phase (ShrinkingSchedule.with_readers_phase)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import numpy as np

    from tinynas.data.base import load_dataset
    from tinynas.ofa.evaluate import SubnetEvaluator
    from tinynas.ofa.pairs import pairs_path, write_pairs, sample_subnets
    from tinynas.ofa.predictor import AccuracyPredictor, kendall_tau
    from tinynas.ofa.shrinking import ShrinkingSchedule, train_supernet
    from tinynas.space.base import get_space

    ds = load_dataset("glyphs", seed=0, num_samples=args.samples)
    space = get_space("mcunet", input_shape=ds.input_shape, num_classes=ds.num_classes)
    schedule = ShrinkingSchedule.scaled(len(ds.y_train), steps_per_phase=args.steps_per_phase,
                                        max_width=args.max_width, seed=args.seed)
    if args.readers_phase:
        schedule = schedule.with_readers_phase()
    net, report = train_supernet(dataset=ds, space=space, schedule=schedule, cache_dir=args.cache)
    archs = sample_subnets(space, net.covers, n=args.n, seed=args.seed)
    if args.shard:
        k, n = (int(x) for x in args.shard.split("/"))
        path = _shard_path(args.cache, k, n)
        rows = json.loads(path.read_text()) if path.is_file() else []
        done = {r["id"] for r in rows}
        scorer = SubnetEvaluator(supernet=net, dataset=ds, spec=None, recalibration_samples=RECALIBRATION,
                                 seed=args.seed)
        for arch in archs[k::n]:
            if arch.id in done:
                continue
            t = time.perf_counter()
            acc = scorer.inherited(arch)[0]
            rows.append({"id": arch.id, "arch": arch.to_json(), "accuracy": acc,
                         "seconds": round(time.perf_counter() - t, 3)})
            if len(rows) % 25 == 0:
                path.write_text(json.dumps(rows))
                print(f"shard {k}/{n}: {len(rows)} scored", flush=True)
        path.write_text(json.dumps(rows))
        return
    rows = {}
    for shard in sorted(Path(args.cache).glob("predictor_shard_*.json")):
        rows.update({r["id"]: r for r in json.loads(shard.read_text())})
    missing = [a.id for a in archs if a.id not in rows]
    if missing:
        sys.exit(f"{len(missing)} of {args.n} subnets not scored yet: run the --shard processes to the end first")
    ordered = [rows[a.id] for a in archs]
    target = pairs_path(report.directory, n=args.n, seed=args.seed, recalibration_samples=RECALIBRATION)
    write_pairs(target, [{k: r[k] for k in ("id", "arch", "accuracy")} for r in ordered])
    acc = np.array([r["accuracy"] for r in ordered])
    seconds = np.array([r["seconds"] for r in ordered])
    t = time.perf_counter()
    predictor = AccuracyPredictor(space=space, seed=args.seed)
    fit = predictor.fit(archs, acc)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    pred = predictor.predict(archs)
    predict_us = 1e6 * (time.perf_counter() - t) / len(archs)
    # the held-out fifth is the first n_held_out of the fit's permutation (same seed): re-derive it
    held = np.random.default_rng(args.seed).permutation(len(acc))[:fit.n_held_out]
    widths = np.array([float(a["width"]) for a in archs])
    print(f"\nsupernet {report.directory}; {args.n} covered subnets, inherited accuracy "
          f"{acc.mean():.3f} mean, {acc.min():.3f}-{acc.max():.3f}; {seconds.mean():.2f} s each "
          f"({seconds.sum() / 60:.1f} min of one core); pairs -> {target}")
    print(f"predictor: fit {fit_s:.1f} s on {fit.n_train}, {predict_us:.0f} us per subnet predicted one batch")
    print("| held-out subnets | n | MAE | RMSE | mean-predictor MAE | Kendall tau |")
    print("|---|---|---|---|---|---|")
    out = {"argv": sys.argv[1:], "supernet": report.directory, "n": args.n, "fit_seconds": round(fit_s, 2),
           "score_seconds_mean": round(float(seconds.mean()), 3), "groups": {}}
    groups = {"all": held, **{f"w{w:g}": held[widths[held] == w] for w in sorted(set(widths[held]))}}
    for name, idx in groups.items():
        err = pred[idx] - acc[idx]
        row = {"n": int(len(idx)), "mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err ** 2))),
               "baseline_mae": float(np.mean(np.abs(acc[idx] - acc[idx].mean()))) if name != "all"
               else fit.baseline_mae,
               "kendall_tau": kendall_tau(pred[idx], acc[idx]) if len(idx) > 2 else float("nan")}
        out["groups"][name] = row
        print(f"| {name} | {row['n']} | {row['mae']:.4f} | {row['rmse']:.4f} | {row['baseline_mae']:.4f} | "
              f"{row['kendall_tau']:.3f} |")
    print("(a group's mean-predictor MAE is its own mean's: what ranking within the group must beat)")
    print("\n| pairs (first k of the sample, a fifth held out) | held-out MAE | mean-predictor MAE | Kendall tau |")
    print("|---|---|---|---|")
    out["by_pairs"] = {}
    for k in sorted({m for m in (100, 250, 500, args.n) if m <= args.n}):
        small = AccuracyPredictor(space=space, seed=args.seed).fit(archs[:k], acc[:k])
        out["by_pairs"][k] = {"mae": small.mae, "baseline_mae": small.baseline_mae, "kendall_tau": small.kendall_tau}
        print(f"| {k} | {small.mae:.4f} | {small.baseline_mae:.4f} | {small.kendall_tau:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
