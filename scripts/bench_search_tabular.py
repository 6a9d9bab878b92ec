"""Search strategies on a tabulated space: every feasible arch trained once, then a hundred seeds per strategy.

Real training decides nothing twice: each arch of the space that fits the board is
trained once at the pipeline's search fidelity and once at final fidelity (seed 0,
through the shared result cache, so a second run of this script trains nothing).
Then every strategy runs its real ask/tell code against that table, many seeds
each, with the pipeline's rules: a candidate budget, repeats told again and not
counted, ``staged`` seeded by the real prefilter with the pipeline's settings, the top
``final_top_k`` by search accuracy trained in full and the winner picked on final
validation accuracy. What is reported is the winner's final test accuracy (float):
with training noise fixed, a hundred seeds separate strategies that three seeds of
``scripts/bench_search.py`` cannot. Tabulating the dscnn space takes ~7 min for a
32 KB board and 30-50 min for a roomy one (bigger archs) on 2 cores; the simulations, ~2 min.

    .venv/bin/python scripts/bench_search_tabular.py                       # digits + mnist1d, tight + roomy
    .venv/bin/python scripts/bench_search_tabular.py --datasets mnist1d --boards nucleo-l412kb --budgets 8
    .venv/bin/python scripts/bench_search_tabular.py --sweep nucleo-h743zi,nano33ble,esp32s3-devkitc,pico,nucleo-l432kc

With ``--sweep``, the table holds every arch that fits any of the boards, and the
comparison is the one ``tinynas.pipeline.sweep`` documents: each board order of a
sweep against single runs of each board, in cost (distinct trainings' seconds plus a
deploy per distinct winner) and in each board's final test accuracy (paired by seed).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

def tabulate(*, dataset: Any, space: Any, check: Any, settings: Any, cache_dir: Path, workers: int,
             final_epochs: int) -> dict[str, dict[str, Any]]:
    """arch id -> {arch, search, final (journal fields), cost}, for every arch of ``space`` that fits."""
    from tinynas.pipeline.constraints import ENUMERATE_LIMIT, space_archs
    from tinynas.pipeline.evaluate import EvalJob, Evaluator, WorkerSpec
    from tinynas.train import TrainBudget

    if space.size() > ENUMERATE_LIMIT:  # a larger space is sampled by scripts/bench_search.py instead
        sys.exit(f"space {space.name} has {space.size()} archs, more than {ENUMERATE_LIMIT} to tabulate; "
                 "use scripts/bench_search.py for it")
    archs = {space.canonical(a).id: space.canonical(a) for a in space_archs(space, np.random.default_rng(0))}
    feasible = [a for a in archs.values() if check(a)]
    spec = WorkerSpec(dataset=dataset.name, dataset_seed=0, space=space.name, input_shape=tuple(dataset.input_shape),
                      num_classes=dataset.num_classes, cache_dir=str(cache_dir))
    n_train = len(dataset.y_train)
    budgets = {"search": settings.search_budget(train_samples=n_train),
               "final": TrainBudget(epochs=final_epochs, evaluate_test=True).on_train_set(n_train)}
    table: dict[str, dict[str, Any]] = {a.id: {"arch": a, "cost": check.cost(a)} for a in feasible}
    started = time.perf_counter()
    with Evaluator(spec=spec, workers=workers, dataset=dataset if workers == 1 else None) as ev:
        futures = {ev.submit(EvalJob(arch=a, budget=b, seed=0, fidelity=f)): (a.id, f)
                   for a in feasible for f, b in budgets.items()}
        for i, (fut, (arch_id, fidelity)) in enumerate(futures.items(), 1):
            table[arch_id][fidelity] = fut.result()
            if i % 50 == 0 or i == len(futures):
                print(f"  tabulating {dataset.name} on {check.profile.id}: {i}/{len(futures)} trainings "
                      f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    return table


_SEEDS: dict[tuple[str, str, int, int], list[Any]] = {}


def staged_seeds(*, seed: int, budget: int, space: Any, dataset: Any, profile: Any, settings: Any) -> list[Any]:
    """The real prefilter's seeds for ``staged``, as the pipeline picks them (memoized per board and seed)."""
    from tinynas.proxies.prefilter import prefilter
    from tinynas.strategies.staged import seeds_for_budget

    key = (dataset.name, profile.id, seed, budget)
    if key not in _SEEDS:
        pf = prefilter(space=space, profile=profile, dataset_or_batch=dataset,
                       n_candidates=settings.prefilter_candidates, k=settings.prefilter_keep, seed=seed, progress=False)
        _SEEDS[key] = seeds_for_budget([k.arch for k in pf.kept], budget)
    return _SEEDS[key]


