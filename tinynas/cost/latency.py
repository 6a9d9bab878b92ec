"""Latency on a board: MicroNets' linear model over each operator's work, with a profile's coefficients.

Banbury et al., MicroNets (MLSys 2021): on MCUs latency is close to linear in
the work of each op. Per op: MACs x cycles_per_mac[kind] for conv/FC, elements x
cycles_per_element[kind] for the rest, plus a fixed op_overhead_cycles; plus an
invoke overhead; divided by the clock. The coefficients live in the profile
(``LatencyModel``); ``tinynas calibrate`` fits them to measurements using the
same work counts (``tinynas.cost.counts.graph_work``).
"""

from __future__ import annotations

from tinynas.cost.counts import OpWork
from tinynas.errors import CostError
from tinynas.hardware.profile import LatencyModel


def op_cycles(work: OpWork, model: LatencyModel) -> float:
    """Cycles of one operator under ``model``."""
    if work.macs:
        cpm = model.cycles_per_mac.get(work.kind, model.cycles_per_mac.get("default"))
        if cpm is None:
            raise CostError(f"latency model has no cycles_per_mac for {work.kind} and no 'default'")
        body = work.macs * cpm
    else:
        body = work.elements * model.cycles_per_element.get(work.kind, model.cycles_per_element.get("default", 0.0))
    return body + model.op_overhead_cycles


def latency_ms(work: list[OpWork], model: LatencyModel, *, clock_hz: int) -> float:
    """Predicted milliseconds for one inference."""
    if clock_hz <= 0:
        raise CostError(f"clock_hz must be positive, got {clock_hz}")
    cycles = model.invoke_overhead_cycles + sum(op_cycles(w, model) for w in work)
    return cycles / clock_hz * 1000.0
