"""Fit a board's latency model to measured latencies, and store it as a profile overlay.

The last stage of the pipeline: ``tinynas measure`` writes ``latency.json``
files that carry each model's per-op-kind features; this fits the linear model
the cost model uses (cycles per MAC per op kind, cycles per element for ops
without MACs, a per-operator and a per-invoke overhead; MicroNets, Banbury et al.,
MLSys 2021) by non-negative least squares, and reports the error before and after
on measurements held out of the fit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinynas.errors import MeasureError

log = logging.getLogger(__name__)

FEATURE_OPS = "ops"  # operator count: the per-operator overhead
FEATURE_INVOKE = "invokes"  # always 1: the per-invoke overhead


def graph_features(graph: Any) -> dict[str, float]:
    """Per-op-kind totals that the cost model's latency is linear in.

    ``macs:<KIND>`` for ops priced per MAC, ``elements:<KIND>`` for the others,
    counted by the cost model itself (``tinynas.cost.counts.graph_work``, priced
    as ``tinynas.cost.latency.op_cycles`` does), plus ``ops`` (operator count)
    and ``invokes`` (1).
    """
    from tinynas.cost.counts import graph_work

    feats: dict[str, float] = {FEATURE_OPS: float(len(graph.ops)), FEATURE_INVOKE: 1.0}
    for work in graph_work(graph):
        key, value = (f"macs:{work.kind}", work.macs) if work.macs else (f"elements:{work.kind}", work.elements)
        feats[key] = feats.get(key, 0.0) + float(value)
    return feats


def model_features(model: bytes | str | Path) -> dict[str, float]:
    """``graph_features`` of a ``.tflite`` model (bytes or path)."""
    from tinynas.space.tflite_reader import read_tflite

    return graph_features(read_tflite(model))


def _coefficient(latency: Any, key: str) -> float:
    if key == FEATURE_OPS:
        return float(latency.op_overhead_cycles)
    if key == FEATURE_INVOKE:
        return float(latency.invoke_overhead_cycles)
    table_name, _, kind = key.partition(":")
    table = latency.cycles_per_mac if table_name == "macs" else latency.cycles_per_element
    return float(table.get(kind, table.get("default", 0.0)))


def predict_cycles(features: Mapping[str, float], latency: Any) -> float:
    """Cycles per inference that ``latency`` (a ``LatencyModel``) predicts for these features."""
    return float(sum(v * _coefficient(latency, k) for k, v in features.items()))


def predict_ms(features: Mapping[str, float], latency: Any, *, clock_hz: int) -> float:
    return predict_cycles(features, latency) / clock_hz * 1000.0


def _with(latency: Any, values: Mapping[str, float], *, source: str) -> Any:
    """A copy of ``latency`` with the fitted coefficients replaced."""
    cpm = dict(latency.cycles_per_mac)
    cpe = dict(latency.cycles_per_element)
    op_overhead, invoke_overhead = latency.op_overhead_cycles, latency.invoke_overhead_cycles
    for key, value in values.items():
        if key == FEATURE_OPS:
            op_overhead = value
        elif key == FEATURE_INVOKE:
            invoke_overhead = value
        else:
            table_name, _, kind = key.partition(":")
            (cpm if table_name == "macs" else cpe)[kind] = value
    return replace(latency, cycles_per_mac=cpm, cycles_per_element=cpe, op_overhead_cycles=float(op_overhead),
                   invoke_overhead_cycles=float(invoke_overhead), source=source)


@dataclass(frozen=True)
class Sample:
    """One measured model: its features and median latency."""

    name: str
    features: dict[str, float]
    latency_ms: float


def _fit(samples: Sequence[Sample], latency: Any, *, clock_hz: int, prior_weight: float) -> dict[str, float]:
    """Non-negative least squares on relative error, pulled gently towards the current coefficients.

    Each row is divided by its measured cycles, so a 1 ms model counts as much
    as a 100 ms one. Coefficients are scaled by their current value so the
    small ``prior_weight`` ridge keeps directions the data cannot tell apart
    (e.g. per-op vs per-invoke overhead with two models) where they were.
    """
    from scipy.optimize import nnls

    keys = sorted({k for s in samples for k, v in s.features.items() if v > 0})
    a = np.array([[s.features.get(k, 0.0) for k in keys] for s in samples], dtype=np.float64)
    y = np.array([s.latency_ms * 1e-3 * clock_hz for s in samples], dtype=np.float64)
    prior = np.array([_coefficient(latency, k) for k in keys])
    # Where the current value is 0 (e.g. no invoke overhead), scale by what would explain 10 % of a median run.
    fallback = 0.1 * np.median(y) / np.maximum(np.median(np.where(a > 0, a, np.nan), axis=0), 1.0)
    fallback = np.nan_to_num(fallback, nan=1.0)
    scale = np.where(prior > 0, prior, fallback)
    b = a * scale / y[:, None]
    lam = math.sqrt(prior_weight)
    lhs = np.vstack([b, lam * np.eye(len(keys))])
    rhs = np.concatenate([np.ones(len(y)), lam * prior / scale])
    s, _ = nnls(lhs, rhs, maxiter=50 * len(keys) + 100)
    return {k: float(v * c) for k, v, c in zip(keys, s, scale)}


@dataclass(frozen=True)
class CalibrationResult:
    """What ``calibrate`` fitted and how well: errors are mean absolute percentage errors.

    ``error_before_pct`` is the profile's current model on every measurement;
    ``error_after_pct`` is cross-validated (each measurement predicted by a fit
    that did not see it); None when there are too few measurements to hold any out.
    """

    profile_id: str
    measurements: int
    coefficients: dict[str, float]  # fitted, by feature key (macs:CONV_2D, elements:ADD, ops, invokes)
    latency: dict[str, Any]  # the whole fitted LatencyModel, as written to the overlay
    error_before_pct: float
    error_after_pct: float | None
    held_out: str
    per_measurement: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    overlay_path: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["per_measurement"] = list(self.per_measurement)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "CalibrationResult":
        return cls(
            profile_id=str(data["profile_id"]), measurements=int(data["measurements"]),
            coefficients={str(k): float(v) for k, v in data["coefficients"].items()}, latency=dict(data["latency"]),
            error_before_pct=float(data["error_before_pct"]),
            error_after_pct=None if data.get("error_after_pct") is None else float(data["error_after_pct"]),
            held_out=str(data.get("held_out", "")), per_measurement=tuple(data.get("per_measurement", ())),
            overlay_path=data.get("overlay_path"),
        )


def _sample(item: Any) -> Sample:
    from tinynas.measure.runner import LatencyReport

    report = item if isinstance(item, LatencyReport) else LatencyReport.load(Path(item))
    where = str(item) if not isinstance(item, LatencyReport) else (report.model_path or "measurement")
    if report.latency_ms is None:
        raise MeasureError(f"{where}: holds no finished window; measure again (tinynas measure --run DIR)")
    features = report.features
    if not features:
        if report.model_path and Path(report.model_path).is_file():
            features = model_features(Path(report.model_path))
        else:
            raise MeasureError(
                f"{where}: has no per-op features and its model {report.model_path!r} is not there; "
                "measure again with --model MODEL.tflite"
            )
    return Sample(name=report.model_path or where, features=dict(features), latency_ms=float(report.latency_ms))


def _mape(pred: Sequence[float], true: Sequence[float]) -> float:
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    return float(np.mean(np.abs(p - t) / t) * 100.0)


def calibrate(
    *,
    profile: Any,
    measurements: Sequence[Any],
    save: bool = True,
    home: Path | None = None,
    prior_weight: float = 1e-6,
    folds: int = 5,
) -> CalibrationResult:
    """Fit ``profile``'s latency model to ``measurements`` (paths to latency.json or ``LatencyReport``s).

    With ``save`` the fitted model is written as the user overlay of the
    profile (``tinynas.hardware.save_latency_overlay``), which ``load_profile``
    and so the cost model then use. Raises ``MeasureError`` without usable
    measurements.
    """
    if isinstance(profile, (str, Path)):
        from tinynas.hardware import load_profile

        profile = load_profile(str(profile))
    if not measurements:
        raise MeasureError("calibration needs at least one measurement file (tinynas measure --run DIR writes one)")
    samples = [_sample(m) for m in measurements]
    latency, clock = profile.latency, int(profile.clock_hz)
    before = [predict_ms(s.features, latency, clock_hz=clock) for s in samples]
    truth = [s.latency_ms for s in samples]

    after: list[float | None] = [None] * len(samples)
    n = len(samples)
    k = min(folds, n) if n >= 2 else 0
    held_out = f"{k}-fold cross-validation" if k and k < n else ("leave-one-out" if k else "none (one measurement)")
    if k:
        order = np.random.default_rng(0).permutation(n)
        for fold in range(k):
            test = set(order[fold::k].tolist())
            train = [s for i, s in enumerate(samples) if i not in test]
            fitted = _with(latency, _fit(train, latency, clock_hz=clock, prior_weight=prior_weight), source="cv")
            for i in test:
                after[i] = predict_ms(samples[i].features, fitted, clock_hz=clock)

    coefficients = _fit(samples, latency, clock_hz=clock, prior_weight=prior_weight)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    fitted = _with(latency, coefficients, source=f"calibrated on {n} measurement(s), {stamp}")
    rows = tuple(
        {"model": s.name, "measured_ms": s.latency_ms, "before_ms": b, "after_ms": a}
        for s, b, a in zip(samples, before, after)
    )
    error_after = _mape([a for a in after if a is not None], [t for a, t in zip(after, truth) if a is not None]) \
        if k else None
    error_before = _mape(before, truth)
    path = None
    if save:
        from tinynas.hardware import clear_cache, save_latency_overlay

        path = save_latency_overlay(profile.id, fitted, home=home, calibration={
            "measurements": n, "error_before_pct": round(error_before, 3),
            "error_after_pct": -1.0 if error_after is None else round(error_after, 3),
            "held_out": held_out, "date": stamp,
        })
        clear_cache()
        log.info("%s: latency overlay written to %s", profile.id, path)
    return CalibrationResult(
        profile_id=profile.id, measurements=n, coefficients=coefficients, latency=asdict(fitted),
        error_before_pct=error_before, error_after_pct=error_after, held_out=held_out, per_measurement=rows,
        overlay_path=str(path) if path else None,
    )
