"""Time progressive shrinking of the once-for-all supernet on glyphs, then inherited accuracy of a few subnets.

Prints the schedule, each phase's seconds (from the log), the total, and for the full
network and a few random covered subnets the validation accuracy after BN recalibration
on 500 training samples with the seconds each evaluation took.

    PYTHONPATH=. .venv/bin/python scripts/bench_ofa_supernet.py --samples 12000 --steps-per-phase 100 --max-width 0.35

With ``--tau N`` it also trains N subnets stand-alone and prints Kendall tau between inherited and
stand-alone accuracy, overall and per sampler (benchmarks/ofa/README.md (c), (e)):

    PYTHONPATH=. .venv/bin/python scripts/bench_ofa_supernet.py --dataset digits --steps-per-phase 60 \
        --subnets 0 --tau 32 --tau-sampler native --tau-epochs 15 --tau-seeds 2 --tau-json tau.json
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def setup(args: argparse.Namespace) -> tuple:
    """The dataset (--dataset, --samples), its mcunet space and the shrinking schedule scaled to it
    (--steps-per-phase, --max-width), with --epochs and --shift-prob overriding it where the script
    has them: what every OFA benchmark script starts from."""
    from tinynas.data.base import load_dataset
    from tinynas.ofa.shrinking import ShrinkingSchedule
    from tinynas.space.base import get_space

    ds = load_dataset("glyphs", seed=0, num_samples=args.samples) if args.dataset == "glyphs" \
        else load_dataset(args.dataset, seed=0)
    space = get_space("mcunet", input_shape=ds.input_shape, num_classes=ds.num_classes)
    schedule = ShrinkingSchedule.scaled(len(ds.y_train), steps_per_phase=args.steps_per_phase,
                                        max_width=args.max_width, seed=int(getattr(args, "seed", 0)))
    if getattr(args, "epochs", None):
        schedule = replace(schedule, epochs=tuple(int(e) for e in args.epochs.split(",")))
    if getattr(args, "shift_prob", None) is not None:
        schedule = replace(schedule, shift_prob=args.shift_prob)
    if getattr(args, "no_predecessor_inputs", False):  # the supernet of (e), before README (f)
        schedule = replace(schedule, predecessor_inputs=False)
    if getattr(args, "reader_lr_scale", None) is not None:
        schedule = replace(schedule, reader_lr_scale=args.reader_lr_scale)
    if getattr(args, "reader_epochs", None) is not None:
        schedule = replace(schedule, reader_epochs=args.reader_epochs)
    if getattr(args, "reader_sampling", None) is not None:
        schedule = replace(schedule, reader_sampling=args.reader_sampling)
    if getattr(args, "reader_body_lr_scale", None) is not None:
        schedule = replace(schedule, reader_body_lr_scale=args.reader_body_lr_scale)
    if getattr(args, "reader_phase_lr_scale", None) is not None:
        schedule = replace(schedule, reader_phase_lr_scale=args.reader_phase_lr_scale)
    if getattr(args, "kd_weight", None) is not None:
        schedule = replace(schedule, kd_weight=args.kd_weight)
    if getattr(args, "subnets_per_step", None) is not None:
        schedule = replace(schedule, subnets_per_step=args.subnets_per_step)
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
    p.add_argument("--tau-sampler", default="space", choices=("space", "phases", "native"),
                   help="space: uniformly random covered archs; phases: equal shares drawn by the kernel, depth, "
                        "expand and width phases' samplers (the rest at their largest), for a tau per dimension; "
                        "native: as phases, all at the native resolution and kept only when their stride-2 "
                        "positions are the full network's (plan.stride_pattern; no stride-shifted subnets)")
    p.add_argument("--standalone-cache", default=None,
                   help="JSON file of stand-alone accuracies by arch id (and epochs): read, and extended with "
                        "the subnets trained now, so another supernet is ranked against the same trainings")
    p.add_argument("--tau-epochs", type=int, default=5, help="stand-alone training epochs per subnet (--tau)")
    p.add_argument("--tau-seeds", type=int, default=1,
                   help="stand-alone trainings per subnet (seeds 0..n-1), averaged; with 2 or more also the tau "
                        "between the seeds (how far the reference agrees with itself)")
    p.add_argument("--tau-json", default=None, help="write every subnet's accuracies and the taus to this JSON file")
    p.add_argument("--reference-only", action="store_true",
                   help="only train the --tau subnets stand-alone into --standalone-cache (no supernet training: "
                        "the subnets are drawn from an untrained supernet's plans, which do not depend on its "
                        "weights), so the reference can run beside the supernet or over several sessions")
    p.add_argument("--reference-reverse", action="store_true",
                   help="with --reference-only, train the missing (seed, subnet) pairs last first: a second process "
                        "on a shard another one is working through meets it in the middle")
    p.add_argument("--tau-shard", default=None, metavar="K/N",
                   help="with --reference-only, train only the subnets whose index is K modulo N (one process per "
                        "core; they share --standalone-cache)")
    p.add_argument("--tau-cached-only", action="store_true",
                   help="rank only the subnets whose stand-alone accuracies (every seed) are in --standalone-cache; "
                        "train nothing")
    p.add_argument("--shift-prob", type=float, default=None, help="ShrinkingSchedule.shift_prob (default: its own)")
    p.add_argument("--no-predecessor-inputs", action="store_true",
                   help="share the reader of a stage's output across predecessors (ShrinkingSchedule."
                        "predecessor_inputs False: the supernets trained before README (f))")
    p.add_argument("--reader-lr-scale", type=float, default=None,
                   help="ShrinkingSchedule.reader_lr_scale (default: its own)")
    p.add_argument("--reader-epochs", type=int, default=None,
                   help="ShrinkingSchedule.reader_epochs (default: its own)")
    p.add_argument("--reader-sampling", default=None, choices=("any", "round_robin"),
                   help="ShrinkingSchedule.reader_sampling (default: its own)")
    p.add_argument("--reader-body-lr-scale", type=float, default=None,
                   help="ShrinkingSchedule.reader_body_lr_scale (default: its own)")
    p.add_argument("--reader-phase-lr-scale", type=float, default=None,
                   help="ShrinkingSchedule.reader_phase_lr_scale (default: its own)")
    p.add_argument("--kd-weight", type=float, default=None, help="ShrinkingSchedule.kd_weight (default: its own)")
    p.add_argument("--subnets-per-step", type=int, default=None,
                   help="ShrinkingSchedule.subnets_per_step (default: its own)")
    p.add_argument("--recal-samples", type=int, default=2000,
                   help="training samples that recalibrate each subnet's BatchNorm statistics before scoring")
    p.add_argument("--epochs", default=None, help="epochs per phase, comma-separated (overrides --steps-per-phase)")
    p.add_argument("--score-train-samples", type=int, default=0,
                   help="score each subnet after one epoch of training on this many samples (a short fine-tune): "
                        "from its inherited weights (--score-from inherited) or from scratch (a control)")
    p.add_argument("--tau-score", default="accuracy", choices=("accuracy", "loss"),
                   help="what ranks a subnet: its inherited validation accuracy, or minus its inherited validation "
                        "loss (the 'inherited' field of --tau-json is then minus the loss)")
    p.add_argument("--tau-predictor", default=None, metavar="PAIRS",
                   help="rank by the accuracy predictor fitted on this pairs file (scripts/bench_ofa_predictor.py)")
    p.add_argument("--seed", type=int, default=0, help="the supernet's seed (ShrinkingSchedule.seed; a run's --seed)")
    p.add_argument("--score-from", default="inherited", choices=("inherited", "scratch"),
                   help="with --score-train-samples: start from the supernet's weights or from a fresh init")
    p.add_argument("--score-lr", type=float, default=1e-3, help="with --score-train-samples: the peak rate")
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
    if args.reference_only:
        if not (args.tau and args.standalone_cache):
            p.error("--reference-only needs --tau N and --standalone-cache FILE")
        from tinynas.ofa.supernet import ElasticMCUNet

        net = ElasticMCUNet(space=space, max_width=schedule.max_width, seed=schedule.seed,
                            predecessor_inputs=schedule.predecessor_inputs)
    else:
        start = time.time()
        net, report = train_supernet(dataset=ds, space=space, schedule=schedule,
                                     cache_dir=args.cache or tempfile.mkdtemp(prefix="ofa_"))
        print(f"supernet: {time.time() - start:.0f} s, phases {report.phase_seconds}, reused {report.reused}")
        per_epoch = -(-len(ds.y_train) // schedule.batch_size)
        steps = {ph: per_epoch * e for ph, e in zip(PHASES, schedule.epochs)}
        steps["readers"] = per_epoch * schedule.reader_epochs  # the optional last phase (README (f))
        print("seconds per optimizer step: " + ", ".join(
            f"{ph} {report.phase_seconds[ph] / steps[ph]:.3f} ({steps[ph]} steps)" for ph in report.phase_seconds))
    rng = np.random.default_rng(0)
    largest = largest_archs(space, max_width=args.max_width)[0]
    archs = [largest.replace(resolution=int(ds.input_shape[0]))]  # the resolution the teacher trained at
    dims: list[str] = []
    if args.tau and args.tau_sampler in ("phases", "native"):
        from tinynas.ofa.plan import stride_pattern
        from tinynas.ofa.shrinking import _sample

        resolutions = [int(r) for r in space.decisions()[1].options]
        native = int(ds.input_shape[0])
        full_strides = stride_pattern(net.plan(archs[0]))
        for i in range(args.tau):
            phase = PHASES[1 + i % 4]
            while True:
                res = native if phase != "width" or args.tau_sampler == "native" \
                    else resolutions[int(rng.integers(len(resolutions)))]
                arch = _sample(space, rng, phase, max_width=args.max_width, resolution=res)
                if args.tau_sampler == "phases" or (stride_pattern(net.plan(arch)) == full_strides
                                                    and arch.id not in {a.id for a in archs}):
                    break
            archs.append(arch)
            dims.append(phase)
    while len(archs) < max(args.subnets, args.tau) + 1:
        arch = space.sample(rng)
        if net.covers(arch):
            archs.append(arch)
    if args.reference_only:
        k, n = (int(x) for x in (args.tau_shard or "0/1").split("/"))
        train_reference(space, ds, [a for i, a in enumerate(archs[1:args.tau + 1]) if i % n == k],
                        epochs=args.tau_epochs, seeds=args.tau_seeds, cache=args.standalone_cache,
                        reverse=args.reference_reverse)
        return
    inherited = []
    for arch in archs:
        t = time.time()
        stats = net.recalibrate(arch, ds.x_train[:args.recal_samples])
        if args.score_train_samples:
            acc = short_training_score(net, space, ds, arch, stats, samples=args.score_train_samples,
                                       start=args.score_from, learning_rate=args.score_lr)
        elif args.tau_score == "loss":  # minus the validation cross-entropy: higher is better, as for accuracy
            probs = net.predict(arch, ds.x_val, stats)
            acc = -float(np.mean(-np.log(np.clip(probs[np.arange(len(ds.y_val)), ds.y_val], 1e-7, 1.0))))
        else:
            acc = float(np.mean(net.predict(arch, ds.x_val, stats).argmax(1) == ds.y_val))
        inherited.append(acc)
        print(f"{space.summary(arch):80s} inherited val {args.tau_score} {abs(acc):.3f}  {time.time() - t:.2f} s")
    if args.tau_predictor:  # rank by the accuracy predictor fitted on the pairs file, the ranked subnets left out
        import json

        from tinynas.ofa.predictor import AccuracyPredictor
        from tinynas.space.arch import Arch

        ranked = {a.id for a in archs}
        pairs = [p for p in json.loads(Path(args.tau_predictor).read_text())["pairs"] if p["id"] not in ranked]
        predictor = AccuracyPredictor(space=space, seed=0)
        fit = predictor.fit([Arch.from_json(p["arch"]) for p in pairs], [p["accuracy"] for p in pairs])
        print(f"predictor on {len(pairs)} pairs: held-out MAE {fit.mae:.4f}, tau {fit.kendall_tau:.3f}")
        inherited = [float(v) for v in predictor.predict(archs)]
    if args.tau:
        kendall_tau(net, ds, space, archs[1:args.tau + 1], inherited[1:args.tau + 1], args.tau_epochs, dims,
                    cache=args.standalone_cache, seeds=args.tau_seeds, out=args.tau_json,
                    about={"argv": sys.argv[1:], "supernet": report.directory, "schedule": schedule.to_json()},
                    cached_only=args.tau_cached_only)


def short_training_score(net, space, ds, arch, stats, *, samples: int, start: str, learning_rate: float) -> float:
    """Validation accuracy after one epoch on ``samples`` training samples (cosine from ``learning_rate``),
    starting from the subnet's inherited weights and recalibrated BN statistics, or from a fresh init (the
    control: how much of the ranking a short training alone gives)."""
    from tinynas.train import TrainBudget, train_graph
    from tinynas.train.trainer import train_keras_model

    budget = TrainBudget(epochs=1, max_train_samples=samples, learning_rate=learning_rate, evaluate_test=False)
    if start == "scratch":
        return float(train_graph(space.graph(arch), ds, budget=budget, seed=0).val_accuracy)
    return float(train_keras_model(net.extract(arch, stats), ds, budget=budget, seed=0).val_accuracy)


def _reference_key(arch, epochs: int, seed: int) -> str:
    return f"{arch.id}/e{epochs}" + (f"/s{seed}" if seed else "")


def _store(cache: str, key: str, value: float) -> dict:
    """Add one stand-alone accuracy to the cache file, merged with what other processes wrote since it was
    read (written to a temporary file and renamed, so a killed process never leaves half a file)."""
    import json

    path = Path(cache)
    known = json.loads(path.read_text()) if path.is_file() else {}
    known[key] = value
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(known, indent=1))
    os.replace(tmp, path)
    return known


def train_reference(space, ds, archs, *, epochs: int, seeds: int, cache: str, reverse: bool = False) -> None:
    """Train each arch stand-alone for every seed not yet in ``cache`` (the reference of --tau), seed 0 of
    every arch first, so a reference cut short still ranks the most subnets (``reverse``: the last pair first)."""
    import json

    from tinynas.train import TrainBudget, train_graph

    pairs = [(seed, arch) for seed in range(seeds) for arch in archs]
    for seed, arch in reversed(pairs) if reverse else pairs:
        key = _reference_key(arch, epochs, seed)
        if Path(cache).is_file() and key in json.loads(Path(cache).read_text()):
            continue
        t = time.time()
        result = train_graph(space.graph(arch), ds, budget=TrainBudget(epochs=epochs, evaluate_test=False),
                             seed=seed)
        _store(cache, key, float(result.val_accuracy))
        print(f"{space.summary(arch):80s} seed {seed} stand-alone {result.val_accuracy:.3f}  "
              f"{time.time() - t:.1f} s load {os.getloadavg()[0]:.2f}", flush=True)


def kendall_tau(net, ds, space, archs, inherited, epochs: int, dims: list[str], cache: str | None = None,
                seeds: int = 1, out: str | None = None, about: dict | None = None, cached_only: bool = False) -> None:
    """Stand-alone validation accuracy of each arch after ``epochs`` epochs from scratch (the mean over
    ``seeds`` trainings), and Kendall tau against the inherited accuracies (the issue's ranking criterion),
    overall and per sampler; with ``out``, every row and tau as JSON (rewritten after each subnet).
    ``cached_only`` ranks only the archs whose every seed is in ``cache`` and trains nothing."""
    import json

    from scipy.stats import kendalltau

    import numpy as np
    from tinynas.ofa.plan import stride_pattern
    from tinynas.train import TrainBudget, train_graph

    known = json.loads(Path(cache).read_text()) if cache and Path(cache).is_file() else {}
    if cached_only:
        keep = [i for i, a in enumerate(archs) if all(_reference_key(a, epochs, s) in known for s in range(seeds))]
        print(f"ranking the {len(keep)} of {len(archs)} subnets with a cached reference", flush=True)
        archs, inherited = [archs[i] for i in keep], [inherited[i] for i in keep]
        dims = [dims[i] for i in keep if i < len(dims)]
    rows: list[dict] = []

    def taus() -> dict:
        mean = [r["standalone"] for r in rows]
        inh = [r["inherited"] for r in rows]
        found = {"all": kendalltau(inh, mean)}
        for dim in sorted(set(dims), key=dims.index):
            idx = [i for i, r in enumerate(rows) if r["dim"] == dim]
            found[dim] = kendalltau([inh[i] for i in idx], [mean[i] for i in idx])
        out_taus = {k: {"tau": float(v.statistic), "p": float(v.pvalue),
                        "n": len(rows) if k == "all" else sum(r["dim"] == k for r in rows)} for k, v in found.items()}
        if seeds > 1:  # the reference against itself: seed 0 vs seed 1
            t = kendalltau([r["seeds"][0] for r in rows], [r["seeds"][1] for r in rows])
            out_taus["seed0_vs_seed1"] = {"tau": float(t.statistic), "p": float(t.pvalue), "n": len(rows)}
            for s in range(seeds):
                t = kendalltau(inh, [r["seeds"][s] for r in rows])
                out_taus[f"inherited_vs_seed{s}"] = {"tau": float(t.statistic), "p": float(t.pvalue), "n": len(rows)}
        return out_taus

    for i, (arch, acc) in enumerate(zip(archs, inherited)):
        t = time.time()
        accs = []
        for seed in range(seeds):
            key = _reference_key(arch, epochs, seed)
            if key not in known:
                result = train_graph(space.graph(arch), ds,
                                     budget=TrainBudget(epochs=epochs, evaluate_test=False), seed=seed)
                known[key] = float(result.val_accuracy)
                if cache:
                    known = _store(cache, key, known[key])
            accs.append(known[key])
        rows.append({"id": arch.id, "summary": space.summary(arch), "dim": dims[i] if i < len(dims) else "space",
                     "stride_pattern": list(stride_pattern(net.plan(arch))), "inherited": acc,
                     "seeds": accs, "standalone": float(np.mean(accs)), "seconds": round(time.time() - t, 1),
                     "load_average": [round(x, 2) for x in os.getloadavg()]})
        print(f"{space.summary(arch):80s} inherited {acc:.3f} stand-alone {rows[-1]['standalone']:.3f} "
              f"({', '.join(f'{a:.3f}' for a in accs)})  {time.time() - t:.1f} s load {os.getloadavg()[0]:.2f}",
              flush=True)
        if out and len(rows) >= 2:
            Path(out).write_text(json.dumps({**(about or {}), "epochs": epochs, "seeds": seeds,
                                             "rows": rows, "taus": taus()}, indent=1))
    found = taus()
    print(f"Kendall tau over {len(archs)} subnets: {found['all']['tau']:.3f} (p {found['all']['p']:.3f})")
    for key, t in found.items():
        if key != "all":
            print(f"  {key} ({t['n']} subnets): tau {t['tau']:.3f} (p {t['p']:.3f})")
    groups: dict[str, list[dict]] = {}
    for arch, row in zip(archs, rows):
        gone = [str(s) for s in range(1, 6) if int(arch[f"s{s}_depth"]) == 0]
        groups.setdefault(f"w{arch['width']} left out: {'+'.join(gone) or 'none'}", []).append(row)
    print("by width and left-out stages: n, mean inherited / stand-alone (each subnet's pair)")
    for name, members in sorted(groups.items()):
        pairs = ", ".join(f"{r['inherited']:.3f}/{r['standalone']:.3f}" for r in members)
        print(f"  {name:28s} {len(members):2d}  {np.mean([r['inherited'] for r in members]):.3f} / "
              f"{np.mean([r['standalone'] for r in members]):.3f}  ({pairs})")


if __name__ == "__main__":
    main()
