"""What Ray costs: the same search with ``--workers 2`` on local processes and on a local Ray instance.

Goal (issue: Ray backend): on a 2-core machine, the 24-candidate search on a
local 2-CPU Ray instance takes at most 1.3x the wall time of the local process
pool. Both start from an empty cache with the same seed, so they train the same
candidates; Ray's start-up (``ray.init``, once per driver) is timed apart from
the search. The scheduling overhead of a candidate is the time from ``submit``
to its result in the driver minus the seconds the training took inside its
worker (process or task start, dataset hand-over, result transfer, queueing
behind the other worker). The driver's CPU per candidate is what limits how many
results one driver can take per second on a large cluster. Usage:

    .venv/bin/python scripts/bench_backends.py [--candidates 24] [--workers 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def timed_search(settings, out: Path) -> dict:
    """Run ``search`` and time every candidate from submit to result, next to its in-worker seconds."""
    import concurrent.futures as cf

    from tinynas.pipeline import evaluate, ray_backend
    from tinynas.pipeline.run import search

    rounds: list[tuple[float, float]] = []

    def wrap(cls):
        original = cls.submit

        def submit(self, job):
            start = time.perf_counter()
            fut: cf.Future = original(self, job)
            if job.fidelity == "low":
                fut.add_done_callback(lambda f: f.exception() is None and not f.result()["cached"] and rounds.append(
                    (time.perf_counter() - start, float(f.result()["seconds"]))))
            return fut

        cls.submit = submit
        return original

    originals = {cls: wrap(cls) for cls in (evaluate.Evaluator, ray_backend.RayEvaluator)}
    try:
        start, cpu = time.perf_counter(), time.process_time()
        result = search(settings=settings, out=out)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        for cls, original in originals.items():
            cls.submit = original
    overheads = [round_trip - inside for round_trip, inside in rounds]
    return {"wall_s": wall, "driver_cpu_ms": 1000.0 * cpu / max(1, len(rounds)), "candidates": len(rounds), "train_s_mean": statistics.mean(i for _, i in rounds),
            "overhead_s_median": statistics.median(overheads), "overhead_s_mean": statistics.mean(overheads),
            "winner": result.summary["winner"]["id"], "val_accuracy": result.summary["winner"]["val_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--space", default="dscnn")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import ray

    from tinynas.pipeline.settings import RunSettings

    settings = RunSettings(profile="nano33ble", dataset=args.dataset, space=args.space, strategy="random",
                           budget_candidates=args.candidates, workers=args.workers, final_top_k=1, final_epochs=1)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="tinynas_bench_backends_") as tmp:
        rows["local"] = timed_search(settings, Path(tmp) / "local")
        start = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - start
        try:
            rows["ray"] = timed_search(settings.replace(backend="ray"), Path(tmp) / "ray")
        finally:
            ray.shutdown()
    rows["ray"]["startup_s"] = ray_start
    ratio = rows["ray"]["wall_s"] / rows["local"]["wall_s"]
    if args.json:
        json.dump({"rows": rows, "ray_over_local": ratio, "goal": 1.3}, sys.stdout, indent=1)
        print()
        return
    print(f"{args.candidates}-candidate search, {args.space} on {args.dataset}, --workers {args.workers}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'backend':<8} {'wall s':>8} {'cands':>6} {'train s/cand':>13} {'overhead s/cand (median, mean)':>31} "
          f"{'driver CPU ms/cand':>19} {'winner':>14} {'val acc':>8}")
    for name, r in rows.items():
        print(f"{name:<8} {r['wall_s']:8.1f} {r['candidates']:6d} {r['train_s_mean']:13.2f} "
              f"{r['overhead_s_median']:15.2f} {r['overhead_s_mean']:15.2f} {r['driver_cpu_ms']:19.1f} {r['winner']:>14} {r['val_accuracy']:8.4f}")
    print(f"Ray start-up (ray.init, once per driver, not in the wall time): {ray_start:.1f} s")
    print(f"Ray / local wall time: {ratio:.2f}x (goal <= 1.3x): {'met' if ratio <= 1.3 else 'NOT met'}")


if __name__ == "__main__":
    main()
