"""``estimate``: the cost model's one entry point, from a Graph (and a profile) to a ``Cost``.

Prefilter, search strategies and `tinynas estimate` call it for every
candidate, so it imports no TensorFlow and stays fast (hundreds of archs per
second). It costs the converter's view of the graph (``cost/convert.py``):
MACs and parameters (``counts``), flash (``flash``), TFLM arena (``arena``) and
latency on the profile (``latency``), then checks each budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tinynas.cost.arena import arena_bytes
from tinynas.cost.convert import converter_view
from tinynas.cost.counts import count_params, graph_work
from tinynas.cost.flash import flash_bytes
from tinynas.cost.latency import latency_ms
from tinynas.cost.types import BudgetCheck, Cost
from tinynas.errors import CostError
from tinynas.space.graph import Graph

if TYPE_CHECKING:
    from pathlib import Path

    from tinynas.hardware.profile import HardwareProfile


def estimate(
    graph: Graph,
    *,
    profile: "HardwareProfile | None" = None,
    latency_target_ms: float | None = None,
    flash_bytes_override: int | None = None,
    converted: bool = False,
) -> Cost:
    """MACs, parameters, flash and arena bytes of ``graph``; with a profile also latency and
    whether SRAM, flash and latency fit (``Cost.checks``).

    ``latency_target_ms`` overrides the profile's target. ``flash_bytes_override``
    replaces the flash estimate with a known size (the real file when costing a
    ``.tflite``). ``converted=True`` says the graph was read from a ``.tflite``
    file, so it already has the converter's fused ops and op order; otherwise
    the graph is first put in that form (``cost/convert.py``). Raises CostError
    for a graph the model cannot cost.
    """
    if not graph.ops:
        raise CostError(f"graph {graph.name!r} has no operators")
    try:
        g = graph if converted else converter_view(graph)
        work = graph_work(g)
        macs = sum(w.macs for w in work)
        params = count_params(g)
        flash = flash_bytes(g) if flash_bytes_override is None else int(flash_bytes_override)
        arena = arena_bytes(g)
    except (KeyError, IndexError) as exc:
        raise CostError(f"graph {graph.name!r} is malformed: missing tensor or operand {exc}") from None
    if profile is None:
        return Cost(macs=macs, params=params, flash_bytes=flash, arena_bytes=arena)
    lat = _latency_ms(g, work, profile)
    target = profile.latency_target_ms if latency_target_ms is None else latency_target_ms
    checks = (
        BudgetCheck("sram", arena, profile.sram_budget_bytes),
        BudgetCheck("flash", flash, profile.flash_budget_bytes),
        BudgetCheck("latency", lat, target),
    ) + ((BudgetCheck("macs", macs, profile.max_macs),) if profile.max_macs is not None else ())
    return Cost(macs=macs, params=params, flash_bytes=flash, arena_bytes=arena, latency_ms=lat,
                profile_id=profile.id, checks=checks)

def _latency_ms(graph: Graph, work: list, profile: "HardwareProfile") -> float:
    """A mobile or GPU profile with a kernel model measured on its runtime (``tinynas calibrate
    --measure host``) is priced by it (nn-Meter's sum of kernels); every other profile by its
    cycles-per-MAC ``[latency]``."""
    if profile.kind in ("mobile", "gpu"):
        from tinynas.cost.kernel_latency import load_kernel_model

        kernels = load_kernel_model(profile.id)
        if kernels is not None:
            return kernels.predict_ms(graph)
    return latency_ms(work, profile.latency, clock_hz=profile.clock_hz)


def estimate_tflite(
    path_or_bytes: "str | Path | bytes",
    *,
    profile: "HardwareProfile | None" = None,
    latency_target_ms: float | None = None,
    flash_bytes: int | None = None,
) -> Cost:
    """The Cost of an int8 ``.tflite`` file: its graph read back (``space.tflite_reader``) and
    costed as converted, with the file's real size as flash, or ``flash_bytes`` when the board
    holds another copy of it (deploy strips tensor names). Raises ModelFileError for a file
    that is not an int8 TFLite model."""
    from pathlib import Path

    from tinynas.space.tflite_reader import read_tflite

    data = path_or_bytes if isinstance(path_or_bytes, (bytes, bytearray)) else None
    graph = read_tflite(path_or_bytes)
    size = len(data) if data is not None else Path(path_or_bytes).stat().st_size
    if flash_bytes is not None:
        size = int(flash_bytes)
    return estimate(graph, profile=profile, latency_target_ms=latency_target_ms,
                    flash_bytes_override=size, converted=True)
