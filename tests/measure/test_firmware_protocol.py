"""The measurement code against the firmware's own protocol file
(firmware_templates/common/tinynas_protocol.c), built with the host compiler around the
firmware engineer's stub harness (tests/deploy/host_stub_main.c: fake clock, 1500 us per inference)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tty
from pathlib import Path

import pytest

from tinynas.measure.runner import measure_latency
from tinynas.resources import data_dir

STUB_US_PER_INFERENCE = 1500
HARNESS = Path(__file__).resolve().parents[1] / "deploy" / "host_stub_main.c"


@pytest.fixture(scope="module")
def stub_exe(tmp_path_factory) -> Path:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no host C compiler (gcc/cc) on PATH")
    common = data_dir("firmware_templates") / "common"
    out = tmp_path_factory.mktemp("fw") / "host_stub"
    subprocess.run([cc, "-std=c99", "-D_POSIX_C_SOURCE=200809L", "-O1", f"-I{common}",
                    str(common / "tinynas_protocol.c"), str(HARNESS), "-o", str(out)],
                   check=True, capture_output=True, text=True)
    return out


@pytest.fixture
def firmware_port(stub_exe):
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    proc = subprocess.Popen([str(stub_exe), "490", "12"], stdin=master, stdout=master, close_fds=True)
    yield os.ttyname(slave), proc
    proc.kill()
    proc.wait()
    os.close(master)
    os.close(slave)


@pytest.mark.timeout(60)
def test_measure_against_the_firmware_protocol(firmware_port, tmp_path):
    port, _ = firmware_port
    report = measure_latency(port=port, windows=3, min_window_s=0.05, timeout_s=2.0, run_dir=tmp_path)
    assert report.complete
    assert report.latency_ms == STUB_US_PER_INFERENCE / 1000  # the fake clock: exact
    assert report.min_ms == report.max_ms == report.p90_ms
    assert report.inferences_per_window == 34  # ceil(0.05 s / 1.5 ms)
    assert report.arena_used_bytes == 23940
    assert report.device["extension"]["model_id"] == "3fa2c1d0e9b8"
    assert report.upload_retries == 0
    assert (tmp_path / "measure" / "latency.json").is_file()


@pytest.mark.timeout(60)
def test_firmware_that_dies_mid_run(firmware_port):
    port, proc = firmware_port
    from tinynas.errors import MeasureError
    from tinynas.measure.ports import open_port
    from tinynas.measure.protocol import DeviceClient

    ser, name = open_port(port)
    try:
        client = DeviceClient(ser, port_name=name, timeout_s=0.5)
        client.drain(quiet_s=0.1)
        assert client.identify().input_bytes == 490
        proc.kill()
        proc.wait()
        with pytest.raises(MeasureError, match=rf"{port}: no answer to 'infer 5 0%'"):
            client.infer(count=5, warmup=0, timeout_s=0.5)
    finally:
        ser.close()
