"""The roofline-baseline kernel model (``log_ratio_baseline``), its offline refit from a stored
calibration and ``scripts/bench_mobile_latency.py --refit --offline`` (nothing is measured here)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from tinynas.cost.convert import converter_view
from tinynas.cost.kernel_latency import (BASELINE_TERMS, KernelLatencyModel, baseline_terms, extended_feature_vector,
                                         kernel_features, kernel_kind)
from tinynas.errors import CostError, MeasureError
from tinynas.measure.kernel_calibrate import SPACE_INPUTS, refit_calibration, sample_kernels, whole_model_graphs
from tinynas.measure.kernel_fit import fit_baseline, fit_kernels

ROOT = Path(__file__).resolve().parents[2]


def _law(kind: str, cfg: dict) -> float:
    """Made-up kernel time: 2 us dispatch + 0.05 ns per tile-padded MAC + 1 ns per activation element."""
    return float(baseline_terms(kind, cfg) @ np.array([2.0, 0.05, 1.0, 0.0]))


@pytest.fixture(scope="module")
def samples() -> list[dict]:
    return [{"kind": kind, "config": cfg, "kernel_ms": _law(kind, cfg)}
            for kind, cfg, _, _ in sample_kernels(n=60, seed=0, archs_per_space=3)]


def test_kernels_of_a_kind_are_drawn_evenly_over_the_spaces():
    """mcunet archs have ~45 kernels, nanonas archs 4-16: drawn uniformly, the big space's kernels
    crowd out the small one's; by source, every (space, input) pair gives its share of each kind."""
    def spaces(by_source: bool) -> list[str]:
        drawn = sample_kernels(n=120, seed=0, archs_per_space=3, by_source=by_source)
        return [g.name.split("_")[0] for kind, _, _, g in drawn if kind == "conv"]

    even = spaces(True)
    assert even[:len(SPACE_INPUTS)] == [name for name, _ in SPACE_INPUTS]
    assert even != spaces(False)


def test_baseline_is_fitted_per_kind_and_recovers_a_linear_law(samples):
    conv = [s for s in samples if s["kind"] == "conv1x1"]
    coef = fit_baseline("conv1x1", [s["config"] for s in conv], np.array([s["kernel_ms"] for s in conv]))
    assert coef.shape == (len(BASELINE_TERMS),) and (coef >= 0).all()
    np.testing.assert_allclose(coef[:3], [2.0, 0.05, 1.0], rtol=1e-3)
    # channels padded to XNNPACK's tiles: 17 output channels cost the MACs of 32, 16 those of 16
    cfg = dict(conv[0]["config"], c_out=17, kernel=1)
    assert baseline_terms("conv1x1", cfg)[1] == pytest.approx(2 * baseline_terms("conv1x1", dict(cfg, c_out=16))[1])
    assert len(extended_feature_vector("conv1x1", cfg)) == 17


def test_baseline_model_extrapolates_round_trips_and_checks_its_baselines(samples):
    fit = fit_kernels(samples, n_trees=5)
    assert set(fit.baselines) == set(fit.forests)
    assert 0 <= fit.stats["conv1x1"]["held_out_median_error_pct"] < 5
    model = KernelLatencyModel(forests=fit.forests, baselines=fit.baselines, invoke_ms=0.001,
                               target="log_ratio_baseline")
    # a kernel 16x larger than any sampled is priced by its baseline, not capped at the largest seen
    big = max((s for s in samples if s["kind"] == "conv1x1"), key=lambda s: s["config"]["macs"])["config"]
    big = dict(big, c_in=big["c_in"] * 4, c_out=big["c_out"] * 4, macs=big["macs"] * 16)
    assert model.kernel_ms("conv1x1", [big])[0] == pytest.approx(_law("conv1x1", big), rel=0.1)
    data = json.loads(json.dumps(model.to_json()))
    back = KernelLatencyModel.from_json(data)
    g = converter_view(whole_model_graphs(seed=5, n=1)[0][2])
    assert back.predict_ms(g) == pytest.approx(model.predict_ms(g), rel=1e-12)
    bad = dict(data, baselines={**data["baselines"], "conv": [1.0, -2.0, 0.0, 0.0]})
    with pytest.raises(CostError, match=r"baselines\.conv .*non-negative.*calibrate again"):
        KernelLatencyModel.from_json(bad, where="m.json")
    missing = dict(data, baselines={k: v for k, v in data["baselines"].items() if k != "conv"})
    with pytest.raises(CostError, match="m.json: target 'log_ratio_baseline' needs baselines.*missing conv"):
        KernelLatencyModel.from_json(missing, where="m.json")
    with pytest.raises(CostError, match="features .* for target 'log_ratio_baseline'"):
        KernelLatencyModel.from_json(dict(data, features=data["features"][:11]), where="m.json")


def _calibration(samples: list[dict], *, seed: int = 0, n_models: int = 4) -> dict:
    rows = []
    for name, shape, g in whole_model_graphs(seed=seed, n=n_models):
        view = converter_view(g)
        ms = 0.001 + sum(_law(kernel_kind(op, view), kernel_features(op, view)) for op in view.ops
                         if op.kind != "RESHAPE")
        rows.append({"space": name, "input": "x".join(map(str, shape)), "measured_ms": ms})
    return {"profile_id": "rpi4", "seed": seed, "invoke_ms": 0.001, "threads": 1, "samples": samples,
            "whole_models": rows}


