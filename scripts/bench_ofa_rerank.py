"""Kendall tau of stored inherited accuracies against a stand-alone reference of more seeds (issue 12).

Each ``--tau-json`` file of ``bench_ofa_supernet.py`` keeps its subnets' inherited accuracies; the stand-alone
cache keeps every seed trained since (``--reference-only --tau-seeds N`` adds seeds). This ranks each file's
inherited accuracies against the mean of the first ``--seeds`` seeds, with no supernet and no training, and says
how well the reference agrees with itself: the mean of the even seeds against the mean of the odd ones (with 4
seeds, two against two), and each pair of single seeds.

    PYTHONPATH=. .venv/bin/python scripts/bench_ofa_rerank.py --seeds 4 benchmarks/ofa/tau_glyphs12k_native_e15_s2*.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path


def _key(arch_id: str, epochs: int, seed: int) -> str:
    """The stand-alone cache's key (``bench_ofa_supernet._reference_key``)."""
    return f"{arch_id}/e{epochs}" + (f"/s{seed}" if seed else "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("tau_json", nargs="+")
    p.add_argument("--cache", default="benchmarks/ofa/standalone_glyphs12k_e15.json")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--epochs", type=int, default=15)
    args = p.parse_args()
    import numpy as np
    from scipy.stats import kendalltau

    known = json.loads(Path(args.cache).read_text())
    ids = [r["id"] for r in json.loads(Path(args.tau_json[0]).read_text())["rows"]]
    ids = [i for i in ids if all(_key(i, args.epochs, s) in known for s in range(args.seeds))]
    seeds = np.array([[known[_key(i, args.epochs, s)] for s in range(args.seeds)] for i in ids])
    mean = seeds.mean(axis=1)
    print(f"{len(ids)} subnets with all {args.seeds} seeds in {args.cache}")
    if args.seeds >= 2:
        halves = kendalltau(seeds[:, 0::2].mean(axis=1), seeds[:, 1::2].mean(axis=1))[0]
        pairs = [kendalltau(seeds[:, a], seeds[:, b])[0] for a, b in itertools.combinations(range(args.seeds), 2)]
        print(f"reference against itself: mean of seeds {list(range(0, args.seeds, 2))} vs "
              f"{list(range(1, args.seeds, 2))} {halves:.3f}; single seeds pairwise {np.mean(pairs):.3f} "
              f"({min(pairs):.3f}-{max(pairs):.3f})")
    dims = {r["id"]: r.get("dim", "?") for r in json.loads(Path(args.tau_json[0]).read_text())["rows"]}
    names = sorted(set(dims.values()), key=list(dims.values()).index)
    print(f"| file | inherited vs mean of {args.seeds} seeds | per dimension: {' / '.join(names)} | "
          "vs mean of seeds 0, 1 | vs each seed |")
    print("|---|---|---|---|---|")
    for path in args.tau_json:
        rows = {r["id"]: r["inherited"] for r in json.loads(Path(path).read_text())["rows"]}
        have = [k for k, i in enumerate(ids) if i in rows]
        inherited = np.array([rows[ids[k]] for k in have])
        each = " / ".join(f"{kendalltau(inherited, seeds[have, s])[0]:.3f}" for s in range(args.seeds))
        per_dim = " / ".join(
            f"{kendalltau(inherited[sel], mean[have][sel])[0]:.2f}"
            for sel in ([j for j, k in enumerate(have) if dims.get(ids[k]) == name] for name in names))
        print(f"| {Path(path).name} ({len(have)}) | {kendalltau(inherited, mean[have])[0]:.3f} | {per_dim} | "
              f"{kendalltau(inherited, seeds[have, :2].mean(axis=1))[0]:.3f} | {each} |")


if __name__ == "__main__":
    main()
