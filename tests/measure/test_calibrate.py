"""tinynas/measure/calibrate.py: recovering known latency coefficients from synthetic measurements,
held-out error before and after, the overlay that load_profile (and so the cost model) applies, and the
measurements and fits it refuses (forced measurements, older features, a fit worse than the profile)."""

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
    assert result.held_out == "leave-one-out"
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
    # The overlay holds the whole fit: the loaded profile predicts every measurement as the fit does.
    from tinynas.hardware.profile import LatencyModel

    fit = LatencyModel.from_json(result.latency)
    for path in paths[:10]:
        feats = LatencyReport.load(path).features
        assert predict_ms(feats, calibrated.latency, clock_hz=calibrated.clock_hz) == pytest.approx(
            predict_ms(feats, fit, clock_hz=calibrated.clock_hz), rel=1e-9)


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


def test_measurements_of_the_same_model_are_held_out_together(profile, synthetic, tmp_path):
    """Measuring each model three times (to average noise) must not make the held-out error look better:
    a copy of the held-out model left in the fit predicts it from itself."""
    import shutil

    distinct = synthetic.write_measurements(tmp_path / "once", synthetic.truth, count=5, seed=4, noise=0.05)
    repeated = []
    for i, path in enumerate(distinct):
        for k in range(3):
            repeated.append(tmp_path / "thrice" / f"{i}-{k}.json")
            repeated[-1].parent.mkdir(exist_ok=True)
            shutil.copyfile(path, repeated[-1])
    once = calibrate(profile=profile, measurements=distinct, save=False)
    thrice = calibrate(profile=profile, measurements=repeated, save=False)
    assert once.held_out == "leave-one-out"
    assert thrice.held_out == "leave-one-model-out (15 measurements of 5 models)"
    assert thrice.error_after_pct == pytest.approx(once.error_after_pct, rel=0.05) and once.error_after_pct > 1.0
    same = calibrate(profile=profile, measurements=repeated[:3], save=False)
    assert same.error_after_pct is None and same.held_out == "none (3 measurements of one model)"


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


def _report(tmp_path, features, **fields) -> Path:
    fields.setdefault("model_sha1", None)
    fields.setdefault("device", {})
    fields.setdefault("profile_id", "testboard")
    fields.setdefault("model_path", str(tmp_path / "m.tflite"))
    report = LatencyReport(port="p",
                           windows=(WindowResult(0, 10, 10_000),), inferences_per_window=10, warmup=0,
                           min_window_s=0, upload_retries=0, upload_checked_by_crc=True, arena_used_bytes=None,
                           output_max_diff_int8=0, predicted_latency_ms=None, features=features, **fields)
    return report.save(tmp_path / f"r{len(list(tmp_path.glob('r*.json')))}.json")


def test_refuses_a_forced_measurement(profile, synthetic, tmp_path):
    """Defect 6: `measure --force` on a device running another model marks the file; its latency is not the
    file's model, so calibrate must not fit it."""
    graph = synthetic.random_graph(np.random.default_rng(3), 3)
    good = synthetic.write_measurements(tmp_path / "good", synthetic.truth, count=3)
    forced = _report(tmp_path, graph_features(graph), device_model_id="aaaa1111", file_model_id="bbbb2222",
                     forced=True)
    with pytest.raises(MeasureError, match=rf"{forced.name}: was measured with --force .*aaaa1111.*bbbb2222"):
        calibrate(profile=profile, measurements=[*good, forced], save=False)


def test_refuses_a_measurement_of_the_board_emulator(profile, synthetic, tmp_path):
    """`tinynas emulate --latency host` answers in this machine's time: a board's latency model fitted to it
    would price every later search wrong, so calibrate refuses it by the emulator's extension key."""
    graph = synthetic.random_graph(np.random.default_rng(3), 3)
    good = synthetic.write_measurements(tmp_path / "good", synthetic.truth, count=3)
    emulated = _report(tmp_path, graph_features(graph), device={"name": "tinynas", "extension": {"emulator": "host"}})
    with pytest.raises(MeasureError, match=rf"{emulated.name}: was measured on tinynas's board emulator \(host "
                                           r"latency\).*this machine's time.*testboard's latency model"):
        calibrate(profile=profile, measurements=[*good, emulated], save=False)