def test_refit_from_a_stored_calibration_needs_no_measuring(samples):
    model = refit_calibration(_calibration(samples), where="cal.json")
    assert model.target == "log_ratio_baseline" and model.stats["whole_model_loo_within_10pct"] >= 0.75
    assert len(model.stats["whole_models"]) == 4 and "cal.json" in model.source
    data = _calibration(samples)
    data["whole_models"][2]["space"] = "other"
    with pytest.raises(MeasureError, match=r"cal.json: whole_models\[2\] is other .* seed 0 draws"):
        refit_calibration(data, where="cal.json")
    with pytest.raises(MeasureError, match="cal.json: needs samples"):
        refit_calibration({"samples": samples}, where="cal.json")


def test_bench_script_scores_a_refit_offline(samples, tmp_path, monkeypatch, capsys):
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps(_calibration(samples)))
    rng = np.random.default_rng(1000)
    rows = []
    from tinynas.space import get_space

    for _ in range(3):  # the models the script draws with --seed 1000, "measured" by the made-up law
        name, shape = SPACE_INPUTS[int(rng.integers(len(SPACE_INPUTS)))]
        space = get_space(name, input_shape=shape, num_classes=10)
        view = converter_view(space.graph(space.sample(rng)))
        ms = 0.001 + sum(_law(kernel_kind(op, view), kernel_features(op, view)) for op in view.ops
                         if op.kind != "RESHAPE")
        rows.append({"space": name, "input": "x".join(map(str, shape)), "measured_ms": ms, "wall_ms": ms})
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"rows": rows}))
    out = tmp_path / "out.json"
    monkeypatch.setattr(sys, "argv", ["bench", "--refit", str(cal), "--offline", str(bench), "--out", str(out)])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "scripts" / "bench_mobile_latency.py"), run_name="__main__")
    assert exit_.value.code == 0
    summary = json.loads(out.read_text())["summary"]
    assert summary["models"] == 3 and summary["measured"] == f"stored: {bench}"
    assert summary["learned_within_10pct"] == 1.0
    # several stored runs: each model's fastest over them
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps({"rows": [dict(r, measured_ms=2 * r["measured_ms"]) for r in rows]}))
    monkeypatch.setattr(sys, "argv", ["bench", "--refit", str(cal), str(cal), "--offline", str(slow), str(bench),
                                      "--out", str(out)])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "scripts" / "bench_mobile_latency.py"), run_name="__main__")
    assert exit_.value.code == 0
    merged = json.loads(out.read_text())
    assert merged["summary"]["learned_within_10pct"] == 1.0
    assert [r["measured_ms"] for r in merged["rows"]] == [r["measured_ms"] for r in rows]
    assert len(merged["rows"][0]["measured_rounds_ms"]) == 2
    # a stored run from another seed is refused, naming the file and the row
    monkeypatch.setattr(sys, "argv", ["bench", "--refit", str(cal), "--offline", str(bench), "--seed", "7"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "scripts" / "bench_mobile_latency.py"), run_name="__main__")
    assert exit_.value.code == 1 and "bench.json: rows[" in capsys.readouterr().err


def test_merged_calibrations_keep_each_fastest_time_and_refuse_other_draws(samples):
    from tinynas.measure.kernel_calibrate import merge_calibrations

    a = _calibration(samples)
    for s in a["samples"]:
        s["measured_ms"] = s["kernel_ms"] + 0.001
    b = json.loads(json.dumps(a))
    b["samples"][0]["measured_ms"] *= 0.5  # faster in b
    a["whole_models"][1]["measured_ms"] *= 2.0  # slower in a
    b["invoke_ms"] = 0.0008
    merged = merge_calibrations([a, b], where=["a.json", "b.json"])
    assert merged["invoke_ms"] == 0.0008
    assert merged["samples"][0]["kernel_ms"] == pytest.approx(max(b["samples"][0]["measured_ms"] - 0.0008, 1e-4))
    assert merged["samples"][1]["kernel_ms"] == pytest.approx(a["samples"][1]["measured_ms"] - 0.0008)
    assert merged["whole_models"][1]["measured_ms"] == b["whole_models"][1]["measured_ms"]
    assert a["whole_models"][1]["measured_ms"] != merged["whole_models"][1]["measured_ms"]  # inputs untouched
    assert refit_calibration(merged, where="a.json + b.json").stats["kernels"] == len(samples)
    other = json.loads(json.dumps(b))
    other["samples"][3]["config"]["c_out"] += 1
    with pytest.raises(MeasureError, match=r"b.json: samples\[3\] is .* not the .* of a.json"):
        merge_calibrations([a, other], where=["a.json", "b.json"])
    with pytest.raises(MeasureError, match="b.json: seed, samples or whole_models differ"):
        merge_calibrations([a, dict(b, samples=b["samples"][:-1])], where=["a.json", "b.json"])
