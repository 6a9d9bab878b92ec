"""Pilot: does a whole-model term for cold caches help? Scored like the design table of README.md.

Per kind, a forest on log(cold / warm) of the kernels of ``calibration_kernels_cold_loaded.json``
(``calibration_kernels_cold.py``); a model's cold penalty is the sum over its kernels of the refitted
kernel model's time x (predicted ratio - 1), counted only when its weights exceed the 1 MiB L2 (or
always); the whole-model correction (a scale per kind, as ``fit_correction``, without the per-kernel
cost, which fits to 0 here) gets one more column for it, its coefficient in [0, 1]. Prints the
leave-one-model-out score on the 25 calibration models and the held-out score on run 1:

    PYTHONPATH=. python benchmarks/mobile_latency/cold_term_pilot.py conv1x1 dwconv dwconv_large
    PYTHONPATH=. python benchmarks/mobile_latency/cold_term_pilot.py dwconv_large
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(kinds: list[str]) -> int:
    from scipy.optimize import lsq_linear
    from sklearn.ensemble import RandomForestRegressor

    from tinynas.cost.convert import converter_view
    from tinynas.cost.kernel_latency import extended_feature_vector, kernel_features, kernel_kind, weight_bytes
    from tinynas.measure.kernel_calibrate import SPACE_INPUTS, refit_calibration, whole_model_graphs
    from tinynas.space import get_space

    cold = json.loads((HERE / "calibration_kernels_cold_loaded.json").read_text())
    ratio_of = {}
    for k in kinds:
        rs = [r for r in cold["rows"] if r["kind"] == k]
        ratio = np.clip([max(r["cold_ms"] - cold["overhead_cold_ms"], 1e-5)
                         / max(r["warm_ms"] - cold["overhead_ms"], 1e-5) for r in rs], 0.8, 3.0)
        x = np.stack([extended_feature_vector(k, r["config"]) for r in rs])
        ratio_of[k] = RandomForestRegressor(n_estimators=30, min_samples_leaf=3, random_state=0).fit(x, np.log(ratio))
        sys.stdout.write(f"{k}: cold / warm median {np.median(ratio):.2f} over {len(rs)} kernels\n")
    model = refit_calibration(json.loads((HERE / "rpi4.calibration.host.json").read_text()))
    inv = model.invoke_ms

    def penalty(graph) -> tuple[float, float]:  # noqa: ANN001
        view = converter_view(graph)
        pen = wb = 0.0
        for op in view.ops:
            if op.kind == "RESHAPE":
                continue
            k, c = kernel_kind(op, view), kernel_features(op, view)
            wb += weight_bytes(k, c)
            if k in ratio_of:
                r = np.exp(ratio_of[k].predict(extended_feature_vector(k, c)[None])[0])
                pen += float(model.kernel_ms(k, [c])[0] * (r - 1.0))
        return pen * (wb > (1 << 20)), pen

    rows = model.stats["whole_models"]
    cal_x = [penalty(g) for _, _, g in whole_model_graphs(seed=0, n=len(rows))]
    bench = json.loads((HERE / "bench_rpi4_host_n30_refit.json").read_text())["rows"]
    rng = np.random.default_rng(1000)
    bench_x = []
    for _ in bench:
        name, shape = SPACE_INPUTS[int(rng.integers(len(SPACE_INPUTS)))]
        space = get_space(name, input_shape=shape, num_classes=10)
        bench_x.append(penalty(space.graph(space.sample(rng))))
    groups = sorted({g for r in rows for g, v in r["group_ms"].items() if v > 0})

    def design(rs, xs, col):  # noqa: ANN001, ANN202
        a = np.array([[r["group_ms"].get(g, 0.0) / r["measured_ms"] for g in groups]
                      + ([x[col] / r["measured_ms"]] if col is not None else []) for r, x in zip(rs, xs)])
        return a, np.array([1 - inv / r["measured_ms"] for r in rs])

    def fit(rs, xs, col, ridge: float = 0.05):  # noqa: ANN001, ANN202
        a, b = design(rs, xs, col)
        prior = float(np.median([(r["measured_ms"] - inv) / sum(r["group_ms"].values()) for r in rs]))
        n = len(groups)
        reg = np.sqrt(ridge) * np.eye(a.shape[1])[:n]
        extra = [] if col is None else [0.0]
        return lsq_linear(np.vstack([a, reg]), np.concatenate([b, np.sqrt(ridge) * np.full(n, prior)]),
                          bounds=([0.2] * n + extra, [5.0] * n + ([] if col is None else [1.0]))).x

    for col, label in ((None, "no cold term"), (0, "cold term, models > 1 MiB weights"), (1, "cold term, all models")):
        loo = []
        for i in range(len(rows)):
            x = fit(rows[:i] + rows[i + 1:], cal_x[:i] + cal_x[i + 1:], col)
            a, b = design([rows[i]], [cal_x[i]], col)
            loo.append(abs((a @ x - b)[0]))
        x = fit(rows, cal_x, col)
        a, b = design(bench, bench_x, col)
        e, loo = np.abs(a @ x - b), np.array(loo)
        sys.stdout.write(f"{label:34s} calibration LOO {np.mean(loo <= .1):.0%} / {100 * np.median(loo):.1f} %, "
                         f"held-out {np.mean(e <= .1):.0%} / {100 * np.median(e):.1f} %"
                         + (f", coefficient {x[-1]:.2f}" if col is not None else "") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["dwconv_large"]))