def simulate(name: str, *, seed: int, budget: int, space: Any, dataset: Any, profile: Any, settings: Any,
             table: dict[str, dict[str, Any]], shared: list[str] = ()) -> dict[str, Any]:
    """One search with the real strategy against the table (the archs that fit this board): the winner's
    final test accuracy, the training seconds spent until the search found its best candidate, the archs
    it trained, its top few and its winner. ``shared``: archs earlier boards of a sweep trained, told
    first (those that fit, best first) and counted in the budget, as the sweep does."""
    from tinynas.pipeline.stages import cost_fields, top_candidates
    from tinynas.strategies import Observation, make_strategy

    hyper: dict[str, Any] = {}
    if name == "staged":
        hyper["seed_archs"] = staged_seeds(seed=seed, budget=budget, space=space, dataset=dataset, profile=profile,
                                           settings=settings)
    strategy = make_strategy(name, space=space, seed=seed, feasible=lambda a: a.id in table, **hyper)
    entries: dict[str, dict[str, Any]] = {}
    own: list[str] = []
    best, at, spent, repeats = -1.0, 0.0, 0.0, 0

    def observe(arch_id: str) -> Any:
        row = table[arch_id]
        return Observation(accuracy=row["search"]["accuracy"], latency_ms=row["cost"].latency_ms,
                           arena_bytes=row["cost"].arena_bytes, flash_bytes=row["cost"].flash_bytes)

    def tell(arch: Any) -> None:
        nonlocal best, at
        obs = observe(arch.id)
        entries[arch.id] = {"id": arch.id, "accuracy": obs.accuracy, "cost": cost_fields(table[arch.id]["cost"])}
        if obs.accuracy > best:
            best, at = obs.accuracy, spent
        strategy.tell(arch, obs)

    for arch_id in sorted((i for i in shared if i in table), key=lambda i: -table[i]["search"]["accuracy"]):
        if len(entries) >= budget:
            break
        tell(table[arch_id]["arch"])
    while len(entries) < budget and repeats < 200:  # the search stage's loop, one candidate at a time
        asked = strategy.ask(1)
        if not asked:
            break
        arch = asked[0]
        if arch.id in entries:
            strategy.tell(arch, observe(arch.id))
            repeats += 1
            continue
        repeats = 0
        spent += table[arch.id]["search"]["train_seconds"]
        own.append(arch.id)
        tell(arch)
    top = [e["id"] for e in top_candidates(list(entries.values()), int(settings.final_top_k))]
    winner = max(top, key=lambda i: table[i]["final"]["accuracy"])
    return {"test": table[winner]["final"]["test_accuracy"], "seconds": at, "own": own, "top": top,
            "winner": winner}


def simulate_sweep(order: list[str], *, seed: int, budget: int, space: Any, dataset: Any, profiles: dict[str, Any],
                   settings: Any, tables: dict[str, dict[str, dict[str, Any]]],
                   deploy_seconds: float) -> tuple[dict[str, float], float]:
    """``staged`` on each board in ``order``, each told the earlier boards' own candidates: each board's final
    test accuracy and the sweep's cost (training seconds of every distinct search and final training, plus
    ``deploy_seconds`` per distinct winner)."""
    shared: list[str] = []
    finals: set[str] = set()
    winners: set[str] = set()
    accs: dict[str, float] = {}
    for board in order:
        r = simulate("staged", seed=seed, budget=budget, space=space, dataset=dataset, profile=profiles[board],
                     settings=settings, table=tables[board], shared=shared)
        accs[board] = r["test"]
        shared += r["own"]
        finals.update(r["top"])
        winners.add(r["winner"])
    rows = {i: row for t in tables.values() for i, row in t.items()}
    cost = (sum(rows[i]["search"]["train_seconds"] for i in set(shared))
            + sum(rows[i]["final"]["train_seconds"] for i in finals) + deploy_seconds * len(winners))
    return accs, cost


