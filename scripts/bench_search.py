"""Search strategies at equal budget on real training, against KerasTuner, and a sweep against a single run.

For each dataset x board x seed: the pipeline's ``search`` with each strategy
(random, evolution, reinforce, staged) and KerasTuner's RandomSearch and Hyperband
oracles over the same space (hp.Choice per decision, infeasible archs rejected by the
same cost check before training, trained by the same trainer), each with the same
number of trained candidates at the pipeline's search fidelity; then, as the pipeline
does, the top 3 of every run are trained in full, the best on validation wins, and its
int8 accuracy is measured in the TFLite Micro interpreter. Prints the mean over seeds
of: best search (low-fidelity, float) validation accuracy, int8 test accuracy of the
winner (and its per-seed difference to random's: same seed, same training noise), and
the training seconds spent until the best candidate was found (the prefilter's time
included for staged). All trainings share one result cache, so the same arch at the
same budget and seed is trained once for every method; the seconds counted are those
of the original training. Three seeds cannot resolve differences of a point: the
tabulated benchmark (scripts/bench_search_tabular.py) runs a hundred. Finally: wall time and
each board's int8 accuracy of a sweep over 5 MCU boards in each order of
tinynas.pipeline.sweep.ORDERS, against single runs of each of those boards (fresh caches).

    .venv/bin/python scripts/bench_search.py --quick      # ~30 min strategies + ~9 min sweep on 2 cores
    .venv/bin/python scripts/bench_search.py --quick --strategies , --tuners "" --sweep-datasets digits,mnist1d  # 23 min
    .venv/bin/python scripts/bench_search.py --quick --boards nucleo-l412kb --tuners "" --no-sweep  # ~6 min
    .venv/bin/python scripts/bench_search.py --seeds 3 --budget 24 --strategies random,evolution,reinforce,staged
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

SWEEP_BOARDS = ("nucleo-h743zi", "nano33ble", "esp32s3-devkitc", "pico", "nucleo-l432kc")


def time_to_best(entries: list[dict[str, Any]]) -> tuple[float, float, int]:
    """(best accuracy, training seconds spent up to and including its first occurrence, trainings)."""
    best, spent, at = -1.0, 0.0, 0.0
    for e in entries:
        spent += float(e.get("train_seconds") or 0.0)
        if e.get("accuracy") is not None and e["accuracy"] > best:
            best, at = float(e["accuracy"]), spent
    return best, at, len(entries)


def int8_of(model_path: Path, dataset: Any, memo: dict, key: str) -> float:
    """int8 test accuracy in TFLite Micro of a trained .keras model (memoized by arch and dataset)."""
    if key in memo:
        return memo[key]
    import keras

    from tinynas.deploy.interpreter import int8_accuracy
    from tinynas.deploy.quantize import quantize_int8
    from tinynas.train import fit_inputs

    model = keras.saving.load_model(model_path, compile=False)
    shape = tuple(int(d) for d in model.input_shape[1:])
    fit = dict(dataset=dataset.name, fingerprint=dataset.fingerprint)
    x_train = fit_inputs(dataset.x_train, shape, split="train", **fit)
    x_test = fit_inputs(dataset.x_test, shape, split="test", **fit)
    data = quantize_int8(model, representative=x_train[:200])
    memo[key] = int8_accuracy(data, x=x_test, y=dataset.y_test)
    return memo[key]


def run_pipeline(strategy: str, *, dataset: Any, board: str, seed: int, args: Any, root: Path,
                 memo: dict) -> dict[str, Any]:
    from tinynas.pipeline.journal import Journal
    from tinynas.pipeline.run import search

    out = root / dataset.name / board / f"{strategy}-s{seed}"
    settings = base_settings(args, dataset=dataset, board=board).replace(strategy=strategy, seed=seed)
    result = search(settings=settings, out=out, dataset=dataset)
    journal = Journal(out / "journal.jsonl")
    best, at, n = time_to_best(journal.candidates(stage="search"))
    events = {(e["stage"], e["event"]): e["time"] for e in journal.events(stage="prefilter")}
    if ("prefilter", "done") in events:
        at += events[("prefilter", "done")] - events[("prefilter", "start")]
    win = result.summary["winner"]
    return {"best": best, "seconds": at, "trainings": n,
            "int8": int8_of(out / "model" / "model.keras", dataset, memo, f"{dataset.name}:{win['id']}:{seed}")}


def base_settings(args: Any, *, dataset: Any, board: str) -> Any:
    """The pipeline's settings for every method: its search fidelity, final training and top-k."""
    from tinynas.pipeline.settings import RunSettings

    return RunSettings(profile=board, dataset=dataset.name, space=args.space, budget_candidates=args.budget,
                       search_epochs=args.search_epochs, search_samples=args.search_samples,
                       final_epochs=args.final_epochs, cache_dir=str(args.cache_root / dataset.name))


