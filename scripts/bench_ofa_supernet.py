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


def setup(args: argparse.Namespace) -> tuple:
    """The dataset (--dataset, --samples), its mcunet space and the shrinking schedule scaled to it
    (--steps-per-phase, --max-width): what every OFA benchmark script starts from."""
    from tinynas.data.base import load_dataset
    from tinynas.ofa.shrinking import ShrinkingSchedule
    from tinynas.space.base import get_space

    ds = load_dataset("glyphs", seed=0, num_samples=args.samples) if args.dataset == "glyphs" \
        else load_dataset(args.dataset, seed=0)
    space = get_space("mcunet", input_shape=ds.input_shape, num_classes=ds.num_classes)
    schedule = ShrinkingSchedule.scaled(len(ds.y_train), steps_per_phase=args.steps_per_phase,
                                        max_width=args.max_width)
    return ds, space, schedule


def compare_steps(ds, space, schedule, n: int) -> None:
    """Median seconds of one shrinking step (teacher forward, subnets forward and backward, Adam) with
    the eager supernet and with the traced forward, alternating on the same batches and subnets so the
    load of a shared machine hits both alike; and the largest loss difference between them."""
    import numpy as np

    from tinynas.ofa.compiled import CompiledForward
    from tinynas.ofa.plan import largest_archs
    from tinynas.ofa.shrinking import PHASES, _Adam, _sample
    from tinynas.ofa.supernet import ElasticMCUNet, copy_variables

    net = ElasticMCUNet(space=space, max_width=schedule.max_width, seed=0)
    tf = net.tf
    forward = CompiledForward(net)
    teacher = copy_variables(net.variables)
    variables = list(net.variables.values())
    full = largest_archs(space, max_width=schedule.max_width)[0]
    resolutions = [int(r) for r in space.decisions()[1].options]
    rng = np.random.default_rng(0)

    def step(logits, xr, target, archs, adam):
        start = time.perf_counter()
        soft = tf.nn.softmax(logits(full.replace(resolution=int(xr.shape[1])), xr, variables=teacher))
        with tf.GradientTape() as tape:
            loss = 0.0
            for arch in archs:
                out = logits(arch, xr)
                loss += tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(target, out))
                loss += tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(soft, out))
        grads = tape.gradient(loss, variables)
        adam.apply(grads, 0.0)  # lr 0: the same weights for both variants
        return time.perf_counter() - start, float(loss)

    for phase in PHASES[1:]:
        times: dict[str, list[float]] = {"eager": [], "traced": []}
        diff = 0.0
        for i in range(n + 2):  # the first two steps (tracing) are not timed
            idx = rng.permutation(len(ds.y_train))[: schedule.batch_size]
            res = resolutions[int(rng.integers(len(resolutions)))]
            xr = net.prepare_inputs(ds.x_train[idx], res)
            target = tf.one_hot(ds.y_train[idx], ds.num_classes)
            archs = [_sample(space, rng, phase, max_width=schedule.max_width, resolution=res)
                     for _ in range(schedule.subnets_per_step)]
            adam = _Adam(tf, variables)
            t_eager, l_eager = step(net.logits, xr, target, archs, adam)
            t_traced, l_traced = step(forward.logits, xr, target, archs, adam)
            diff = max(diff, abs(l_eager - l_traced))
            if i >= 2:
                times["eager"].append(t_eager)
                times["traced"].append(t_traced)
        print(f"phase {phase}: median s/step eager {np.median(times['eager']):.3f}, traced "
              f"{np.median(times['traced']):.3f} ({n} steps, {schedule.subnets_per_step} subnets + teacher); "
              f"max |loss difference| {diff:.2e}; traces so far {forward.traces}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=12000)
    p.add_argument("--steps-per-phase", type=int, default=100)
    p.add_argument("--max-width", type=float, default=0.35)
    p.add_argument("--cache", default=None)
    p.add_argument("--subnets", type=int, default=8)
    p.add_argument("--dataset", default="glyphs", help="glyphs (num_samples=--samples) or digits")
    p.add_argument("--tau", type=int, default=0,
                   help="also train this many random covered subnets stand-alone and print Kendall tau "
                        "between their inherited and stand-alone validation accuracy")
    p.add_argument("--tau-sampler", default="space", choices=("space", "phases"),
                   help="space: uniformly random covered archs; phases: equal shares drawn by the kernel, depth, "
                        "expand and width phases' samplers (the rest at their largest), for a tau per dimension")
    p.add_argument("--standalone-cache", default=None,
                   help="JSON file of stand-alone accuracies by arch id (and epochs): read, and extended with "
                        "the subnets trained now, so another supernet is ranked against the same trainings")
    p.add_argument("--tau-epochs", type=int, default=5, help="stand-alone training epochs per subnet (--tau)")
    p.add_argument("--compare-steps", type=int, default=0,
                   help="only time this many training steps per phase, eager and traced alternately, and stop")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import numpy as np

    from tinynas.ofa.plan import largest_archs
    from tinynas.ofa.shrinking import PHASES, train_supernet

    ds, space, schedule = setup(args)
    print(f"{len(ds.y_train)} training samples; {schedule}")
    if args.compare_steps:
        compare_steps(ds, space, schedule, args.compare_steps)
        return
    start = time.time()
    net, report = train_supernet(dataset=ds, space=space, schedule=schedule,
                                 cache_dir=args.cache or tempfile.mkdtemp(prefix="ofa_"))
    print(f"supernet: {time.time() - start:.0f} s, phases {report.phase_seconds}, reused {report.reused}")
    per_epoch = -(-len(ds.y_train) // schedule.batch_size)
    steps = {ph: per_epoch * e for ph, e in zip(PHASES, schedule.epochs)}
    print("seconds per optimizer step: " + ", ".join(
        f"{ph} {report.phase_seconds[ph] / steps[ph]:.3f} ({steps[ph]} steps)" for ph in report.phase_seconds))
    rng = np.random.default_rng(0)
    largest = largest_archs(space, max_width=args.max_width)[0]
    archs = [largest.replace(resolution=int(ds.input_shape[0]))]  # the resolution the teacher trained at
    dims: list[str] = []
    if args.tau and args.tau_sampler == "phases":
        from tinynas.ofa.shrinking import _sample

        resolutions = [int(r) for r in space.decisions()[1].options]
        for i in range(args.tau):
            phase = PHASES[1 + i % 4]
            res = int(ds.input_shape[0]) if phase != "width" else resolutions[int(rng.integers(len(resolutions)))]
            archs.append(_sample(space, rng, phase, max_width=args.max_width, resolution=res))
            dims.append(phase)
    while len(archs) < max(args.subnets, args.tau) + 1:
        arch = space.sample(rng)
        if net.covers(arch):
            archs.append(arch)
    inherited = []
    for arch in archs:
        t = time.time()
        stats = net.recalibrate(arch, ds.x_train[:2000])
        acc = float(np.mean(net.predict(arch, ds.x_val, stats).argmax(1) == ds.y_val))
        inherited.append(acc)
        print(f"{space.summary(arch):80s} inherited val acc {acc:.3f}  {time.time() - t:.2f} s")
    if args.tau:
        kendall_tau(net, ds, space, archs[1:args.tau + 1], inherited[1:args.tau + 1], args.tau_epochs, dims,
                    cache=args.standalone_cache)


def kendall_tau(net, ds, space, archs, inherited, epochs: int, dims: list[str], cache: str | None = None) -> None:
    """Stand-alone validation accuracy of each arch after ``epochs`` epochs from scratch, and Kendall tau
    against the inherited accuracies (the issue's ranking criterion)."""
    from scipy.stats import kendalltau

    from tinynas.train import TrainBudget, train_graph

    import json

    known = json.loads(Path(cache).read_text()) if cache and Path(cache).is_file() else {}
    standalone = []
    for arch, acc in zip(archs, inherited):
        t = time.time()
        key = f"{arch.id}/e{epochs}"
        if key not in known:
            result = train_graph(space.graph(arch), ds, budget=TrainBudget(epochs=epochs, evaluate_test=False),
                                 seed=0)
            known[key] = float(result.val_accuracy)
            if cache:
                Path(cache).write_text(json.dumps(known, indent=1))
        standalone.append(known[key])
        print(f"{space.summary(arch):80s} inherited {acc:.3f} stand-alone {standalone[-1]:.3f}  "
              f"{time.time() - t:.1f} s", flush=True)
    tau = kendalltau(inherited, standalone)
    print(f"Kendall tau over {len(archs)} subnets: {tau.statistic:.3f} (p {tau.pvalue:.3f})")
    for dim in sorted(set(dims), key=dims.index):
        idx = [i for i, d in enumerate(dims) if d == dim]
        t = kendalltau([inherited[i] for i in idx], [standalone[i] for i in idx])
        print(f"  elastic {dim} ({len(idx)} subnets drawn by its phase's sampler): tau {t.statistic:.3f} "
              f"(p {t.pvalue:.3f})")


if __name__ == "__main__":
    main()