def sweep_table(args: Any, *, dataset: Any, space: Any, cache_root: Path) -> None:
    """Both sweep orders against single runs of each board, on the tabulated archs of every sweep board."""
    from tinynas.hardware import load_profile
    from tinynas.pipeline.constraints import CostCheck
    from tinynas.pipeline.settings import RunSettings
    from tinynas.pipeline.sweep import ORDERS

    boards = args.sweep.split(",")
    profiles = {b: load_profile(b) for b in boards}
    settings = RunSettings(profile=boards[0], dataset=dataset.name, space=args.space)
    tables = {b: tabulate(dataset=dataset, space=space, check=CostCheck(space=space, profile=p), settings=settings,
                          cache_dir=cache_root / dataset.name, workers=args.workers, final_epochs=args.final_epochs)
              for b, p in profiles.items()}
    orders = {name: ORDERS.get(name)(profiles, space=space, seed=0) for name in ORDERS.names()}
    print(f"\n{dataset.name}: sweep over {', '.join(boards)} against single runs of each board (staged, "
          f"top {settings.final_top_k} trained in full, {args.deploy_seconds:.0f} s per distinct deploy, "
          f"{args.seeds} seeds); accuracy: the sweep's final test accuracy minus the single run's, same seed")
    print(f"{'budget':>6} {'order':16} {'cost / mean single':>18} {'accuracy diff':>18}  per board")
    for budget in [int(b) for b in args.budgets.split(",")]:
        singles = []
        for seed in range(args.seeds):
            runs = {b: simulate_sweep([b], seed=seed, budget=budget, space=space, dataset=dataset, profiles=profiles,
                                      settings=settings, tables=tables, deploy_seconds=args.deploy_seconds)
                    for b in boards}
            singles.append(({b: r[0][b] for b, r in runs.items()}, np.mean([r[1] for r in runs.values()])))
        base_cost = np.mean([c for _, c in singles])
        for name, order in orders.items():
            res = [simulate_sweep(order, seed=seed, budget=budget, space=space, dataset=dataset, profiles=profiles,
                                  settings=settings, tables=tables, deploy_seconds=args.deploy_seconds)
                   for seed in range(args.seeds)]
            d = np.array([[r[0][b] - singles[s][0][b] for b in boards] for s, r in enumerate(res)])
            per_seed = d.mean(axis=1)
            cost = np.mean([c for _, c in res])
            print(f"{budget:>6} {name:16} {cost / base_cost:>18.2f} "
                  f"{per_seed.mean():>+9.4f} +- {per_seed.std(ddof=1) / np.sqrt(len(per_seed)):.4f}  "
                  + " ".join(f"{b} {v:+.4f}" for b, v in zip(boards, d.mean(axis=0))), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,mnist1d")
    parser.add_argument("--boards", default="nucleo-l412kb,nucleo-h743zi",
                        help="a tight (32 KB arena) and a roomy (480 KB) board")
    parser.add_argument("--space", default="dscnn")
    parser.add_argument("--strategies", default="random,evolution,reinforce,staged")
    parser.add_argument("--budgets", default="8,16,24", help="trained candidates per search")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--final-epochs", type=int, default=6,
                        help="final fidelity of the table (the pipeline's 20 would triple the tabulation time)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", default=None, help="training cache (default: $TINYNAS_HOME/bench-tabular)")
    parser.add_argument("--sweep", default=None, metavar="BOARDS",
                        help="instead: the sweep orders against single runs over these boards (comma-separated)")
    parser.add_argument("--deploy-seconds", type=float, default=7.0,
                        help="cost of one int8 deploy in a sweep's cost (7-10 s in real runs' journals)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for noisy in ("tinynas", "absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    from tinynas.data import load_dataset
    from tinynas.data.cache import tinynas_home
    from tinynas.hardware import load_profile
    from tinynas.pipeline.constraints import CostCheck
    from tinynas.pipeline.settings import RunSettings
    from tinynas.space import get_space

    cache_root = Path(args.cache) if args.cache else tinynas_home() / "bench-tabular"
    strategies = [s for s in args.strategies.split(",") if s]
    budgets = [int(b) for b in args.budgets.split(",")]
    for ds_name in args.datasets.split(","):
        dataset = load_dataset(ds_name, seed=0)
        space = get_space(args.space, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
        if args.sweep:
            sweep_table(args, dataset=dataset, space=space, cache_root=cache_root)
            continue
        for board in args.boards.split(","):
            profile = load_profile(board)
            settings = RunSettings(profile=board, dataset=ds_name, space=args.space)
            check = CostCheck(space=space, profile=profile)
            table = tabulate(dataset=dataset, space=space, check=check, settings=settings,
                             cache_dir=cache_root / ds_name, workers=args.workers, final_epochs=args.final_epochs)
            finals = np.array([r["final"]["test_accuracy"] for r in table.values()])
            print(f"\n{ds_name} on {board}: {len(table)} of {space.size()} {args.space} archs fit; final test accuracy "
                  f"over them: best {finals.max():.3f}, median {np.median(finals):.3f}, worst {finals.min():.3f} "
                  f"(search fidelity {settings.search_epochs} epochs x {settings.search_samples} samples, final "
                  f"{args.final_epochs} epochs, top {settings.final_top_k} trained in full; {args.seeds} seeds)")
            print(f"{'budget':>6} {'strategy':10} {'final test acc':>18} {'regret':>7} {'vs random (paired)':>22} "
                  f"{'W/T/L':>10} {'train s to best':>16}")
            for budget in budgets:
                runs = {name: [simulate(name, seed=s, budget=budget, space=space, dataset=dataset, profile=profile,
                                        settings=settings, table=table) for s in range(args.seeds)]
                        for name in strategies}
                base = np.array([r["test"] for r in runs.get("random", [])])
                for name, results in runs.items():
                    acc = np.array([r["test"] for r in results])
                    versus, wtl = "", ""
                    if name != "random" and len(base):
                        d = acc - base
                        versus = f"{d.mean():+.4f} +- {d.std(ddof=1) / np.sqrt(len(d)):.4f}"
                        wtl = f"{(d > 0).sum()}/{(d == 0).sum()}/{(d < 0).sum()}"
                    seconds = np.mean([r["seconds"] for r in results])
                    regret = finals.max() - acc.mean()
                    print(f"{budget:>6} {name:10} {acc.mean():>10.4f} ({acc.std():.3f}) {regret:>7.4f} "
                          f"{versus:>22} {wtl:>10} {seconds:>16.1f}", flush=True)


if __name__ == "__main__":
    main()
