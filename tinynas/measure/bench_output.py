"""Parsers for what on-target benchmark tools print: LiteRT's ``benchmark_model``, the ``--result_json`` of
``ai_edge_litert.tools.benchmark_litert_model`` and NVIDIA's ``trtexec``.

``measure.target`` runs those tools on a phone, a Linux board or a GPU machine;
this module only turns their text into numbers (milliseconds), so the formats
are tested without any device. A parser that finds nothing raises MeasureError
with the lines it saw.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tinynas.errors import MeasureError

_NUMBER = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
# LiteRT benchmark_model (tensorflow/lite/tools/benchmark/benchmark_model.cc):
#   Inference timings in us: Init: 5685, First inference: 45245, Warmup (avg): 21227.5, Inference (avg): 20940.8
_LITERT_TIMINGS = re.compile(
    r"Inference timings in us:\s*Init:\s*" + _NUMBER + r",\s*First inference:\s*" + _NUMBER
    + r",\s*Warmup \(avg\):\s*" + _NUMBER + r",\s*Inference \(avg\):\s*" + _NUMBER)
#   count=50 first=21135 curr=20876 min=20641 max=21781 avg=20940.8 std=217
_LITERT_STATS = re.compile(r"count=(\d+)\s+first=" + _NUMBER + r"\s+curr=" + _NUMBER + r"\s+min=" + _NUMBER
                           + r"\s+max=" + _NUMBER + r"\s+avg=" + _NUMBER + r"(?:\s+std=" + _NUMBER + r")?")
# trtexec: [I] GPU Compute Time: min = 0.38 ms, max = 0.55 ms, mean = 0.40 ms, median = 0.39 ms, percentile(90%) = ...
_TRT_LINE = re.compile(r"(?<!Total )GPU Compute Time:\s*(.*)")  # not "Total GPU Compute Time: 2.9 s"
_TRT_FIELD = re.compile(r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\))\s*=\s*" + _NUMBER + r"\s*ms")


@dataclass(frozen=True)
class BenchTimings:
    """One tool's summary, in milliseconds; ``runs`` is how many timed runs it averaged (0: not said)."""

    tool: str
    median_ms: float | None
    mean_ms: float
    min_ms: float | None
    max_ms: float | None
    p90_ms: float | None
    runs: int
    init_ms: float | None = None
    first_ms: float | None = None

    def stats(self) -> dict[str, float]:
        """The figures that were printed, by name (what ``LatencyReport.stats_ms`` keeps)."""
        names = ("median_ms", "mean_ms", "min_ms", "max_ms", "p90_ms", "init_ms", "first_ms")
        return {n: float(getattr(self, n)) for n in names if getattr(self, n) is not None}


def tail(text: str, *, lines: int = 8) -> str:
    """The last ``lines`` non-empty lines of ``text``, for error messages."""
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n    ".join(kept) if kept else "(no output)"


def parse_benchmark_model(text: str, *, what: str = "benchmark_model") -> BenchTimings:
    """Parse LiteRT ``benchmark_model`` output (``Inference timings in us: ...`` and the ``count=`` line).

    Raises MeasureError naming ``what`` and showing the end of the output when no timings line is there."""
    match = _LITERT_TIMINGS.search(text)
    if match is None:
        raise MeasureError(f"{what}: no 'Inference timings in us: ...' line in its output; it printed:\n    {tail(text)}")
    init_us, first_us, _warmup_us, avg_us = (float(g) for g in match.groups())
    # The last count= line is the timed runs (the one before it is the warm-up).
    stats = list(_LITERT_STATS.finditer(text))
    runs, min_ms, max_ms = 0, None, None
    if stats:
        last = stats[-1]
        runs = int(last.group(1))
        min_ms, max_ms = float(last.group(4)) / 1000.0, float(last.group(5)) / 1000.0
    return BenchTimings(tool="benchmark_model", median_ms=None, mean_ms=avg_us / 1000.0, min_ms=min_ms,
                        max_ms=max_ms, p90_ms=None, runs=runs, init_ms=init_us / 1000.0, first_ms=first_us / 1000.0)


def parse_trtexec(text: str, *, what: str = "trtexec") -> BenchTimings:
    """Parse ``trtexec``'s ``GPU Compute Time: min = ... ms, max = ..., mean = ..., median = ...`` line.

    Raises MeasureError naming ``what`` and showing the end of the output when the line or its mean is missing."""
    lines = _TRT_LINE.findall(text)
    if not lines:
        raise MeasureError(f"{what}: no 'GPU Compute Time: ...' line in its output; it printed:\n    {tail(text)}")
    fields: dict[str, float] = {}
    for match in _TRT_FIELD.finditer(lines[-1]):
        key = f"p{float(match.group(2)):g}" if match.group(2) else match.group(1)  # "p90", "p99.9"
        fields[key] = float(match.group(3))
    if "mean" not in fields:
        raise MeasureError(f"{what}: cannot read the mean from 'GPU Compute Time: {lines[-1].strip()}'")
    runs = re.findall(r"(\d+) iterations", text)
    return BenchTimings(tool="trtexec", median_ms=fields.get("median"), mean_ms=fields["mean"],
                        min_ms=fields.get("min"), max_ms=fields.get("max"), p90_ms=fields.get("p90"),
                        runs=int(runs[-1]) if runs else 0)


def parse_litert_result_json(text: str, *, what: str = "benchmark_litert_model") -> BenchTimings:
    """Parse the ``--result_json`` file of ``python3 -m ai_edge_litert.tools.benchmark_litert_model``.

    Its ``latency`` object holds ``init_ms``, ``warmup_first_ms``, ``avg_ms``, ``min_ms``, ``max_ms``,
    ``median_ms``, ``p95_ms`` and ``num_runs``. Raises MeasureError naming ``what`` when it is not that."""
    try:
        latency = json.loads(text)["latency"]
        mean = float(latency["avg_ms"])
    except (ValueError, KeyError, TypeError) as exc:
        raise MeasureError(f"{what}: not a benchmark_litert_model result (no latency.avg_ms: "
                           f"{type(exc).__name__}: {exc}); it read:\n    {tail(text)}") from None

    def num(key: str) -> float | None:
        value = latency.get(key)
        return float(value) if isinstance(value, (int, float)) else None

    return BenchTimings(tool="benchmark_litert_model", median_ms=num("median_ms"), mean_ms=mean,
                        min_ms=num("min_ms"), max_ms=num("max_ms"), p90_ms=None,
                        runs=int(latency.get("num_runs") or 0), init_ms=num("init_ms"),
                        first_ms=num("warmup_first_ms"))