def test_refuses_a_measurement_of_another_board_or_of_a_host_runtime(profile, synthetic, tmp_path):
    """A latency.json measured for another profile, or with ``measure --on host`` (LiteRT on this machine), is
    not this microcontroller's time: each is refused, naming what it was and what to measure instead."""
    graph = synthetic.random_graph(np.random.default_rng(3), 3)
    good = synthetic.write_measurements(tmp_path / "good", synthetic.truth, count=3)
    other = _report(tmp_path, graph_features(graph), profile_id="nano33ble")
    with pytest.raises(MeasureError, match=rf"{other.name}: was measured for profile 'nano33ble', not 'testboard'"):
        calibrate(profile=profile, measurements=[*good, other], save=False)
    host = _report(tmp_path, graph_features(graph), target="host", runtime="litert", threads=1)
    with pytest.raises(MeasureError, match=rf"{host.name}: was measured with --on host \(litert on that machine\), "
                                           r"not on the testboard board over serial"):
        calibrate(profile=profile, measurements=[*good, host], save=False)


def test_refuses_to_save_a_fit_worse_than_the_profile(profile, profile_env, synthetic, tmp_path):
    """Defect 6: measurements the current profile already predicts (but noisy, and few) give a fit that
    predicts held-out models worse; calibrate says both errors and keeps the profile."""
    paths = synthetic.write_measurements(tmp_path, profile, count=4, seed=2, noise=0.05)
    dry = calibrate(profile=profile, measurements=paths, save=False)
    assert dry.error_after_pct > dry.error_before_pct  # the situation this test is about
    with pytest.raises(MeasureError, match=(rf"new fit: {dry.error_after_pct:.1f} % leave-one-out, current profile: "
                                            rf"{dry.error_before_pct:.1f} % .*not saved")):
        calibrate(profile="testboard", measurements=paths)
    from tinynas.hardware import load_profile
    from tinynas.hardware.loader import overlay_path

    assert not overlay_path("testboard").exists()
    assert load_profile("testboard").latency == profile.latency


def test_features_of_an_older_tinynas_are_recounted_from_the_model(profile, kws_path, tmp_path):
    import hashlib

    from tinynas.measure.calibrate import model_features

    old = {"macs:CONV_2D": 2_560_000.0, "macs:DEPTHWISE_CONV_2D": 288_000.0, "ops": 13.0, "invokes": 1.0}
    model = tmp_path / "m.tflite"
    model.write_bytes(kws_path.read_bytes())
    path = _report(tmp_path, old, model_sha1=hashlib.sha1(model.read_bytes()).hexdigest())
    result = calibrate(profile=profile, measurements=[path], save=False)
    want = predict_ms(model_features(model), profile.latency, clock_hz=profile.clock_hz)
    assert result.per_measurement[0]["before_ms"] == pytest.approx(want)
    model.write_bytes(kws_path.read_bytes()[:-8] + b"changed!")
    with pytest.raises(MeasureError, match=r"older tinynas, and its model .* has changed"):
        calibrate(profile=profile, measurements=[path], save=False)
    model.unlink()
    with pytest.raises(MeasureError, match=r"older tinynas and its model .* is not there"):
        calibrate(profile=profile, measurements=[path], save=False)


def test_cli_exits_1_with_both_errors_when_the_fit_is_worse(profile, profile_env, synthetic, tmp_path, capsys,
                                                             monkeypatch):
    import sys

    from tinynas.cli.main import main

    paths = synthetic.write_measurements(tmp_path, profile, count=4, seed=2, noise=0.05)
    monkeypatch.setattr(sys, "argv", ["tinynas", "calibrate", "--profile", "testboard", *map(str, paths)])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 1
    assert "leave-one-out, current profile:" in err and "not saved" in err and "Traceback" not in err


def test_a_gpu_profile_refuses_host_time_and_onnx_models_it_cannot_read(tmp_path):
    """`measure --on host -p rtx-4090` times ONNX Runtime on this machine's CPU, not the GPU: calibrate refuses it.
    A trtexec measurement of an .onnx has no features calibrate can read (its reader is TFLite's): refused naming
    the file, not as a bare "<model bytes>: not a TFLite flatbuffer"."""
    import onnx
    from onnx import TensorProto, helper

    from tinynas.measure.target import measure_on_target

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = tmp_path / "model_fp32.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    measured = measure_on_target(target="host", model=model, profile="rtx-4090", runs=3, warmup=1, run_dir=tmp_path)
    assert measured.complete and measured.runtime == "onnxruntime"
    host = tmp_path / "measure" / "latency.json"
    with pytest.raises(MeasureError, match=r"latency\.json: was measured with --on host \(onnxruntime on this "
                                           r"machine's CPU\), not on rtx-4090's GPU"):
        calibrate(profile="rtx-4090", measurements=[host], save=False)
    on_gpu = _report(tmp_path, None, profile_id="rtx-4090", target="trtexec", runtime="tensorrt trtexec",
                     model_path=str(model))
    with pytest.raises(MeasureError, match=rf"{on_gpu.name}: measured the ONNX model {model}; .*no ONNX reader"):
        calibrate(profile="rtx-4090", measurements=[on_gpu], save=False)
