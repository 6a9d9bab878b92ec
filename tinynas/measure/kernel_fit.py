"""Fit a kernel latency model (``tinynas.cost.kernel_latency``) on measured kernels and whole models.

Measuring lives in ``kernel_calibrate``; this module is the arithmetic, so a stored calibration
(``tinynas calibrate --measure host --out cal.json``: every kernel's configuration and time, every whole
model's time) can be refitted offline, without timing anything again (``refit_calibration``).

The design (``DEFAULT_TARGET``) was chosen by cross-validation on calibration data only: 5-fold
held-out error of single kernels per kind and leave-one-model-out error of the calibration whole
models; ``benchmarks/mobile_latency/README.md`` has the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from tinynas.cost.kernel_latency import (BASELINE_TERMS, KernelLatencyModel, Tree, baseline_terms,
                                         extended_feature_vector, feature_vector, kernel_work)

# Per-kind roofline baseline x a forest on the log ratio: held-out kernel error conv 16 -> 7 %,
# conv1x1 13 -> 8 %, dwconv 12 -> 8 % against forests on log(ms per MAC) (README).
DEFAULT_TARGET = "log_ratio_baseline"


@dataclass(frozen=True)
class KernelFit:
    """Per-kind forests, baseline coefficients (``log_ratio_baseline`` only) and per-kind statistics:
    kernels, median ms and the 5-fold held-out median relative error of a kernel's ms."""

    forests: dict[str, tuple[Tree, ...]]
    baselines: dict[str, tuple[float, ...]]
    stats: dict[str, dict[str, float]]


def fit_baseline(kind: str, configs: Sequence[Mapping[str, float]], ms: np.ndarray) -> np.ndarray:
    """Non-negative coefficients of ``baseline_terms`` for one kind, by least squares on the relative
    error (a 1 us kernel weighs as much as a 10 ms one). At least a tiny dispatch term, so that every
    kernel's baseline is positive."""
    from scipy.optimize import nnls

    a = np.stack([baseline_terms(kind, c) for c in configs])
    coef, _ = nnls(a / ms[:, None], np.ones(len(ms)))
    coef[0] = max(coef[0], 1e-6)
    return coef


def _inputs(kind: str, configs: Sequence[Mapping[str, float]], target: str) -> np.ndarray:
    if target == "log_ratio_baseline":
        return np.stack([extended_feature_vector(kind, c) for c in configs])
    return np.stack([feature_vector(c) for c in configs])


def _norm(kind: str, configs: Sequence[Mapping[str, float]], target: str, coef: np.ndarray | None) -> np.ndarray:
    """What the forest's target is divided by: 1 ms, the kernel's work, or its baseline."""
    if target == "log_ratio_baseline":
        assert coef is not None
        return np.array([max(float(baseline_terms(kind, c) @ coef), 1e-6) for c in configs])
    if target == "log_ms_per_work":
        return np.array([kernel_work(c) for c in configs])
    return np.ones(len(configs))


def _fit_kind(kind: str, configs: Sequence[Mapping[str, float]], ms: np.ndarray, *, target: str, seed: int,
              n_trees: int) -> tuple[Any, np.ndarray | None]:
    from sklearn.ensemble import RandomForestRegressor

    coef = fit_baseline(kind, configs, ms) if target == "log_ratio_baseline" else None
    y = np.log(ms / _norm(kind, configs, target, coef))
    rf = RandomForestRegressor(n_estimators=n_trees, min_samples_leaf=1, max_features=0.8, random_state=seed)
    return rf.fit(_inputs(kind, configs, target), y), coef


def _predict_kind(kind: str, fitted: tuple[Any, np.ndarray | None], configs: Sequence[Mapping[str, float]], *,
                  target: str) -> np.ndarray:
    rf, coef = fitted
    return np.exp(rf.predict(_inputs(kind, configs, target))) * _norm(kind, configs, target, coef)


