"""How the ofa winner's starting weights decide its fine-tuned accuracy (issue 12's fine-tuned vs from scratch).

For each ofa row of a ``bench_ofa.py`` rows file (board, seed, winner arch, the pipeline's fine-tuned and 20-epoch
from-scratch test accuracies), load that seed's supernet from the cache, extract the winner with its
recalibrated inherited weights, and train it for the final budget (``--epochs``, the pipeline's schedule) from:

- ``inherit``: the inherited weights as they are (what ``tinynas/ofa/evaluate.py`` does);
- ``scratch``: a fresh initialisation (same epochs: what the inherited weights are worth at equal cost);
  ``scratch<N>`` trains it for N epochs instead (``scratch20``: more seeds of the stored from-scratch reference);
- ``sp<L>``: shrink and perturb (``tinynas.ofa.evaluate.shrink_perturb``, what ``--strategy-option
  finetune_keep=L`` does): every convolution and dense kernel becomes ``L * inherited + (1 - L) * fresh``,
  BatchNorm kept.

Each start is trained with ``--train-seeds`` seeds; the table gives the float test accuracy per row and start,
and the mean difference to the stored 20-epoch from-scratch training.

    PYTHONPATH=. .venv/bin/python scripts/bench_ofa_finetune.py --rows benchmarks/ofa/table_glyphs12k_10min_rows.json \\
        --cache /tmp/ofa_table/cache --boards nucleo-l010rb --starts inherit,scratch,sp0.5 --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _supernet(dataset: Any, space: Any, *, cache: Path, seed: int, steps_per_phase: int, max_width: float) -> Any:
    """The cached supernet of ``bench_ofa.py``'s ofa runs for ``seed``; refuses to train a new one."""
    from tinynas.ofa.cache import supernet_dir, supernet_meta
    from tinynas.ofa.shrinking import ShrinkingSchedule, train_supernet
    from tinynas.strategies import strategy_hyperparameters

    schedule = ShrinkingSchedule.scaled(len(dataset.y_train), steps_per_phase=steps_per_phase, max_width=max_width,
                                        subnets_per_step=strategy_hyperparameters("ofa")["subnets_per_step"],
                                        max_train_samples=None, seed=seed)
    meta = supernet_meta(dataset_fingerprint=dataset.fingerprint, space=space.name,
                         input_shape=tuple(space.input_shape), num_classes=space.num_classes,
                         schedule=schedule.to_json())
    folder = supernet_dir(cache, meta)
    if not (folder / "supernet.npz").is_file():
        sys.exit(f"{folder}: no trained supernet for seed {seed}; run bench_ofa.py with --work {cache.parent} first")
    net, _ = train_supernet(dataset=dataset, space=space, schedule=schedule, cache_dir=cache)
    return net


