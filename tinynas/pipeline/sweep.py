"""``sweep``: the same run over many boards, sharing every trained candidate.

Accuracy does not depend on the board, only feasibility does: all boards train
through one cache (``<sweep>/cache``), and each board's search starts by being told
the earlier boards' results that fit it (counted in its budget, never retrained).
The cache also keeps what else is board-independent: proxy scores (each arch scored
once, only its feasibility is checked per board) and deploys (a winner shared by two
boards is quantized and validated once; only its budget check and firmware are redone).
A board that fails is recorded and the sweep goes on.

Which board goes first decides what a sweep costs (ORDERS). Measured over the five MCU
boards of ``scripts/bench_search.py`` (real runs, 8 candidates per board) and on
tabulated dscnn tables (``scripts/bench_search_tabular.py --sweep``, 100 seeds, 8-24
candidates), against single runs of each board:

- ``tightest-first`` (default): the board that the fewest of the space's archs fit goes
  first. What it trains fits most roomier boards too, so they start with a full budget
  of results and train little. A sweep costs about one run (0.75x and 0.85x of the mean
  single run measured; 0.87-1.03x tabulated). The roomy boards pick from candidates
  found for tighter ones, and lose a little accuracy: on average over the boards
  0.01-0.05 points on digits and 0.1-0.2 on mnist1d, up to 0.56 on the roomiest.
- ``roomiest-first``: the roomiest board goes first. Its big candidates rarely fit the
  tight boards, so each class of boards searches its own frontier. On average the boards
  are as accurate as in their own runs (within 0.1 point), and a sweep costs about one
  run per class of boards (2.18x and 2.45x measured; 2.1-2.65x tabulated).

With ``--strategy ofa`` the boards share the supernet (trained once into the cache) and the fine-tunes of
winners they have in common, not subnet scores: a subnet scores in about a second, so each board searches with
its whole budget of its own (tinynas.pipeline.stages, search), and the order does not matter. Measured on glyphs
over the five boards above (scripts/bench_ofa_sweep.py, 120 subnets per board, benchmarks/ofa/README.md (o)):
the sweep took 2.26x one single run from a cold cache (1,558 s against 691 s, 428 s of that its supernet;
2.43x before common winners' fine-tunes were cached); each board after the first 190-275 s, and every board
deployed what its own single run did.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tinynas.errors import SearchError, TinyNASError
from tinynas.pipeline.rundir import RunDir, atomic_write_json, read_json
from tinynas.pipeline.settings import RunSettings, resolve
from tinynas.registry import Registry

log = logging.getLogger(__name__)

#: (board -> profile, the space, seed) -> the boards in the order they run
OrderFn = Callable[..., list[str]]
ORDERS: Registry[OrderFn] = Registry("sweep order", error=SearchError)
DEFAULT_ORDER = "tightest-first"


@ORDERS.register("tightest-first")
def tightest_first(profiles: Mapping[str, Any], *, space: Any, seed: int) -> list[str]:
    """Fewest fitting archs first: all archs of a small space (a sample of a large one) through each
    board's cost check. Ties go to less SRAM, then less flash."""
    from tinynas.pipeline.constraints import CostCheck, space_archs

    archs = space_archs(space, np.random.default_rng(seed))
    checks = {b: CostCheck(space=space, profile=p) for b, p in profiles.items()}
    fits = {b: sum(1 for a in archs if check(a)) for b, check in checks.items()}
    return sorted(profiles, key=lambda b: (fits[b], int(profiles[b].sram_budget_bytes),
                                           int(profiles[b].flash_budget_bytes)))


@ORDERS.register("roomiest-first")
def roomiest_first(profiles: Mapping[str, Any], *, space: Any, seed: int) -> list[str]:
    """Most SRAM first, then most flash."""
    return sorted(profiles, key=lambda b: (-int(profiles[b].sram_budget_bytes), -int(profiles[b].flash_budget_bytes)))


@dataclass(frozen=True)
class SweepResult:
    out_dir: Path
    report: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), **self.report}


def sweep_profiles(*, profiles: Sequence[str] | None = None, kind: str | None = None) -> list[str]:
    """The board ids of a sweep: the named ones, or every built-in profile of ``kind``."""
    if profiles:
        ids = [p.strip() for p in profiles if p.strip()]
        if len(set(ids)) != len(ids):
            raise SearchError(f"--profiles names a board twice: {', '.join(ids)}")
        return ids
    if kind:
        from tinynas.hardware import list_profiles

        ids = [p.id for p in list_profiles(kind=kind)]
        if not ids:
            raise SearchError(f"no built-in profile of kind {kind!r}; see `tinynas profiles list`")
        return ids
    raise SearchError("a sweep needs --profiles a,b,c or --kind KIND")


def _board_key(board: str) -> str:
    """The folder name of a board's run (a profile given as a path uses its file stem)."""
    return Path(board).stem if board.endswith(".toml") else board