def run_kerastuner(kind: str, *, dataset: Any, board: str, seed: int, args: Any, root: Path,
                   memo: dict) -> dict[str, Any]:
    """KerasTuner's oracle proposes, our cost check rejects infeasible archs untrained, our trainer trains."""
    import keras_tuner as kt

    from tinynas.hardware import load_profile
    from tinynas.pipeline.constraints import CostCheck
    from tinynas.space import get_space
    from tinynas.space.arch import Arch
    from tinynas.train import TrainBudget, TrainCache, train_graph

    space = get_space(args.space, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
    check = CostCheck(space=space, profile=load_profile(board))
    hp = kt.HyperParameters()
    for d in space.decisions():
        hp.Choice(d.name, list(d.options))
    objective = kt.Objective("val_accuracy", "max")
    if kind == "kt-hyperband":
        oracle = kt.oracles.HyperbandOracle(objective=objective, max_epochs=3 * args.search_epochs, factor=3,
                                            hyperband_iterations=100, seed=seed, hyperparameters=hp,
                                            max_consecutive_failed_trials=10_000)
    else:
        oracle = kt.oracles.RandomSearchOracle(objective=objective, max_trials=100_000, seed=seed,
                                               hyperparameters=hp, max_consecutive_failed_trials=10_000)
    oracle.verbose = 0
    oracle._set_project_dir(str(root / "kt" / dataset.name / board), f"{kind}-s{seed}")
    settings = base_settings(args, dataset=dataset, board=board)
    cache = TrainCache(settings.cache_dir)
    entries, rejected = [], 0
    while len(entries) < args.budget and rejected < 50 * args.budget:
        trial = oracle.create_trial(f"bench-{seed}")
        if trial.status == "STOPPED":
            break
        values = trial.hyperparameters.values
        arch = Arch.from_dict(space.name, {d.name: values[d.name] for d in space.decisions()})
        if not space.contains(arch) or not check(arch):
            rejected += 1
            trial.status = "INVALID"  # the same hard constraint: never trained
            oracle.end_trial(trial)
            continue
        epochs = int(values.get("tuner/epochs", settings.search_epochs))
        budget = TrainBudget.low_fidelity(epochs=epochs, max_train_samples=settings.search_samples).on_train_set(
            len(dataset.y_train))
        result = train_graph(space.graph(arch), dataset, budget=budget, seed=seed, cache=cache, arch_id=arch.id)
        oracle.update_trial(trial.trial_id, {"val_accuracy": result.val_accuracy})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        entries.append({"arch": arch, "accuracy": result.val_accuracy, "train_seconds": result.train_seconds})
    best, at, n = time_to_best(entries)
    # The pipeline's final stage: the top k by search accuracy trained in full, the best on validation wins.
    from tinynas.pipeline.evaluate import EvalJob, WorkerSpec, train_job
    from tinynas.pipeline.stages import top_candidates

    spec = WorkerSpec(dataset=dataset.name, dataset_seed=0, space=args.space, input_shape=tuple(dataset.input_shape),
                      num_classes=dataset.num_classes, cache_dir=str(settings.cache_dir))
    ranked = top_candidates([{"id": e["arch"].id, "accuracy": e["accuracy"], "arch": e["arch"],
                              "cost": {"latency_ms": check.cost(e["arch"]).latency_ms}} for e in entries],
                            settings.final_top_k)
    finals = []
    for e in ranked:
        path = root / "kt-models" / f"{e['id']}-s{seed}.keras"
        job = EvalJob(arch=e["arch"], budget=settings.final_budget(train_samples=len(dataset.y_train)), seed=seed,
                      fidelity="final", model_path=str(path))
        finals.append((train_job(spec, job, dataset)["accuracy"], e["id"], path))
    _, winner_id, path = max(finals, key=lambda f: f[0])
    return {"best": best, "seconds": at, "trainings": n,
            "int8": int8_of(path, dataset, memo, f"{dataset.name}:{winner_id}:{seed}")}


def bench_sweep(args: Any, root: Path, ds_name: str) -> dict[str, Any]:
    """Wall time and per-board int8 accuracy of single runs of each board, and of a sweep in each order."""
    from tinynas.data import load_dataset
    from tinynas.pipeline.run import run
    from tinynas.pipeline.sweep import ORDERS, sweep

    dataset = load_dataset(ds_name, seed=0)
    settings = base_settings(args, dataset=dataset, board=SWEEP_BOARDS[1]).replace(cache_dir=None)
    single: dict[str, tuple[float, float]] = {}
    for board in SWEEP_BOARDS:  # each board on its own, fresh cache: what a sweep replaces
        t0 = time.perf_counter()
        result = run(settings=settings.replace(profile=board, cache_dir=str(root / f"{ds_name}-single-cache-{board}")),
                     out=root / f"{ds_name}-single-{board}", dataset=dataset)
        single[board] = (time.perf_counter() - t0, result.summary["winner"]["int8_accuracy"])
        print(f"  sweep bench {ds_name}: single {board} {single[board]}", file=sys.stderr, flush=True)
    sweeps: dict[str, tuple[float, dict[str, Any], list[str]]] = {}
    for order in ORDERS.names():
        t0 = time.perf_counter()
        report = sweep(settings=settings, profiles=list(SWEEP_BOARDS), out=root / f"{ds_name}-sweep-{order}",
                       order=order).report
        sweeps[order] = (time.perf_counter() - t0, {b["board"]: b for b in report["boards"]}, report["run_order"])
        print(f"  sweep bench {ds_name}: {order} {sweeps[order][0]:.0f} s", file=sys.stderr, flush=True)
    return {"single": single, "sweeps": sweeps}


def print_sweep(ds_name: str, bench: dict[str, Any]) -> None:
    single, sweeps = bench["single"], bench["sweeps"]
    times = [t for t, _ in single.values()]
    mean = statistics.mean(times)
    print(f"\nsweep over {len(SWEEP_BOARDS)} MCU boards vs a single run (`run`: search + final + int8 deploy + "
          f"firmware) of each board, {ds_name}, same settings, fresh caches, TensorFlow already imported; "
          f"int8 test accuracy in TFLite Micro")
    print(f"{'board':16} {'single s':>9} {'single int8':>12} " + " ".join(f"{o + ' int8':>22}" for o in sweeps))
    for board, (t, acc) in single.items():
        cells = []
        for _, rows, _ in sweeps.values():
            other = rows[board].get("int8_accuracy")
            cells.append(f"{other:.4f} ({other - acc:+.4f})" if other is not None else rows[board]["status"])
        print(f"{board:16} {t:>8.0f}s {acc:>12.4f} " + " ".join(f"{c:>22}" for c in cells))
    print(f"mean single {mean:.0f} s, slowest {max(times):.0f} s, sum {sum(times):.0f} s")
    print(f"{'order':16} {'sweep s':>8} {'/ mean single':>14} {'/ slowest':>10} {'/ sum':>6} {'mean int8 diff':>15}  "
          "run order")
    for order, (t, rows, run_order) in sweeps.items():
        diffs = [rows[b]["int8_accuracy"] - single[b][1] for b in single if rows[b].get("int8_accuracy") is not None]
        print(f"{order:16} {t:>7.0f}s {t / mean:>14.2f} {t / max(times):>10.2f} {t / sum(times):>6.2f} "
              f"{statistics.mean(diffs):>+15.4f}  {', '.join(run_order)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small defaults (8 candidates, random+staged+KerasTuner)")
    parser.add_argument("--datasets", default="digits,mnist1d")
    parser.add_argument("--boards", default="nucleo-l412kb,nucleo-h743zi",
                        help="a tight (32 KB arena) and a roomy (480 KB) board")
    parser.add_argument("--strategies", default=None)
    parser.add_argument("--tuners", default="kt-random,kt-hyperband")
    parser.add_argument("--space", default="dscnn")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=None, help="trained candidates per run")
    parser.add_argument("--search-epochs", type=int, default=3, help="the pipeline's default")
    parser.add_argument("--search-samples", type=int, default=1000, help="the pipeline's default")
    parser.add_argument("--final-epochs", type=int, default=None)
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--sweep-datasets", default="digits", help="datasets of the sweep comparison")
    parser.add_argument("--out", default=None, help="keep the run directories here (default: a temp folder)")
    args = parser.parse_args()
    args.strategies = args.strategies or ("random,staged" if args.quick else "random,evolution,reinforce,staged")
    args.budget = args.budget or (8 if args.quick else 24)
    args.final_epochs = args.final_epochs or (6 if args.quick else 20)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for noisy in ("tinynas", "absl", "tensorflow", "keras_tuner"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    from tinynas.data import load_dataset

    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_search-"))
    args.cache_root = root / "cache"
    methods = [m for m in args.strategies.split(",") if m] + [m for m in args.tuners.split(",") if m]
    memo: dict[str, float] = {}
    rows = []
    started = time.perf_counter()
    for ds_name in args.datasets.split(","):
        dataset = load_dataset(ds_name, seed=0)
        for board in args.boards.split(","):
            for method in methods:
                results = []
                for seed in range(args.seeds):
                    fn = run_kerastuner if method.startswith("kt-") else run_pipeline
                    results.append(fn(method, dataset=dataset, board=board, seed=seed, args=args, root=root,
                                      memo=memo))
                    print(f"  {ds_name:8} {board:14} {method:13} seed {seed}: {results[-1]}", file=sys.stderr,
                          flush=True)
                rows.append((ds_name, board, method, results))
    search_time = time.perf_counter() - started

    print(f"\nspace {args.space}; {args.budget} trained candidates per run ({args.search_epochs} epochs on "
          f"{args.search_samples} samples), top 3 trained {args.final_epochs} epochs; {args.seeds} seeds; "
          f"mean (min-max) over seeds; int8 vs random: mean of the per-seed differences, wins/ties/losses")
    print(f"{'dataset':8} {'board':14} {'method':13} {'best val acc (float, low-fi)':>30} "
          f"{'int8 test acc (TFLM)':>24} {'int8 vs random':>15} {'W/T/L':>6} {'train s to best':>16}")
    baseline = {(d, b): [r["int8"] for r in res] for d, b, m, res in rows if m == "random"}
    for ds_name, board, method, results in rows:
        def stat(key: str, fmt: str) -> str:
            vals = [r[key] for r in results]
            return f"{format(statistics.mean(vals), fmt)} ({format(min(vals), fmt)}-{format(max(vals), fmt)})"

        versus, wtl = "", ""
        if method != "random" and (ds_name, board) in baseline:
            diffs = [r["int8"] - b for r, b in zip(results, baseline[(ds_name, board)])]
            versus = f"{statistics.mean(diffs):+.4f}"
            wtl = f"{sum(d > 0 for d in diffs)}/{sum(d == 0 for d in diffs)}/{sum(d < 0 for d in diffs)}"
        print(f"{ds_name:8} {board:14} {method:13} {stat('best', '.3f'):>30} {stat('int8', '.3f'):>24} "
              f"{versus:>15} {wtl:>6} {stat('seconds', '.0f'):>16}")
    print(f"(strategy table: {search_time:.0f} s wall)")
    if not args.no_sweep:
        for ds_name in args.sweep_datasets.split(","):
            print_sweep(ds_name, bench_sweep(args, root, ds_name))
    print(f"\nrun directories: {root}")


if __name__ == "__main__":
    main()