def fit_kernels(samples: Sequence[Mapping[str, Any]], *, seed: int = 0, n_trees: int = 30,
                target: str = DEFAULT_TARGET) -> KernelFit:
    """One random forest per kind on ``samples`` (``kind``, ``config``, ``kernel_ms``), exported to
    ``Tree``s, with each kind's 5-fold held-out error (the baseline refitted in every fold too)."""
    from sklearn.model_selection import KFold

    forests: dict[str, tuple[Tree, ...]] = {}
    baselines: dict[str, tuple[float, ...]] = {}
    stats: dict[str, dict[str, float]] = {}
    for kind in sorted({s["kind"] for s in samples}):
        rows = [s for s in samples if s["kind"] == kind]
        configs = [s["config"] for s in rows]
        ms = np.array([float(s["kernel_ms"]) for s in rows])
        held = -1.0
        if len(rows) >= 5:
            pred = np.zeros(len(rows))
            for train, test in KFold(min(5, len(rows)), shuffle=True, random_state=seed).split(configs):
                fitted = _fit_kind(kind, [configs[i] for i in train], ms[train], target=target, seed=seed,
                                   n_trees=n_trees)
                pred[test] = _predict_kind(kind, fitted, [configs[i] for i in test], target=target)
            held = round(float(np.median(np.abs(pred / ms - 1.0))) * 100.0, 2)
        rf, coef = _fit_kind(kind, configs, ms, target=target, seed=seed, n_trees=n_trees)
        forests[kind] = tuple(Tree(e.tree_.children_left.astype(np.int64), e.tree_.children_right.astype(np.int64),
                                   e.tree_.feature.astype(np.int64), e.tree_.threshold.astype(np.float64),
                                   e.tree_.value[:, 0, 0].astype(np.float64)) for e in rf.estimators_)
        if coef is not None:
            baselines[kind] = tuple(float(v) for v in coef)
        stats[kind] = {"kernels": len(rows), "median_ms": float(np.median(ms)), "held_out_median_error_pct": held}
    return KernelFit(forests, baselines, stats)


def fit_forests(samples: Sequence[Mapping[str, Any]], *, seed: int = 0, n_trees: int = 30,
                target: str = "log_ms") -> tuple[dict[str, tuple[Tree, ...]], dict[str, dict[str, float]]]:
    """``fit_kernels`` for the targets without baselines (``log_ms``, ``log_ms_per_work``): forests, stats."""
    if target == "log_ratio_baseline":
        raise ValueError("fit_forests has no baselines to return: use fit_kernels for target log_ratio_baseline")
    fit = fit_kernels(samples, seed=seed, n_trees=n_trees, target=target)
    return fit.forests, fit.stats


@dataclass(frozen=True)
class Correction:
    """The whole-model correction of summed kernel predictions (``KernelLatencyModel``): one scale per
    kernel group seen in the whole models, the scale of the others, a per-kernel cost, and the
    in-sample median relative error of whole models with it."""

    kernel_scale: float
    group_scales: dict[str, float]
    op_ms: float
    median_error_pct: float

    def predict_ms(self, row: Mapping[str, Any], *, invoke_ms: float) -> float:
        """A whole model's ms from its ``kernels`` count and unscaled ``group_ms``."""
        return invoke_ms + self.op_ms * row["kernels"] + sum(self.group_scales.get(g, self.kernel_scale) * v
                                                             for g, v in row["group_ms"].items())


def fit_correction(rows: Sequence[Mapping[str, Any]], *, invoke_ms: float, ridge: float = 0.05) -> Correction:
    """Fit ``measured = invoke_ms + op_ms x kernels + sum_g scale_g x group_ms[g]`` on whole models
    (``rows``: ``measured_ms``, ``kernels``, ``group_ms``) by least squares on the relative error, the
    figure the goal is stated in, with each scale pulled towards the median ratio by ``ridge`` (a
    group that is rare in the rows keeps about that ratio). Scales stay in [0.2, 5], ``op_ms`` >= 0."""
    from scipy.optimize import lsq_linear

    rows = [r for r in rows if r["measured_ms"] > 0]
    if not rows:
        return Correction(1.0, {}, 0.0, -1.0)
    ratios = [(r["measured_ms"] - invoke_ms) / s for r in rows if (s := sum(r["group_ms"].values())) > 0]
    prior = float(np.clip(np.median(ratios), 0.2, 5.0)) if ratios else 1.0
    groups = sorted({g for r in rows for g, v in r["group_ms"].items() if v > 0})
    if len(rows) < len(groups) + 2:  # too few whole models for a fit: the median ratio alone
        return Correction(prior, {}, 0.0, -1.0)
    # columns: op_ms in us (so that all columns are of similar size), then one scale per group
    a = np.array([[r["kernels"] * 1e-3 / r["measured_ms"]] + [r["group_ms"].get(g, 0.0) / r["measured_ms"]
                                                             for g in groups] for r in rows])
    b = np.array([1.0 - invoke_ms / r["measured_ms"] for r in rows])
    reg = np.sqrt(ridge) * np.eye(len(groups) + 1)[1:]
    sol = lsq_linear(np.vstack([a, reg]), np.concatenate([b, np.sqrt(ridge) * np.full(len(groups), prior)]),
                     bounds=([0.0] + [0.2] * len(groups), [np.inf] + [5.0] * len(groups)))
    op_ms = float(sol.x[0]) * 1e-3
    scales = {g: float(v) for g, v in zip(groups, sol.x[1:])}
    err = np.abs(a @ sol.x - b)  # predicted / measured - 1, as b is 1 - invoke / measured
    return Correction(prior, scales, op_ms, round(float(np.median(err)) * 100.0, 2))


