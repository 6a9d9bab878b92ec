"""Inherited accuracy after each shrinking phase, grouped by stride pattern: where random subnets stop learning.

Trains (or reuses, with ``--cache``) a supernet, then loads each phase's checkpoint
and evaluates the same subnets after BN recalibration: subnets drawn by each
elastic phase's sampler and uniformly random covered archs of the space. Each
subnet is grouped by whether its stride-2 layers (the weight slots that downsample)
are the full network's at the native resolution ("same strides") or not
("shifted": a left-out stage or another resolution moved them), and the mean
inherited validation accuracy per (phase checkpoint, sampler, group) is printed.

    PYTHONPATH=. nice -n 10 .venv/bin/python scripts/bench_ofa_phases.py --dataset digits --steps-per-phase 60
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--samples", type=int, default=3000, help="glyphs num_samples")
    p.add_argument("--steps-per-phase", type=int, default=60)
    p.add_argument("--max-width", type=float, default=0.35)
    p.add_argument("--per-sampler", type=int, default=12, help="subnets drawn by each elastic phase's sampler")
    p.add_argument("--random", type=int, default=24, help="uniformly random covered archs of the space")
    p.add_argument("--cache", default=None)
    p.add_argument("--epochs", default=None, help="epochs per phase, comma-separated (overrides --steps-per-phase)")
    p.add_argument("--checkpoints", default="full,kernel,depth,expand,width", help="phase checkpoints to evaluate")
    p.add_argument("--verbose", action="store_true", help="also print every subnet's accuracy")
    p.add_argument("--shift-prob", type=float, default=None, help="ShrinkingSchedule.shift_prob")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import numpy as np

    from bench_ofa_supernet import setup

    from tinynas.ofa.plan import largest_archs, stride_pattern
    from tinynas.ofa.shrinking import PHASES, _sample, train_supernet
    from tinynas.ofa.supernet import load_weights

    ds, space, schedule = setup(args)
    print(schedule)
    net, report = train_supernet(dataset=ds, space=space, schedule=schedule,
                                 cache_dir=args.cache or tempfile.mkdtemp(prefix="ofa_"))
    print(f"supernet {report.directory}: phases {report.phase_seconds}, reused {report.reused}")
    native = int(ds.input_shape[0])
    full = largest_archs(space, max_width=args.max_width)[0].replace(resolution=native)
    full_strides = stride_pattern(net.plan(full))
    rng = np.random.default_rng(123)
    native_res = [int(r) for r in space.decisions()[1].options]
    sets: dict[str, list] = {}
    for phase in PHASES[1:]:
        sets[phase] = [_sample(space, rng, phase, max_width=args.max_width,
                               resolution=native if phase != PHASES[-1] else
                               native_res[int(rng.integers(len(native_res)))])
                       for _ in range(args.per_sampler)]
    sets["random"] = []
    while len(sets["random"]) < args.random:
        arch = space.sample(rng)
        if net.covers(arch):
            sets["random"].append(arch)
    x_recal = ds.x_train[:2000]
    print(f"full strides {full_strides}")
    print("| checkpoint | sampler | same strides: n, mean acc (min-max) | shifted: n, mean acc (min-max) |")
    print("|---|---|---|---|")
    for ckpt in args.checkpoints.split(","):
        net.load_state(load_weights(Path(report.directory) / f"phase_{ckpt}.npz"), source=ckpt)
        acc_full = float(np.mean(net.predict(full, ds.x_val, net.recalibrate(full, x_recal)).argmax(1) == ds.y_val))
        print(f"| after {ckpt} | largest | {acc_full:.3f} | |")
        for name, archs in sets.items():
            groups: dict[bool, list[float]] = {True: [], False: []}
            for arch in archs:
                stats = net.recalibrate(arch, x_recal)
                acc = float(np.mean(net.predict(arch, ds.x_val, stats).argmax(1) == ds.y_val))
                same = stride_pattern(net.plan(arch)) == full_strides
                groups[same].append(acc)
                if args.verbose:
                    print(f"  {ckpt} {name} {'same' if same else 'shifted'} {space.summary(arch)} {acc:.3f}")
            cells = [f"{len(g)}, {np.mean(g):.3f} ({min(g):.2f}-{max(g):.2f})" if g else "0" for g in
                     (groups[True], groups[False])]
            print(f"| after {ckpt} | {name} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
