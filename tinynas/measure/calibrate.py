"""Fit a board's latency model to measured latencies, and store it as a profile overlay.

The last stage of the pipeline: ``tinynas measure`` writes ``latency.json``
files that carry each model's latency features or name the .tflite they are
read from (a GPU run's ONNX files are priced as the run's winner graph); this
fits the coefficients the cost model prices them with (``tinynas.cost.latency``: cycles per MAC per op
kind or variant, cycles per output element, per-operator and per-invoke
overheads; MicroNets, Banbury et al., MLSys 2021) by non-negative least squares.
The part's properties (kernel fast path, flash cost per weight byte) stay the
profile's: they are priced, not fitted. Each measurement is also predicted by a
fit that did not see it (leave-one-out); a fit that predicts worse than the
profile it would replace is not saved. Measurements of the same model are held
out together.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinynas.cost.latency import (FEATURE_INVOKE, FEATURE_OPS, FEATURE_WEIGHT_BYTES, coefficient, graph_features,
                                  predict_cycles, slots, with_coefficients)
from tinynas.errors import CostError, MeasureError
from tinynas.text import counted

log = logging.getLogger(__name__)

__all__ = ["FEATURE_INVOKE", "FEATURE_OPS", "CalibrationResult", "calibrate", "graph_features", "model_features",
           "predict_cycles", "predict_ms"]


def model_features(model: bytes | str | Path) -> dict[str, float]:
    """``graph_features`` (``tinynas.cost.latency``) of a ``.tflite`` model (bytes or path)."""
    from tinynas.space.tflite_reader import read_tflite

    return graph_features(read_tflite(model))


def run_model_features(path: Path, data: bytes) -> dict[str, float] | None:
    """``graph_features`` of a model a tinynas run deployed in a format calibrate has no reader for (a GPU's
    ONNX files, in RUN/model/ or RUN/deploy/): the run's winner rebuilt from its space, the graph the cost
    model prices in the search. None unless RUN/model/metrics.json names this very file (its SHA-256) and
    RUN/model/arch.json and RUN/config.toml are there."""
    import json

    from tinynas.errors import TinyNASError
    from tinynas.pipeline.report import run_space
    from tinynas.pipeline.rundir import RunDir
    from tinynas.space.arch import Arch

    run = path.parent.parent
    try:
        metrics = json.loads((run / "model" / "metrics.json").read_text())
        arch = Arch.from_json(json.loads((run / "model" / "arch.json").read_text()))
        config = RunDir.read(run).config
    except (OSError, ValueError, KeyError, TypeError, TinyNASError):
        return None
    sha = hashlib.sha256(data).hexdigest()
    if sha not in {a.get("sha256") for a in (metrics.get("artifacts") or {}).values() if isinstance(a, dict)}:
        return None
    space = run_space(config)
    return None if space is None or space.name != arch.space else graph_features(space.graph(arch))


def predict_ms(features: Mapping[str, float], latency: Any, *, clock_hz: int) -> float:
    """Milliseconds ``latency`` (a ``LatencyModel``) predicts for these features: the cost model's figure."""
    return predict_cycles(features, latency) / clock_hz * 1000.0


@dataclass(frozen=True)
class Sample:
    """One measured model: its features and median latency."""

    name: str
    features: dict[str, float]
    latency_ms: float


@dataclass(frozen=True)
class _Row:
    """A sample as the fit sees it: slot values, the cycles priced outside the slots, measured cycles."""

    slots: dict[str, float]
    fixed: float
    cycles: float


def _rows(samples: Sequence[Sample], latency: Any, *, clock_hz: int) -> list[_Row]:
    rows = []
    for s in samples:
        try:
            values, fixed = slots(s.features, latency)
        except CostError as exc:
            raise MeasureError(f"{s.name}: {exc}") from None
        rows.append(_Row(values, fixed, s.latency_ms * 1e-3 * clock_hz))
    return rows


