"""tinynas/measure/calibrate.py: recovering known latency coefficients from synthetic measurements,
held-out error before and after, and the overlay that load_profile (and so the cost model) applies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinynas.errors import MeasureError
from tinynas.measure.calibrate import calibrate, graph_features, predict_ms
from tinynas.measure.runner import LatencyReport, WindowResult

def test_recovers_known_coefficients_and_lowers_held_out_error(profile, synthetic, tmp_path):
    truth = synthetic.truth
    paths = synthetic.write_measurements(tmp_path, truth, count=40)
    result = calibrate(profile="testboard", measurements=paths)
    got = result.coefficients
    # Every coefficient that carries more than ~1 % of the cycles (SOFTMAX over 10-64 outputs does not).
    for key, want in [("macs:CONV_2D", 2.2), ("macs:DEPTHWISE_CONV_2D", 6.5), ("macs:FULLY_CONNECTED", 3.1),
                      ("ops", 4500.0), ("elements:MAX_POOL_2D", 2.5),
                      ("invokes", 20000.0)]:
        assert got[key] == pytest.approx(want, rel=0.03), key
    assert result.error_after_pct < 1.0 < result.error_before_pct
    assert result.held_out == "5-fold cross-validation"
    # The overlay is what load_profile now gives, so the cost model uses it.
    from tinynas.hardware import load_profile

    calibrated = load_profile("testboard")
    assert Path(result.overlay_path).is_file()
    assert calibrated.latency.cycles_per_mac["CONV_2D"] == pytest.approx(got["macs:CONV_2D"])
    assert calibrated.latency.op_overhead_cycles == pytest.approx(got["ops"])
    from tinynas.cost import estimate

    graph = synthetic.random_graph(np.random.default_rng(99), 99)
    want_ms = estimate(graph, profile=truth).latency_ms
    assert estimate(graph, profile=calibrated).latency_ms == pytest.approx(want_ms, rel=0.01)
    assert abs(estimate(graph, profile=profile).latency_ms - want_ms) > 0.05 * want_ms
    assert json.loads(json.dumps(result.to_json()))["measurements"] == 40


def test_noisy_measurements_still_help(profile, synthetic, tmp_path):
    paths = synthetic.write_measurements(tmp_path, synthetic.truth, count=25, seed=1, noise=0.03)
    result = calibrate(profile=profile, measurements=paths, save=False)
    assert result.overlay_path is None
    assert result.error_after_pct < result.error_before_pct / 3
    assert result.coefficients["macs:CONV_2D"] == pytest.approx(2.2, rel=0.1)


def test_one_measurement_keeps_the_rest_of_the_model(profile, synthetic, tmp_path):
    paths = synthetic.write_measurements(tmp_path, synthetic.truth, count=1)
    result = calibrate(profile=profile, measurements=paths, save=False)
    assert result.error_after_pct is None and "one measurement" in result.held_out
    # Kinds the measurement never ran keep the profile's values.
    assert result.latency["cycles_per_element"]["default"] == profile.latency.cycles_per_element["default"]


def test_features_price_like_the_cost_model(profile, synthetic, kws_path):
    from tinynas.cost import estimate
    from tinynas.space.tflite_reader import read_tflite

    graphs = [read_tflite(kws_path)] + [synthetic.random_graph(np.random.default_rng(s), s) for s in range(5)]
    for graph in graphs:
        want = estimate(graph, profile=profile).latency_ms
        assert predict_ms(graph_features(graph), profile.latency, clock_hz=profile.clock_hz) == pytest.approx(want)


def test_bad_measurement_files(profile, profile_env, tmp_path):
    with pytest.raises(MeasureError, match="no such measurement file"):
        calibrate(profile=profile, measurements=[tmp_path / "missing.json"], save=False)
    report = LatencyReport(port="p", device={}, profile_id=None, model_path=str(tmp_path / "gone.tflite"),
                           model_sha1=None, windows=(WindowResult(0, 1, 100),), inferences_per_window=1, warmup=0,
                           min_window_s=0, upload_retries=0, upload_checked_by_crc=False, arena_used_bytes=None,
                           output_max_diff_int8=None, predicted_latency_ms=None, features=None)
    path = report.save(tmp_path / "nofeatures.json")
    with pytest.raises(MeasureError, match=r"nofeatures.json: has no per-op features.*--model"):
        calibrate(profile=profile, measurements=[path], save=False)
    with pytest.raises(MeasureError, match="at least one measurement"):
        calibrate(profile=profile, measurements=[], save=False)
