"""tinynas/measure/runner.py against the board emulator on a real pseudo-terminal."""

from __future__ import annotations

import json

import pytest

from tinynas.errors import MeasureError
from tinynas.measure.runner import LatencyReport, WindowResult, measure_latency, report_path


def test_host_latency_measurement_is_complete(emulator, kws_path, kws_arena, tmp_path, fast):
    emu = emulator(latency="host")
    report = measure_latency(port=emu.port, model=kws_path, run_dir=tmp_path / "run", **fast)
    assert report.complete and report.error is None
    assert len(report.windows) == 3
    assert report.inferences_per_window >= 1
    assert report.min_ms <= report.latency_ms <= report.max_ms
    assert report.min_ms <= report.p90_ms <= report.max_ms
    assert report.arena_used_bytes == kws_arena
    assert report.output_max_diff_int8 == 0  # the emulator runs the same TFLM interpreter
    assert report.upload_retries == 0 and report.upload_checked_by_crc
    assert report.device["name"] == "tinynas"
    written = json.loads(report_path(tmp_path / "run").read_text())
    assert written["latency_ms"] == pytest.approx(report.latency_ms)
    assert LatencyReport.from_json(written) == report


def test_predicted_mode_gives_identical_medians(emulator, kws_path, profile, fast):
    first = emulator(latency="predicted", profile=profile)
    second = emulator(latency="predicted", profile=profile)
    a = measure_latency(port=first.port, model=kws_path, profile=profile, **fast)
    b = measure_latency(port=second.port, model=kws_path, profile=profile, **fast)
    assert a.latency_ms == b.latency_ms
    assert a.windows == b.windows
    # The median is the cost model's prediction, to the microsecond the board timer resolves.
    assert a.latency_ms == pytest.approx(first.latency_us / 1000, abs=1e-3)
    assert a.predicted_latency_ms == pytest.approx(a.latency_ms, abs=1e-3)
    # Windows last at least min_window_s on the board's timer.
    assert all(w.elapsed_us >= fast["min_window_s"] * 1e6 for w in a.windows)
    assert a.features and a.features["invokes"] == 1


def test_statistics_are_median_min_max_p90():
    windows = tuple(WindowResult(index=i, inferences=10, elapsed_us=us)
                    for i, us in enumerate([10_000, 30_000, 20_000, 50_000, 40_000]))
    report = LatencyReport(port="p", device={}, profile_id=None, model_path=None, model_sha1=None, windows=windows,
                           inferences_per_window=10, warmup=1, min_window_s=0.0, upload_retries=0,
                           upload_checked_by_crc=False, arena_used_bytes=None, output_max_diff_int8=None,
                           predicted_latency_ms=None, features=None)
    assert report.latency_ms == 3.0 and report.min_ms == 1.0 and report.max_ms == 5.0
    assert report.p90_ms == pytest.approx(4.6)


def test_model_with_another_input_size_is_refused(emulator, mlperf_models, fast):
    emu = emulator()
    with pytest.raises(MeasureError, match=r"490 input bytes.*ad01_int8.tflite takes 640"):
        measure_latency(port=emu.port, model=mlperf_models["ad"], **fast)


def test_without_model_the_extension_line_gives_the_input_size(emulator, fast):
    emu = emulator()
    report = measure_latency(port=emu.port, **fast)
    assert report.complete and report.output_max_diff_int8 is None and report.features is None


def test_not_a_measurement_file(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(MeasureError, match="not a tinynas latency measurement"):
        LatencyReport.load(bad)


def test_over_tcp_with_a_pyserial_url(emulator, kws_path, fast):
    emu = emulator(tcp_port=0)
    assert emu.port.startswith("socket://127.0.0.1:")
    first = measure_latency(port=emu.port, model=kws_path, **fast)
    again = measure_latency(port=emu.port, model=kws_path, **fast)  # a new connection boots the board again
    assert first.complete and again.complete and again.output_max_diff_int8 == 0


def test_tcp_disconnect_mid_window(emulator, kws_path, fast):
    from tinynas.measure.runner import MeasurementFailed

    emu = emulator(tcp_port=0, faults=["disconnect:2"])
    with pytest.raises(MeasurementFailed, match=r"socket://127\.0\.0\.1:\d+: the port went away") as info:
        measure_latency(port=emu.port, model=kws_path, **fast)
    assert info.value.report.windows == ()


def test_bad_model_files(emulator, tmp_path, fast):
    from tinynas.errors import ModelFileError

    emu = emulator()
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ModelFileError, match=r"junk.tflite: not a TFLite flatbuffer"):
        measure_latency(port=emu.port, model=junk, **fast)
    with pytest.raises(ModelFileError, match=r"missing.tflite: cannot read the model"):
        measure_latency(port=emu.port, model=tmp_path / "missing.tflite", **fast)