def _fit(rows: Sequence[_Row], latency: Any, *, prior_weight: float) -> dict[str, float]:
    """Non-negative least squares on relative error, pulled gently towards the current coefficients.

    Each row is divided by its measured cycles, so a 1 ms model counts as much
    as a 100 ms one. Coefficients are scaled by their current value so the
    small ``prior_weight`` ridge keeps directions the data cannot tell apart
    (e.g. per-op vs per-invoke overhead with two models) where they were.
    """
    from scipy.optimize import nnls

    keys = sorted({k for r in rows for k, v in r.slots.items() if v > 0})
    a = np.array([[r.slots.get(k, 0.0) for k in keys] for r in rows], dtype=np.float64)
    y = np.array([r.cycles for r in rows], dtype=np.float64)
    fixed = np.array([r.fixed for r in rows], dtype=np.float64)
    prior = np.array([coefficient(latency, k) for k in keys])
    # Where the current value is 0 (e.g. no invoke overhead), scale by what would explain 10 % of a median run.
    fallback = 0.1 * np.median(y) / np.maximum(np.median(np.where(a > 0, a, np.nan), axis=0), 1.0)
    fallback = np.nan_to_num(fallback, nan=1.0)
    scale = np.where(prior > 0, prior, fallback)
    b = a * scale / y[:, None]
    lam = math.sqrt(prior_weight)
    lhs = np.vstack([b, lam * np.eye(len(keys))])
    rhs = np.concatenate([(y - fixed) / y, lam * prior / scale])
    s, _ = nnls(lhs, rhs, maxiter=50 * len(keys) + 100)
    return {k: float(v * c) for k, v, c in zip(keys, s, scale)}


@dataclass(frozen=True)
class CalibrationResult:
    """What ``calibrate`` fitted and how well: errors are mean absolute percentage errors.

    ``error_before_pct`` is the profile's current model on every measurement;
    ``error_after_pct`` is leave-one-out by model (each measurement predicted by a fit
    that saw no measurement of its model); None when all are of one model.
    """

    profile_id: str
    measurements: int
    coefficients: dict[str, float]  # fitted, by slot (macs:CONV_2D, elements:ADD, ops, invokes)
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


def _features_of_model(where: str, model_path: str | None, sha1: str | None, why: str) -> dict[str, float]:
    """Features recomputed from the measured model file, if it is still there and still the same file."""
    path = Path(model_path) if model_path else None
    if path is None or not path.is_file():
        raise MeasureError(f"{where}: {why} and its model {model_path!r} is not there; "
                           "measure again with --model MODEL.tflite")
    data = path.read_bytes()
    if sha1 and hashlib.sha1(data).hexdigest() != sha1:
        raise MeasureError(f"{where}: {why}, and its model {model_path} has changed since it was measured "
                           f"(sha1 {hashlib.sha1(data).hexdigest()[:12]}, measured {sha1[:12]}); measure it again")
    return model_features(path)


def _features_of_run_model(where: str, model_path: str, sha1: str | None) -> dict[str, float]:
    """Features of a measured ONNX model that a tinynas run deployed (``run_model_features``)."""
    path = Path(model_path)
    data = path.read_bytes() if path.is_file() else b""
    if data and sha1 and hashlib.sha1(data).hexdigest() != sha1:
        raise MeasureError(f"{where}: its model {model_path} has changed since it was measured; measure it again")
    features = run_model_features(path, data) if data else None
    if features is None:
        raise MeasureError(f"{where}: measured the ONNX model {model_path}; calibrate has no ONNX reader and prices "
                           "it as the network a tinynas run deployed: from the run's model/ or deploy/ folder, "
                           "whose model/metrics.json names the file and model/arch.json holds its arch. Measure "
                           "that file (or an int8 .tflite of the same network)")
    return features


def refusal(report: Any, *, profile: Any) -> str | None:
    """Why ``calibrate`` would refuse this measurement (a ``LatencyReport``) for ``profile``, None when it would
    take it: what ``measure`` says after writing one."""
    from tinynas.errors import TinyNASError

    try:
        _sample(report, profile=profile)
    except TinyNASError as exc:  # a MeasureError, or the model file's own (not a model calibrate can read)
        return str(exc)
    return None


