#!/usr/bin/env python
"""Attention against convolution on sequences, and zero-cost proxies on the new spaces (issue 14).

Part 1: for each sequence dataset and board, ``tinynas run`` searches ``tinyformer``
and ``dscnn`` with the same small budget (candidates, epochs, seed) and the
winner of each is reported as the pipeline measured it: int8 accuracy in the real
TFLite Micro interpreter, float test accuracy, the arena TFLM needed, and the cost
model's latency on that board (no board attached, so latency is estimated). The
boards: nucleo-l432kc (64 KB SRAM) and nano33ble (256 KB).

Part 2: Spearman rank correlation of every zero-cost proxy with short-training
validation accuracy on random archs of ``tinyformer`` (japanesevowels) and ``gcn``
(digits-grid), via ``tinynas.proxies.benchmark.benchmark_trained``.

    .venv/bin/python scripts/bench_sequence_spaces.py --out benchmarks/sequence_spaces
    .venv/bin/python scripts/bench_sequence_spaces.py --datasets gunpoint --proxy-archs 0   # quick
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_one(*, dataset: str, board: str, space: str, seed: int, args: argparse.Namespace, workdir: Path) -> dict:
    out = workdir / f"{dataset}_{board}_{space}_s{seed}"
    cmd = [sys.executable, "-m", "tinynas.cli.main", "run", "--profile", board, "--dataset", dataset,
           "--space", space, "--strategy", "evolution", "--budget-candidates", str(args.candidates),
           "--search-epochs", str(args.search_epochs), "--final-epochs", str(args.final_epochs),
           "--final-top-k", "1", "--prefilter-candidates", str(4 * args.candidates), "--seed", str(seed),
           "--no-progress", "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    row = {"dataset": dataset, "board": board, "space": space, "seed": seed,
           "seconds": round(time.perf_counter() - t0, 1)}
    if proc.returncode != 0:
        row["error"] = (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]
        return row
    summary = json.loads((out / "summary.json").read_text())
    w = summary["winner"]
    arch = json.loads((out / "model" / "arch.json").read_text())
    row.update(arch=arch["decisions"], int8_acc=w.get("int8_accuracy"), float_acc=w.get("float_test_accuracy"),
               arena_bytes=w.get("tflm_arena_bytes"), est_arena_bytes=w["cost"]["arena_bytes"],
               latency_ms=w["cost"].get("latency_ms"), flash_bytes=w.get("tflite_flash_bytes"),
               sram_budget_bytes=summary.get("budgets", {}).get("sram_budget_bytes"),
               qat=w.get("qat"))
    return row


def print_runs(rows: list[dict]) -> None:
    print("\n== best tinyformer vs best dscnn, same search budget (int8 = real TFLite Micro interpreter) ==")
    print(f"{'dataset':<14} {'board':<14} {'space':<11} {'seed':>4} {'int8 acc':>8} {'float acc':>9} {'int8-fl':>7} "
          f"{'QAT':>4} {'arena B':>8} {'latency ms':>10} {'flash B':>8} {'s':>5}")
    for r in rows:
        head = f"{r['dataset']:<14} {r['board']:<14} {r['space']:<11} {r.get('seed', 0):>4}"
        if "error" in r:
            print(f"{head} error: {r['error'][:90]}")
            continue
        qat = "yes" if (r.get("qat") or {}).get("used") else "-"
        print(f"{head} {r['int8_acc']:>8.3f} {r['float_acc']:>9.3f} {100 * (r['int8_acc'] - r['float_acc']):>+7.1f} "
              f"{qat:>4} {r['arena_bytes']:>8} {r['latency_ms']:>10.2f} {r['flash_bytes']:>8} {r['seconds']:>5.0f}")
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        if "error" not in r:
            groups.setdefault((r["dataset"], r["board"], r["space"]), []).append(r)
    if any(len(g) > 1 for g in groups.values()):
        print("\n== mean over seeds (int8-fl: int8 minus float test accuracy, points) ==")
        print(f"{'dataset':<14} {'board':<14} {'space':<11} {'n':>2} {'int8 acc':>8} {'float acc':>9} {'int8-fl':>7} "
              f"{'worst':>6}")
        for (dataset, board, space), g in groups.items():
            gaps = [100 * (r["int8_acc"] - r["float_acc"]) for r in g]
            print(f"{dataset:<14} {board:<14} {space:<11} {len(g):>2} {sum(r['int8_acc'] for r in g) / len(g):>8.3f} "
                  f"{sum(r['float_acc'] for r in g) / len(g):>9.3f} {sum(gaps) / len(gaps):>+7.1f} {min(gaps):>+6.1f}")


def proxy_study(*, space_name: str, dataset_name: str, n: int, epochs: int, samples: int, seed: int) -> dict:
    from tinynas.data import load_dataset
    from tinynas.proxies.benchmark import benchmark_trained
    from tinynas.proxies.registry import proxy_names
    from tinynas.space import get_space

    ds = load_dataset(dataset_name, seed=seed)
    space = get_space(space_name, input_shape=ds.input_shape, num_classes=ds.num_classes, adjacency=ds.adjacency,
                      node_task=ds.node_task)
    names = proxy_names()
    with tempfile.TemporaryDirectory() as cache:
        result = benchmark_trained(space=space, dataset=ds, n=n, epochs=epochs, seed=seed, proxies=names,
                                   cache_dir=cache, max_train_samples=samples)
    return {"space": space_name, "dataset": dataset_name, **result.to_json(with_scores=True)}


def print_proxies(study: dict) -> None:
    print(f"\n== zero-cost proxies on {study['space']} ({study['dataset']}): Spearman vs {study['truth']}, "
          f"n={study['n']} ==")
    def rho(r: dict) -> float:
        v = r.get("spearman")
        return -2.0 if v is None or v != v else float(v)

    for r in sorted(study["rows"], key=lambda r: -rho(r)):
        print(f"  {r['name']:<14} {'nan' if rho(r) == -2.0 else f'{rho(r):+.3f}':>7}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="gunpoint,basicmotions")
    ap.add_argument("--boards", default="nucleo-l432kc,nano33ble")
    ap.add_argument("--spaces", default="tinyformer,dscnn")
    ap.add_argument("--candidates", type=int, default=6)
    ap.add_argument("--search-epochs", type=int, default=10)
    ap.add_argument("--final-epochs", type=int, default=40)
    ap.add_argument("--proxy-archs", type=int, default=20, help="archs per new space for the proxy study (0: skip)")
    ap.add_argument("--proxy-epochs", type=int, default=3)
    ap.add_argument("--proxy-spaces", default="tinyformer,gcn", help="spaces of the proxy study (tinyformer, gcn)")
    ap.add_argument("--proxy-samples", type=int, default=600, help="training samples per proxy-study arch")
    ap.add_argument("--seeds", default="0", help="search seeds of part 1 (comma-separated); the first seeds part 2")
    ap.add_argument("--out", type=Path, default=None, help="folder for results.json (and the runs' summaries)")
    args = ap.parse_args()
    seeds = [int(v) for v in args.seeds.split(",")]
    t0 = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="tinynas_seqbench_") as tmp:
        for dataset in filter(None, args.datasets.split(",")):
            for board in args.boards.split(","):
                for space in args.spaces.split(","):
                    for seed in seeds:
                        rows.append(run_one(dataset=dataset, board=board, space=space, seed=seed, args=args,
                                            workdir=Path(tmp)))
                        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if rows:
        print_runs(rows)
    studies = []
    if args.proxy_archs > 0:
        studies_of = {"tinyformer": "japanesevowels", "gcn": "digits-grid"}
        for space_name in filter(None, args.proxy_spaces.split(",")):
            dataset_name = studies_of[space_name]
            studies.append(proxy_study(space_name=space_name, dataset_name=dataset_name, n=args.proxy_archs,
                                       epochs=args.proxy_epochs, samples=args.proxy_samples, seed=seeds[0]))
            print_proxies(studies[-1])
    print(f"\n(total {time.perf_counter() - t0:.0f} s; settings: {vars(args)})")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        (args.out / "results.json").write_text(json.dumps({"settings": settings, "runs": rows, "proxies": studies},
                                                          indent=1, default=str))


if __name__ == "__main__":
    main()
