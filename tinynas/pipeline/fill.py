"""Spend the minutes a weight-sharing search leaves on its final training (ofa's ``fill_budget``).

Once its supernet exists, an ofa search scores its 2,000 subnets in seconds, so a run given
``--budget-minutes 10`` ends after a minute or two with most of its minutes unused, while a
``staged`` run at the same budget trains candidates for all of them. On glyphs, nucleo-l010rb, the
predictor runs' deployed int8 accuracy rose from 94.8 % (final top 2 x 10 epochs) to 95.9 % (top
6 x 30) with those minutes (benchmarks/ofa/README.md (r)). Which top and epochs fit depends on the
board: the same final takes 2-3 times as long on a roomy board's larger subnets. So the final
stage times one planned training first (the best candidate at the planned epochs, the probe) and
then chooses both from the seconds left, splitting the spare time evenly (square root each)
between more epochs and more candidates. At 10 minutes on glyphs this raised the mean of 3 seeds from
94.8 to 95.8 % on nucleo-l010rb and from 97.1 to 97.5 % on nucleo-l432kc, nano33ble unchanged at 97.4 %
(benchmarks/ofa/README.md (s)).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

#: at most this many times the planned epochs (the longest final measured: 30 epochs for 10 planned)
MAX_FILL_SCALE = 3


@dataclass(frozen=True)
class FillPlan:
    """The final training that fits ``seconds``: ``top_k`` candidates at ``epochs`` each."""

    seconds: float
    probe_seconds: float
    epochs: int
    top_k: int
    #: whether the probe (the best candidate at the planned epochs) is one of the ``top_k`` trainings
    probe_counts: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FillPlan":
        return cls(seconds=float(data["seconds"]), probe_seconds=float(data["probe_seconds"]),
                   epochs=int(data["epochs"]), top_k=int(data["top_k"]), probe_counts=bool(data["probe_counts"]))


def plan_fill(*, seconds: float, probe_seconds: float, planned_epochs: int, planned_top_k: int,
              available: int) -> FillPlan:
    """The largest final, at most ``MAX_FILL_SCALE`` times the planned epochs, that fits ``seconds``.

    ``probe_seconds`` is what the best candidate took at ``planned_epochs`` (extraction, evaluation
    and tracing included, so the estimate errs long); the probe's own time is spent already. Never
    fewer than ``planned_top_k`` candidates (what the user asked for), never more than ``available``.
    """
    probe = max(float(probe_seconds), 1e-6)
    room = float(seconds) - probe
    floor_k = min(int(planned_top_k), int(available))
    even = math.sqrt(max(float(seconds), 0.0) / (max(floor_k, 1) * probe))
    for scale in range(max(1, min(MAX_FILL_SCALE, round(even))), 0, -1):
        per = probe * scale
        k = int(max(room, 0.0) // per) + (1 if scale == 1 else 0)
        if k >= floor_k or scale == 1:
            return FillPlan(seconds=round(float(seconds), 3), probe_seconds=round(probe, 3),
                            epochs=int(planned_epochs) * scale, top_k=max(floor_k, min(k, int(available))),
                            probe_counts=scale == 1)
    raise AssertionError("unreachable: scale 1 always returns")


def seconds_left(journal: Any, search_done: dict[str, Any] | None) -> float | None:
    """The seconds of the time budget the search left, less what the stages after it (verify) took.

    None when the run has no time budget. Read from the search's done.json and the journal's stage
    events only, so a resumed final stage plans from the same number.
    """
    stop = (search_done or {}).get("stop") or {}
    left = (stop.get("budget_left") or {}).get("seconds")
    if left is None:
        return None
    spent, started = 0.0, None
    for event in journal.events(stage="verify"):  # each session: start, then done, interrupted or failed
        if event.get("event") == "start":
            started = float(event["time"])
        elif started is not None:
            spent += float(event["time"]) - started
            started = None
    return max(0.0, float(left) - spent)