def _sample(item: Any, *, profile: Any) -> Sample:
    """One measurement as a calibration sample, refused when its latency is not ``profile``'s board running it."""
    from tinynas.measure.runner import LatencyReport

    report = item if isinstance(item, LatencyReport) else LatencyReport.load(Path(item))
    where = str(item) if not isinstance(item, LatencyReport) else (report.model_path or "measurement")
    if report.profile_id and report.profile_id != profile.id:
        raise MeasureError(f"{where}: was measured for profile {report.profile_id!r}, not {profile.id!r}; calibrate "
                           f"{report.profile_id} with it, or measure this board "
                           f"(tinynas measure --profile {profile.id})")
    if report.target == "host" and profile.kind == "gpu":
        raise MeasureError(f"{where}: was measured with --on host ({report.runtime or 'a runtime'} on this machine's "
                           f"CPU), not on {profile.id}'s GPU; measure on the GPU the ONNX model its run deployed: "
                           f"tinynas measure --on trtexec (on the GPU's machine) or --on ssh:USER@HOST --model "
                           f"RUN/deploy/model_fp16.onnx --profile {profile.id}")
    if report.target is not None and profile.kind == "mcu":
        raise MeasureError(f"{where}: was measured with --on {report.target} ({report.runtime or 'a runtime'} on that "
                           f"machine), not on the {profile.id} board over serial; {profile.id}'s latency model "
                           f"needs the board's own time: tinynas measure --port PORT --profile {profile.id}")
    if report.forced:
        raise MeasureError(
            f"{where}: was measured with --force while the device ran another model "
            f"(device {report.device_model_id!r}, file {report.file_model_id!r}): its latency is not the file's "
            "model, so calibration cannot use it; flash the model and measure again without --force")
    emulated = ((report.device or {}).get("extension") or {}).get("emulator")
    if emulated:
        timed = "this machine's time" if emulated == "host" else "the cost model's own prediction"
        raise MeasureError(
            f"{where}: was measured on tinynas's board emulator ({emulated} latency), not on a board: its latency "
            f"is {timed}, and fitting {report.profile_id or 'the board'}'s latency model to it would make every "
            "later search price the board wrong. Flash the model (tinynas flash) and measure the board itself")
    if report.latency_ms is None:
        raise MeasureError(f"{where}: holds no finished window; measure again (tinynas measure --run DIR)")
    features = report.features
    if not features and str(report.model_path or "").lower().endswith(".onnx"):
        features = _features_of_run_model(where, report.model_path, report.model_sha1)
    if not features:
        features = _features_of_model(where, report.model_path, report.model_sha1, "has no per-op features")
    elif FEATURE_WEIGHT_BYTES not in features:
        # Written by a tinynas whose latency model had fewer features: recount them from the model.
        features = _features_of_model(where, report.model_path, report.model_sha1,
                                      "holds latency features of an older tinynas")
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
) -> CalibrationResult:
    """Fit ``profile``'s latency model to ``measurements`` (paths to latency.json or ``LatencyReport``s).

    With ``save`` the fitted model is written as the user overlay of the
    profile (``tinynas.hardware.save_latency_overlay``), which ``load_profile``
    and so the cost model then use. Raises ``MeasureError`` without usable
    measurements, for a measurement made with ``--force`` on a device running
    another model, and (with ``save``) when the fit's leave-one-out error is
    worse than the current profile's error, which it then does not save.
    """
    if isinstance(profile, (str, Path)):
        from tinynas.hardware import load_profile

        profile = load_profile(str(profile))
    if not measurements:
        raise MeasureError("calibration needs at least one measurement file (tinynas measure --run DIR writes one)")
    samples = [_sample(m, profile=profile) for m in measurements]
    latency, clock = profile.latency, int(profile.clock_hz)
    rows = _rows(samples, latency, clock_hz=clock)
    before = [predict_ms(s.features, latency, clock_hz=clock) for s in samples]
    truth = [s.latency_ms for s in samples]

    n = len(samples)
    # Held out by model, not by file: the same model measured again predicts itself, which says nothing of
    # how the fit prices a model it has not seen.
    models: dict[tuple, list[int]] = {}
    for i, s in enumerate(samples):
        models.setdefault(tuple(sorted(s.features.items())), []).append(i)
    after: list[float | None] = [None] * n
    if len(models) < 2:
        held_out = "none (one measurement)" if n == 1 else f"none ({n} measurements of one model)"
    elif len(models) == n:
        held_out = "leave-one-out"
    else:
        held_out = f"leave-one-model-out ({n} measurements of {len(models)} models)"
    if len(models) >= 2:
        for group in models.values():
            train = [r for i, r in enumerate(rows) if i not in group]
            fitted = with_coefficients(latency, _fit(train, latency, prior_weight=prior_weight), source="held out")
            for i in group:
                after[i] = predict_ms(samples[i].features, fitted, clock_hz=clock)

    coefficients = _fit(rows, latency, prior_weight=prior_weight)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    fitted = with_coefficients(latency, coefficients, source=f"calibrated on {counted(n, 'measurement')}, {stamp}")
    table = tuple(
        {"model": s.name, "measured_ms": s.latency_ms, "before_ms": b, "after_ms": a}
        for s, b, a in zip(samples, before, after)
    )
    error_after = _mape([a for a in after if a is not None], truth) if len(models) >= 2 else None
    error_before = _mape(before, truth)
    path = None
    if save:
        if error_after is not None and error_after > error_before:
            raise MeasureError(
                f"{profile.id}: new fit: {error_after:.1f} % {held_out}, current profile: {error_before:.1f} % "
                f"on the same {n} measurements; not saved (the profile keeps its latency model; --dry-run shows "
                "the fit)")
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
        error_before_pct=error_before, error_after_pct=error_after, held_out=held_out, per_measurement=table,
        overlay_path=str(path) if path else None,
    )
