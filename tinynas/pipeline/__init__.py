"""The pipeline: run directories, the journal, staged search, parallel evaluation, deploy, reports, sweeps.

``search(settings=..., out=...)``, ``run(...)`` and ``sweep(...)`` are the entry
points behind ``tinynas search/run/sweep``; ``rebuild(path)`` is ``tinynas report``.
Heavy modules load lazily, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import Any

from tinynas.pipeline.journal import Journal
from tinynas.pipeline.rundir import RunDir
from tinynas.pipeline.settings import RunSettings

__all__ = ["Journal", "RunDir", "RunSettings", "rebuild", "run", "search", "sweep", "sweep_profiles"]


def __getattr__(name: str) -> Any:
    if name in ("run", "search"):
        from tinynas.pipeline import run as _run

        return getattr(_run, name)
    if name in ("sweep", "sweep_profiles"):
        from tinynas.pipeline import sweep as _sweep

        return getattr(_sweep, name)
    if name == "rebuild":
        from tinynas.pipeline.report import rebuild

        return rebuild
    raise AttributeError(name)
