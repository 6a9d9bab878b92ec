#!/usr/bin/env python
"""How well do tinynas's zero-cost proxies rank, and how fast are they? Prints tables.

  NAS-Bench-201 (default):   --n 1000 data-free proxies vs the published CIFAR-10 accuracy,
                             plus the ensemble chosen on one half and checked on the other;
                             --n-data N adds the data-dependent proxies on N cells.
  --trained:                 mcunet and nanonas on digits and mnist1d, proxies vs accuracy
                             after a short training (--n-trained archs, --epochs).
  --speed:                   SynFlow on mcunet at 32x32: archs per second.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import numpy as np  # noqa: E402

from tinynas.resources import data_dir  # noqa: E402

DEFAULT_TRUTH = data_dir("benchmarks") / "nasbench201_accuracy.csv"
DATA_FREE = ["synflow", "zen", "params", "macs"]
DATA_DEP = ["naswot", "jacob_cov", "grad_norm", "snip", "grasp", "fisher"]


def nb201(args: argparse.Namespace) -> None:
    from tinynas.proxies.benchmark import benchmark_nasbench201, correlate, select_ensemble
    from tinynas.proxies.ensemble import default_ensemble

    names = args.proxies.split(",")
    ens = default_ensemble()
    res = benchmark_nasbench201(truth_path=args.truth, n=args.n, seed=args.seed, proxies=names,
                                cells_per_stage=args.cells, progress=args.progress,
                                ensemble=ens if all(m in names for m in ens.names) else None)
    print(res.table())
    if args.out:
        Path(args.out).write_text(json.dumps(res.to_json(with_scores=True)))
    # ensemble choice: greedy selection on one half, checked on the other half
    perm = np.random.default_rng(args.seed + 1).permutation(res.n)
    a, b = perm[: res.n // 2], perm[res.n // 2:]
    scores, accs = list(res.scores), list(res.accuracies)
    if len(names) < 2:
        return
    ens, rho_a = select_ensemble([scores[i] for i in a], [accs[i] for i in a], candidates=names)
    held = correlate(space="held-out half", truth="cifar10_val_acc", scores=[scores[i] for i in b],
                     accuracies=[accs[i] for i in b], timings={}, ensemble=ens)
    print(f"\nensemble selected on half A (n={len(a)}): {ens.to_json()['members']} spearman {rho_a:.3f}")
    print("checked on half B:")
    print(held.table())
    print()


def nb201_data(args: argparse.Namespace) -> None:
    from tinynas.proxies.benchmark import benchmark_nasbench201
    from tinynas.proxies.ensemble import RankEnsemble

    from tinynas.proxies.ensemble import DATA_ENSEMBLE

    names = args.proxies_data.split(",")
    res = benchmark_nasbench201(truth_path=args.truth, n=args.n_data, seed=args.seed, proxies=names,
                                cells_per_stage=args.cells_data, ensemble=RankEnsemble.of(DATA_ENSEMBLE),
                                progress=args.progress)
    print(res.table())
    if args.out_data:
        Path(args.out_data).write_text(json.dumps(res.to_json(with_scores=True)))
    print()


def trained(args: argparse.Namespace) -> None:
    from tinynas.data import load_dataset
    from tinynas.proxies.benchmark import benchmark_trained
    from tinynas.proxies.ensemble import default_ensemble
    from tinynas.space import get_space

    for ds_name in args.datasets.split(","):
        data = load_dataset(ds_name, seed=args.seed)
        for space_name in args.spaces.split(","):
            space = get_space(space_name, input_shape=tuple(data.input_shape), num_classes=len(data.class_names))
            res = benchmark_trained(space=space, dataset=data, n=args.n_trained, epochs=args.epochs, seed=args.seed,
                                    proxies=DATA_FREE + DATA_DEP, ensemble=default_ensemble(), progress=args.progress,
                                    max_train_samples=args.max_train_samples, cache_dir=args.cache_dir)
            print(res.table())
            print()
            sys.stdout.flush()
            if args.out_dir:
                Path(args.out_dir).mkdir(parents=True, exist_ok=True)
                out = Path(args.out_dir) / f"{space_name}_{ds_name}.json"
                out.write_text(json.dumps(res.to_json(with_scores=True)))


def speed(args: argparse.Namespace) -> None:
    from tinynas.proxies import score_graph
    from tinynas.space import get_space

    space = get_space("mcunet", input_shape=(32, 32, 3), num_classes=10)
    rng = np.random.default_rng(args.seed)
    archs = [space.sample(rng) for _ in range(args.speed_n)]
    score_graph(space.graph(archs[0]), proxies=["synflow"])  # warm-up (TF start)
    start = time.perf_counter()
    for arch in archs:
        score_graph(space.graph(arch), proxies=["synflow"], seed=args.seed)
    single = len(archs) / (time.perf_counter() - start)
    print(f"synflow, mcunet 32x32x3, 1 process: {single:.1f} archs/s "
          f"({len(archs)} archs, graph build + weight init + forward + backward)")
    if args.workers > 1:
        import multiprocessing as mp

        from tinynas.proxies.prefilter import _init_worker, _score_job

        jobs = [(space, a, ("synflow",), None, args.seed) for a in archs]
        with mp.get_context("spawn").Pool(args.workers, initializer=_init_worker) as pool:
            pool.map(_score_job, jobs[: args.workers * 2])  # warm-up
            start = time.perf_counter()
            pool.map(_score_job, jobs, chunksize=4)
            multi = len(archs) / (time.perf_counter() - start)
        print(f"synflow, mcunet 32x32x3, {args.workers} processes: {multi:.1f} archs/s")
    print(f"(load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--truth", default=str(DEFAULT_TRUTH))
    p.add_argument("--n", type=int, default=1000, help="NAS-Bench-201 cells for the data-free proxies (0: skip)")
    p.add_argument("--cells", type=int, default=5, help="NAS-Bench-201 cells per stage (paper: 5)")
    p.add_argument("--proxies", default=",".join(DATA_FREE), help="proxies for the --n table")
    p.add_argument("--n-data", type=int, default=0, help="NAS-Bench-201 cells for the data-dependent proxies")
    p.add_argument("--cells-data", type=int, default=5)
    p.add_argument("--proxies-data", default=",".join(DATA_DEP + DATA_FREE), help="proxies for the --n-data table")
    p.add_argument("--out-data", default=None, help="write the --n-data scores as JSON here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the NAS-Bench-201 scores as JSON here")
    p.add_argument("--trained", action="store_true", help="run the trained-accuracy tables")
    p.add_argument("--spaces", default="mcunet,nanonas")
    p.add_argument("--datasets", default="digits,mnist1d")
    p.add_argument("--n-trained", type=int, default=100)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--cache-dir", default=None, help="training result cache (reruns do not train again)")
    p.add_argument("--out-dir", default=None, help="write each trained table's scores as JSON here")
    p.add_argument("--speed", action="store_true")
    p.add_argument("--speed-n", type=int, default=100)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--progress", action="store_true")
    args = p.parse_args()
    if args.n:
        nb201(args)
    if args.n_data:
        nb201_data(args)
    if args.trained:
        trained(args)
    if args.speed:
        speed(args)


if __name__ == "__main__":
    main()
