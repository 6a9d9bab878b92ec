"""``Cost``: what the cost model says of one Graph, and on a profile whether it fits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class BudgetCheck:
    """One budget (``sram``, ``flash`` or ``latency``): what is needed, what is available, the margin."""

    name: str
    need: float
    budget: float | None  # None: no such budget on this profile

    @property
    def fits(self) -> bool:
        return self.budget is None or self.need <= self.budget

    @property
    def margin(self) -> float | None:
        """budget - need: negative when it does not fit."""
        return None if self.budget is None else self.budget - self.need

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "need": self.need, "budget": self.budget, "fits": self.fits, "margin": self.margin}


@dataclass(frozen=True)
class Cost:
    """MACs, parameters, flash and arena bytes of a graph; latency and budget checks on a profile."""

    macs: int
    params: int
    flash_bytes: int  # size of the int8 .tflite file
    arena_bytes: int  # what TFLM's MicroInterpreter needs (planned activations + persistent overheads)
    latency_ms: float | None = None  # on the profile, None without one
    profile_id: str | None = None
    checks: tuple[BudgetCheck, ...] = field(default_factory=tuple)

    @property
    def fits(self) -> bool | None:
        """True when every budget is met, None when no profile was given."""
        if self.profile_id is None:
            return None
        return all(c.fits for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = [c.to_json() for c in self.checks]
        data["fits"] = self.fits
        return data
