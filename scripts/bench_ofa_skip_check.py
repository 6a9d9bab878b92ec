"""Why do subnets with a left-out stage score low inherited? Sampling counts and targeted fine-tuning.

Two cheap checks on a trained digits supernet (benchmarks/ofa/README.md (f)):

1. ``--sampling``: replays progressive shrinking's draws (the same generators as
   ``shrinking._train_phase``, no training) and counts, per elastic phase, how many of
   the subnets trained have each stage left out.
2. For each subnet of a tau JSON (``--tau-json``, rows picked by ``--left-out``: the
   subnets with those stages left out), from the same weights (``--weights``, of a
   supernet with one shared reader per stage, ``predecessor_inputs=False``, as every
   supernet before (f)): the inherited val accuracy with BN recalibrated on the
   training set, with the val batch's own statistics, and the training accuracy; then,
   for each ``--modes``, after ``--steps`` Adam steps (3e-3, batch 64, cross-entropy) on
   that subnet alone training only ``adapter`` (the expand conv + BN of the first block
   after the left-out stage: the weights that see another stage's features than in the
   full network), ``block`` (that whole first block) or ``all`` (every weight): its
   accuracy and the full network's. If ``block`` alone lifts it, the reader is the problem.

    PYTHONPATH=. nice -n 10 .venv/bin/python scripts/bench_ofa_skip_check.py --sampling \
        --weights /tmp/wt12e/cache/ofa/975de4f352ec4b8f/supernet.npz --tau-json benchmarks/ofa/tau_native_e15_s2.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ofa_bn_check import fine_tune  # noqa: E402


def arch_from_summary(space, summary: str):
    """The arch that ``space.summary`` printed as ``summary`` (w.. r.. [head] [k e.. | ..])."""
    from tinynas.space.arch import Arch
    from tinynas.space.mcunet import DEPTHS, STAGES

    m = re.match(r"w([\d.]+) r(\d+)( head)? \[(.*)\]$", summary)
    values = {"width": float(m.group(1)), "resolution": int(m.group(2)), "head": bool(m.group(3))}
    for s, stage in enumerate(m.group(4).split("|"), start=1):
        blocks = [b for b in stage.strip().split(",") if b]
        values[f"s{s}_depth"] = len(blocks)
        for b in range(1, max(DEPTHS) + 1):
            k, e = blocks[b - 1].split("e") if b <= len(blocks) else ("3", "3")
            values[f"s{s}_b{b}_kernel"], values[f"s{s}_b{b}_expand"] = int(k), int(e)
    assert len(STAGES) == s
    return Arch.from_dict(space.name, {d.name: values[d.name] for d in space.decisions()})


def sampling_counts(space, ds, schedule, net) -> dict[str, list[float]]:
    """Per elastic phase: the share of trained subnets with stage 1..5 left out, replaying
    ``_train_phase``'s generator calls in order (shift draw, resolution draw, ``_sample_step``)."""
    import numpy as np

    from tinynas.ofa.plan import largest_archs, stride_pattern
    from tinynas.ofa.shrinking import PHASES, _sample_step

    native = int(space.input_shape[0])
    resolutions = [int(r) for r in space.decisions()[1].options]
    full = largest_archs(space, max_width=schedule.max_width)[0].replace(resolution=native)
    keep = stride_pattern(net.plan(full))
    per_epoch = math.ceil(len(ds.y_train) / schedule.batch_size)
    out = {}
    for p, phase in enumerate(PHASES[1:], start=1):
        counts, n = np.zeros(5), 0
        for epoch in range(schedule.epochs[p]):
            rng = np.random.default_rng([schedule.seed, p, epoch])
            rng.permutation(len(ds.y_train))
            for _ in range(per_epoch):
                shift = float(rng.random()) < schedule.shift_prob
                res = resolutions[int(rng.integers(len(resolutions)))]
                if phase != PHASES[-1] or not shift:
                    res = native
                for arch in _sample_step(net, rng, phase, schedule=schedule, resolution=res,
                                         keep=None if shift else keep):
                    counts += [int(arch[f"s{s}_depth"]) == 0 for s in range(1, 6)]
                    n += 1
        out[phase] = [round(float(c), 0) for c in counts] + [n]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--tau-json", required=True)
    p.add_argument("--max-width", type=float, default=0.35)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--modes", default="adapter,block,all")
    p.add_argument("--left-out", default="2", help="stages (comma-separated) that a picked subnet leaves out")
    p.add_argument("--limit", type=int, default=2, help="at most this many subnets")
    p.add_argument("--sampling", action="store_true", help="also count the left-out stages the phases train")
    p.add_argument("--steps-per-phase", type=int, default=60)
    p.add_argument("--shift-prob", type=float, default=0.25)
    args = p.parse_args()
    import numpy as np

    from tinynas.data.base import load_dataset
    from tinynas.ofa.compiled import CompiledForward
    from tinynas.ofa.plan import largest_archs
    from tinynas.ofa.shrinking import ShrinkingSchedule
    from tinynas.ofa.supernet import ElasticMCUNet, load_weights
    from tinynas.space.base import get_space

    ds = load_dataset("digits", seed=0)
    space = get_space("mcunet", input_shape=ds.input_shape, num_classes=ds.num_classes)
    net = ElasticMCUNet(space=space, max_width=args.max_width, seed=0, predecessor_inputs=False)
    if args.sampling:
        schedule = ShrinkingSchedule.scaled(len(ds.y_train), steps_per_phase=args.steps_per_phase,
                                            max_width=args.max_width, shift_prob=args.shift_prob)
        for phase, row in sampling_counts(space, ds, schedule, net).items():
            print(f"sampling {phase}: of {row[-1]} subnets trained, left out stage 1..5: {row[:5]}", flush=True)
    state = load_weights(Path(args.weights))
    forward = CompiledForward(net)
    full = largest_archs(space, max_width=args.max_width)[0].replace(resolution=int(ds.input_shape[0]))
    want = {int(s) for s in args.left_out.split(",")}
    rows = [r for r in json.loads(Path(args.tau_json).read_text())["rows"]
            if {s for s, blocks in enumerate(r["summary"].split("[")[1].rstrip("]").split("|"), start=1)
                if not blocks.strip()} == want][: args.limit]

    def acc(arch, x, y, batch_stats: bool = False) -> float:
        if batch_stats:  # BN on the evaluated batch itself (all of x at once)
            return float(np.mean(np.argmax(net.logits(arch, x).numpy(), 1) == y))
        stats = net.recalibrate(arch, ds.x_train)
        return float(np.mean(net.predict(arch, x, stats).argmax(1) == y))

    for row in rows:
        arch = arch_from_summary(space, row["summary"])
        assert arch.id == row["id"], (arch.id, row["id"])
        net.load_state(state, source=args.weights)
        # the op after the (first) left-out stage: the next present stage's first block, else the head
        after = [s for s in range(min(want) + 1, 6) if int(arch[f"s{s}_depth"]) > 0]
        consumer = f"s{after[0]}b1" if after else ("head" if arch["head"] else "classifier")
        print(f"{row['summary']}  (stand-alone {row['standalone']:.3f}; tau-json inherited {row['inherited']:.3f})")
        print(f"  recalibrated val {acc(arch, ds.x_val, ds.y_val):.3f}, val batch statistics "
              f"{acc(arch, ds.x_val, ds.y_val, batch_stats=True):.3f}, train {acc(arch, ds.x_train, ds.y_train):.3f}; "
              f"full network {acc(full, ds.x_val, ds.y_val):.3f}", flush=True)
        for mode in args.modes.split(","):
            net.load_state(state, source=args.weights)
            adapter = f"{consumer}_expand/" if after else f"{consumer}/"
            prefix = {"adapter": (adapter,), "block": (f"{consumer}_", adapter), "all": ("",)}[mode]
            names = [k for k in net.variables if k.startswith(prefix)]
            variables = [net.variables[k] for k in names]
            seconds = fine_tune(forward, arch, variables, ds, steps=args.steps)
            print(f"  {mode} ({len(names)} variables: {consumer} ...) {args.steps} steps "
                  f"({seconds:.0f} s): "
                  f"val {acc(arch, ds.x_val, ds.y_val):.3f}; full network now {acc(full, ds.x_val, ds.y_val):.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