def sweep(*, settings: RunSettings, profiles: Sequence[str], out: str | Path, deploy: bool = True,
          order: str = DEFAULT_ORDER) -> SweepResult:
    """Run ``settings`` (its ``profile`` is ignored) for each board of ``profiles`` into ``out/<board>/``,
    in the ``order`` of ORDERS.

    Writes ``out/sweep.json`` and ``out/sweep.md`` comparing the boards. Resumes
    like a run. Raises SearchError only for a bad sweep (no boards, another sweep
    in ``out``, an unknown order, space or strategy, a board whose profile does not load, a dataset the space
    cannot take; nothing is written then); a failing board is reported in sweep.json and the rest go on.
    """
    from tinynas.hardware import load_profile
    from tinynas.pipeline.report import write_sweep_report
    from tinynas.pipeline.run import run as run_one, search as search_one

    out = Path(out)
    boards = list(profiles)
    if not boards:
        raise SearchError("a sweep needs at least one board")
    order_fn = ORDERS.get(order)
    config = {"sweep": {"dataset": settings.dataset,
                        **({"dataset_options": dict(settings.dataset_options)} if settings.dataset_options else {}),
                        "space": settings.space, "strategy": settings.strategy,
                        "boards": boards, "order": order, "seed": int(settings.seed), "deploy": bool(deploy),
                        "budget_candidates": settings.candidates, "budget_minutes": settings.budget_minutes,
                        "search_epochs": settings.search_epochs, "final_epochs": settings.final_epochs,
                        **settings.constraints()}}
    started = time.monotonic()
    loaded, unloadable = {}, []
    for board in boards:
        try:
            loaded[board] = settings.constrain(load_profile(board))  # the order sees the command line's budgets
        except TinyNASError as exc:
            unloadable.append(str(exc))
    if unloadable:  # a mistyped board id or a broken profile file: said before any board spends its budget
        raise SearchError("; ".join(unloadable) + "; fix --profiles (nothing was run)")
    dataset = settings.load_dataset()
    # a space, strategy or dataset no board can use is a bad sweep: one clear error, nothing written
    space = resolve(settings.replace(profile=next(iter(loaded))), dataset=dataset).space
    run_order = order_fn(loaded, space=space, seed=int(settings.seed))
    slots = board_slots(settings)  # joins the Ray cluster first: a bad address fails before anything is written
    with RunDir.open(out, config=config) as rd:
        state = read_json(out / "sweep_state.json") or {}
        failures: dict[str, str] = dict(state.get("failures", {}))
        spent = float(state.get("seconds") or 0.0)

        def save() -> None:
            atomic_write_json(out / "sweep_state.json", {
                "dataset": settings.dataset, "dataset_options": dict(settings.dataset_options),
                "space": settings.space, "strategy": settings.strategy,
                "boards": [_board_key(b) for b in boards], "order": order,
                "run_order": [_board_key(b) for b in run_order], "failures": failures,
                "seconds": round(spent + time.monotonic() - started, 3)})

        save()
        shared: list[dict[str, Any]] = []
        cache = str(Path(settings.cache_dir) if settings.cache_dir else out / "cache")
        one = run_one if deploy else search_one
        pending, running = list(run_order), {}
        pool = cf.ThreadPoolExecutor(max_workers=slots, thread_name_prefix="board") if slots > 1 else None

        def start(board: str) -> cf.Future:
            failures.pop(_board_key(board), None)
            kwargs = dict(settings=settings.replace(profile=board, cache_dir=cache), out=out / _board_key(board),
                          dataset=dataset, shared=list(shared))
            if pool is not None:
                return pool.submit(one, **kwargs)
            fut: cf.Future = cf.Future()  # one board at a time: run it here, where Ctrl-C arrives
            try:
                fut.set_result(one(**kwargs))
            except TinyNASError as exc:
                fut.set_exception(exc)
            return fut

        try:
            while pending or running:
                while pending and len(running) < slots:
                    board = pending.pop(0)
                    running[start(board)] = board
                finished, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    key = _board_key(running.pop(fut))
                    try:
                        fut.result()
                        rd.journal.append({"type": "board", "board": key, "event": "done"})
                    except TinyNASError as exc:
                        log.warning("sweep: board %s failed: %s", key, exc)
                        failures[key] = str(exc)
                        rd.journal.append({"type": "board", "board": key, "event": "failed", "error": str(exc)})
                    finally:
                        save()
                    shared.extend(_searched(out / key, key))
        except KeyboardInterrupt:
            if pool is not None:  # the boards still running stop at their next result, journaled as interrupted
                from tinynas.pipeline.ray_backend import interrupt

                interrupt()
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
                save()
        report = write_sweep_report(out)
    return SweepResult(out_dir=out, report=report)


def board_slots(settings: RunSettings) -> int:
    """How many boards run at once: one locally; on Ray as many as the cluster's CPUs keep busy at
    ``workers`` single-threaded trainings each (a 2-CPU instance with --workers 2: one at a time)."""
    if settings.backend != "ray":
        return 1
    from tinynas.pipeline.ray_backend import clear_interrupt, cluster_cpus, connect

    connect(settings.ray_address)
    clear_interrupt()
    return max(1, cluster_cpus() // max(1, int(settings.workers)))


def _searched(run_dir: Path, board: str) -> list[dict[str, Any]]:
    """The candidates a board's search trained itself (not those told by other boards), for the next boards."""
    from tinynas.pipeline.journal import Journal

    if not (run_dir / "journal.jsonl").is_file():
        return []
    return [{**e, "board": board} for e in Journal(run_dir / "journal.jsonl").candidates(stage="search")
            if not e.get("shared_from") and e.get("accuracy") is not None]