def _start(model: Any, fresh: Any, start: str) -> None:
    """Set ``model``'s starting weights for ``start`` (``fresh`` is the same graph, freshly initialised)."""
    from tinynas.ofa.evaluate import shrink_perturb

    if start.startswith("scratch"):
        model.set_weights(fresh.get_weights())
    elif start != "inherit":
        shrink_perturb(model, fresh, keep=float(start[2:]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", required=True, help="bench_ofa.py rows file (its ofa rows with a scratch entry)")
    p.add_argument("--cache", required=True, help="the cache directory those runs shared (WORK/cache)")
    p.add_argument("--boards", default="nucleo-l010rb,nucleo-l432kc,nano33ble")
    p.add_argument("--seeds", default="0,1,2", help="run seeds (rows) to take")
    p.add_argument("--starts", default="inherit,scratch,sp0.5")
    p.add_argument("--train-seeds", default="0,1")
    p.add_argument("--epochs", type=int, default=10, help="the final budget's epochs (bench_ofa.py's --final-epochs)")
    p.add_argument("--samples", type=int, default=12000)
    p.add_argument("--steps-per-phase", type=int, default=200)
    p.add_argument("--max-width", type=float, default=0.35)
    p.add_argument("--json", required=True, help="results file (resumable: done trainings are skipped)")
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()

    out = Path(args.json)
    results: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    rows = json.loads(Path(args.rows).read_text())
    keys = [f"{b}/ofa/s{s}" for s in args.seeds.split(",") for b in args.boards.split(",")]
    keys = [k for k in keys if k in rows and rows[k].get("scratch")]
    if not args.table_only:
        from tinynas.data.base import load_dataset
        from tinynas.ofa.evaluate import SubnetEvaluator
        from tinynas.space import get_space
        from tinynas.space.arch import Arch
        from tinynas.space.keras_builder import build_keras_model
        from tinynas.train import TrainBudget
        from tinynas.train.trainer import train_keras_model

        dataset = load_dataset("glyphs", seed=0, num_samples=args.samples)
        space = get_space("mcunet", input_shape=dataset.input_shape, num_classes=dataset.num_classes)
        budget = TrainBudget(epochs=args.epochs, evaluate_test=True)
        for seed in sorted({int(k.rsplit("/s", 1)[1]) for k in keys}):
            net = _supernet(dataset, space, cache=Path(args.cache), seed=seed,
                            steps_per_phase=args.steps_per_phase, max_width=args.max_width)
            evaluator = SubnetEvaluator(supernet=net, dataset=dataset, spec=None, seed=seed)
            for key in (k for k in keys if k.endswith(f"/s{seed}")):
                arch = Arch.from_json(rows[key]["arch"])
                inherited, _, stats = evaluator.inherited(arch)
                for start in args.starts.split(","):
                    for train_seed in (int(s) for s in args.train_seeds.split(",")):
                        name = f"{key}/{start}/t{train_seed}"
                        if name in results:
                            continue
                        model = net.extract(arch, stats)
                        _start(model, build_keras_model(space.graph(arch), seed=1000 + train_seed), start)
                        t0 = time.perf_counter()
                        epochs = int(start[len("scratch"):] or args.epochs) if start.startswith("scratch") \
                            else args.epochs
                        r = train_keras_model(model, dataset, budget=replace(budget, epochs=epochs), seed=train_seed)
                        results = json.loads(out.read_text()) if out.is_file() else {}
                        results[name] = {"float": r.test_accuracy, "val": r.val_accuracy, "inherited": inherited,
                                         "seconds": round(time.perf_counter() - t0, 1)}
                        tmp = out.with_name(f".{out.name}.{os.getpid()}")
                        tmp.write_text(json.dumps(results, indent=1))
                        os.replace(tmp, out)
                        print(name, json.dumps(results[name]), flush=True)
    print(table(rows, results, keys, args.starts.split(","), args.epochs))


def table(rows: dict[str, Any], results: dict[str, Any], keys: list[str], starts: list[str], epochs: int) -> str:
    head = "| ofa winner | pipeline fine-tuned | from scratch 20 ep | " + " | ".join(
        s if s[7:].isdigit() else f"{s} {epochs} ep" for s in starts) + " |"
    lines = ["float test %, mean of the training seeds; in brackets the difference to the stored from-scratch "
             "training of bench_ofa.py (20 epochs, one seed)", "",
             head, "|" + "---|" * (3 + len(starts))]
    diffs: dict[str, list[float]] = {s: [] for s in starts}
    for key in keys:
        ref = rows[key]["scratch"]["float"]
        cells = []
        for s in starts:
            got = [v["float"] for n, v in results.items() if n.startswith(f"{key}/{s}/t")]
            if not got:
                cells.append("-")
                continue
            m = statistics.mean(got)
            diffs[s].append(m - ref)
            cells.append(f"{100 * m:.2f} ({100 * (m - ref):+.2f})")
        lines.append(f"| {key} | {100 * rows[key]['float']:.2f} ({100 * (rows[key]['float'] - ref):+.2f}) | "
                     f"{100 * ref:.2f} | " + " | ".join(cells) + " |")
    lines.append("| mean difference | | | " + " | ".join(
        f"{100 * statistics.mean(d):+.2f} (n={len(d)})" if d else "-" for d in diffs.values()) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
