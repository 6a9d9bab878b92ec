"""A real board on a serial port: runs only with TINYNAS_TEST_PORT set (and optionally
TINYNAS_TEST_MODEL, the .tflite flashed on it, and TINYNAS_TEST_PROFILE)."""

from __future__ import annotations

import os

import pytest

from tinynas.measure.runner import measure_latency

PORT = os.environ.get("TINYNAS_TEST_PORT")

pytestmark = [pytest.mark.hardware, pytest.mark.skipif(not PORT, reason="no board: set TINYNAS_TEST_PORT")]


@pytest.mark.timeout(600)
def test_measure_real_board(tmp_path):
    report = measure_latency(port=PORT, model=os.environ.get("TINYNAS_TEST_MODEL"),
                             profile=os.environ.get("TINYNAS_TEST_PROFILE"), windows=3, min_window_s=1.0,
                             run_dir=tmp_path)
    assert report.complete and report.latency_ms > 0
    if report.output_max_diff_int8 is not None:
        assert report.output_max_diff_int8 <= 1  # CMSIS-NN may round one step differently
