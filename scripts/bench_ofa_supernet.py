"""Time progressive shrinking of the once-for-all supernet on glyphs, then inherited accuracy of a few subnets.

Prints the schedule, each phase's seconds (from the log), the total, and for the full
network and a few random covered subnets the validation accuracy after BN recalibration
on 500 training samples with the seconds each evaluation took.

    PYTHONPATH=. .venv/bin/python scripts/bench_ofa_supernet.py --samples 12000 --steps-per-phase 100 --max-width 0.35
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=12000)
    p.add_argument("--steps-per-phase", type=int, default=100)
    p.add_argument("--max-width", type=float, default=0.35)
    p.add_argument("--cache", default=None)
    p.add_argument("--subnets", type=int, default=8)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import numpy as np

    from tinynas.data.base import load_dataset
    from tinynas.ofa.plan import largest_archs
    from tinynas.ofa.shrinking import ShrinkingSchedule, train_supernet
    from tinynas.space.base import get_space

    ds = load_dataset("glyphs", seed=0, num_samples=args.samples)
    space = get_space("mcunet", input_shape=ds.input_shape, num_classes=ds.num_classes)
    schedule = ShrinkingSchedule.scaled(len(ds.y_train), steps_per_phase=args.steps_per_phase,
                                        max_width=args.max_width)
    print(f"{len(ds.y_train)} training samples; {schedule}")
    start = time.time()
    net, report = train_supernet(dataset=ds, space=space, schedule=schedule,
                                 cache_dir=args.cache or tempfile.mkdtemp(prefix="ofa_"))
    print(f"supernet: {time.time() - start:.0f} s, phases {report.phase_seconds}, reused {report.reused}")
    rng = np.random.default_rng(0)
    archs = [largest_archs(space, max_width=args.max_width)[0]]
    while len(archs) < args.subnets + 1:
        arch = space.sample(rng)
        if net.covers(arch):
            archs.append(arch)
    for arch in archs:
        t = time.time()
        stats = net.recalibrate(arch, ds.x_train[:500])
        acc = float(np.mean(net.predict(arch, ds.x_val, stats).argmax(1) == ds.y_val))
        print(f"{space.summary(arch):80s} inherited val acc {acc:.3f}  {time.time() - t:.2f} s")


if __name__ == "__main__":
    main()