def leave_one_model_out(rows: Sequence[Mapping[str, Any]], *, invoke_ms: float) -> list[float]:
    """Relative error (predicted / measured - 1) of each whole model with the correction fitted on the
    others: the whole-model score of a design that no measured model of it was fitted on (the kernels
    come from other archs)."""
    out = []
    for i, row in enumerate(rows):
        c = fit_correction([*rows[:i], *rows[i + 1:]], invoke_ms=invoke_ms)
        out.append(c.predict_ms(row, invoke_ms=invoke_ms) / row["measured_ms"] - 1.0)
    return out


def fit_kernel_model(*, samples: Sequence[Mapping[str, Any]], whole_models: Sequence[tuple[dict[str, Any], Any]],
                     invoke_ms: float, threads: int, seed: int = 0, source: str = "",
                     target: str = DEFAULT_TARGET, extra_stats: Mapping[str, Any] | None = None,
                     ) -> tuple[KernelLatencyModel, Correction, list[dict[str, Any]]]:
    """The kernel latency model of measured ``samples`` and ``whole_models`` ((row with ``measured_ms``,
    its converter-view graph) pairs): forests, then the whole-model correction on the unscaled kernel
    sums. Returns the model, the correction and the whole-model rows (with their ``group_ms``).

    The model's ``stats`` keep per-kind held-out kernel errors and the leave-one-model-out score of the
    whole models (``whole_model_loo_*``), the figures a design is chosen by."""
    fit = fit_kernels(samples, seed=seed, target=target)
    unscaled = KernelLatencyModel(forests=fit.forests, invoke_ms=invoke_ms, threads=threads, target=target,
                                  baselines=fit.baselines)
    rows = []
    for row, graph in whole_models:
        sums, count = unscaled.group_sums(graph)
        rows.append({**row, "kernels": count, "group_ms": sums})
    correction = fit_correction(rows, invoke_ms=invoke_ms)
    loo = np.abs(leave_one_model_out(rows, invoke_ms=invoke_ms)) if len(rows) >= 3 else np.zeros(0)
    stats = {"kernels": len(samples), "per_kind": fit.stats, "whole_models": rows, "target": target,
             "whole_model_in_sample_median_error_pct": correction.median_error_pct,
             "whole_model_loo_within_10pct": round(float(np.mean(loo <= 0.10)), 4) if len(loo) else -1.0,
             "whole_model_loo_median_error_pct": round(float(np.median(loo)) * 100, 2) if len(loo) else -1.0,
             **dict(extra_stats or {})}
    model = KernelLatencyModel(forests=fit.forests, invoke_ms=invoke_ms, threads=threads, target=target,
                               kernel_scale=correction.kernel_scale, group_scales=correction.group_scales,
                               op_ms=correction.op_ms, baselines=fit.baselines, source=source, stats=stats)
    return model, correction, rows


__all__ = ["BASELINE_TERMS", "Correction", "DEFAULT_TARGET", "KernelFit", "fit_baseline", "fit_correction",
           "fit_forests", "fit_kernel_model", "fit_kernels", "leave_one_model_out"]
