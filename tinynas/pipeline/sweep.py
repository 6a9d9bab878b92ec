"""``sweep``: the same run over many boards, sharing every trained candidate.

Accuracy does not depend on the board, only feasibility does: all boards train
through one cache (``<sweep>/cache``), and each board's search starts by being told
the earlier boards' results that fit it (counted in its budget, never retrained).
The cache also keeps what else is board-independent: proxy scores (each arch scored
once, only its feasibility is checked per board) and deploys (a winner shared by two
boards is quantized and validated once; only its budget check and firmware are redone).
Boards run roomiest first, so the big candidates trained early serve the boards
after. A board that fails is recorded and the sweep goes on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tinynas.errors import SearchError, TinyNASError
from tinynas.pipeline.rundir import RunDir, atomic_write_json, read_json
from tinynas.pipeline.settings import RunSettings

log = logging.getLogger(__name__)


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


def sweep(*, settings: RunSettings, profiles: Sequence[str], out: str | Path, deploy: bool = True) -> SweepResult:
    """Run ``settings`` (its ``profile`` is ignored) for each board of ``profiles`` into ``out/<board>/``.

    Writes ``out/sweep.json`` and ``out/sweep.md`` comparing the boards. Resumes
    like a run. Raises SearchError only for a bad sweep (no boards, another sweep
    in ``out``); a failing board is reported in sweep.json and the rest go on.
    """
    from tinynas.data import load_dataset
    from tinynas.hardware import load_profile
    from tinynas.pipeline.report import write_sweep_report
    from tinynas.pipeline.run import run as run_one, search as search_one

    out = Path(out)
    boards = list(profiles)
    if not boards:
        raise SearchError("a sweep needs at least one board")
    config = {"sweep": {"dataset": settings.dataset, "space": settings.space, "strategy": settings.strategy,
                        "boards": boards, "seed": int(settings.seed), "deploy": bool(deploy),
                        "budget_candidates": settings.candidates, "budget_minutes": settings.budget_minutes,
                        "search_epochs": settings.search_epochs, "final_epochs": settings.final_epochs}}
    started = time.monotonic()
    dataset = load_dataset(settings.dataset, seed=int(settings.seed))
    with RunDir.open(out, config=config) as rd:
        state = read_json(out / "sweep_state.json") or {}
        failures: dict[str, str] = dict(state.get("failures", {}))
        spent = float(state.get("seconds") or 0.0)

        def save() -> None:
            atomic_write_json(out / "sweep_state.json", {
                "dataset": settings.dataset, "space": settings.space, "strategy": settings.strategy,
                "boards": [_board_key(b) for b in boards], "failures": failures,
                "seconds": round(spent + time.monotonic() - started, 3)})

        save()
        # Roomiest first: its (bigger) candidates fit many later boards, whose searches then start ahead.
        order = []
        for board in boards:
            try:
                prof = load_profile(board)
                order.append((-int(prof.sram_budget_bytes), -int(prof.flash_budget_bytes), board))
            except TinyNASError as exc:
                failures[_board_key(board)] = str(exc)
                rd.journal.append({"type": "board", "board": board, "event": "failed", "error": str(exc)})
        order.sort()
        shared: list[dict[str, Any]] = []
        cache = str(Path(settings.cache_dir) if settings.cache_dir else out / "cache")
        for _, _, board in order:
            key = _board_key(board)
            failures.pop(key, None)
            board_settings = settings.replace(profile=board, cache_dir=cache)
            one = run_one if deploy else search_one
            try:
                one(settings=board_settings, out=out / key, dataset=dataset, shared=shared)
                rd.journal.append({"type": "board", "board": key, "event": "done"})
            except TinyNASError as exc:
                log.warning("sweep: board %s failed: %s", key, exc)
                failures[key] = str(exc)
                rd.journal.append({"type": "board", "board": key, "event": "failed", "error": str(exc)})
            finally:
                save()
            if (out / key / "journal.jsonl").is_file():
                from tinynas.pipeline.journal import Journal

                for e in Journal(out / key / "journal.jsonl").candidates(stage="search"):
                    if not e.get("shared_from") and e.get("accuracy") is not None:
                        shared.append({**e, "board": key})
        report = write_sweep_report(out)
    return SweepResult(out_dir=out, report=report)
