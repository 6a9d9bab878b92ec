"""The measure/emulate/flash/calibrate commands end to end: `tinynas emulate` in a child process
on a pseudo-terminal, `tinynas measure` against it, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinynas.cli.main import cli

TINYNAS = [sys.executable, "-m", "tinynas.cli.main"]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_emulate_then_measure(emulate_cli, kws_path, kws_arena, tmp_path, profile_env):
    facts = emulate_cli("--profile", "testboard", env={"TINYNAS_PROFILE_PATH": str(profile_env["profiles"])})
    assert facts["arena_used_bytes"] == kws_arena and facts["input_bytes"] == 490
    result = CliRunner().invoke(cli, ["measure", "--port", facts["port"], "--model", str(kws_path), "--profile",
                                      "testboard", "--windows", "3", "--min-window-s", "0.05", "--run",
                                      str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["complete"] and len(data["windows"]) == 3
    assert data["latency_ms"] == pytest.approx(facts["predicted_latency_us"] / 1000, abs=1e-3)
    assert (tmp_path / "run" / "measure" / "latency.json").is_file()

    table = CliRunner().invoke(cli, ["measure", "--port", facts["port"], "--model", str(kws_path),
                                     "--windows", "2", "--min-window-s", "0.05"])
    assert table.exit_code == 0, table.output
    assert "latency (median)" in table.output and "window 1:" in table.output
    assert f"arena used         {kws_arena:,} bytes" in table.output
    assert "EMULATED           tinynas's board emulator (predicted latency), not a board" in table.output
    into_run = CliRunner().invoke(cli, ["measure", "--port", facts["port"], "--model", str(kws_path), "--profile",
                                        "testboard", "--windows", "2", "--min-window-s", "0.05", "--run",
                                        str(tmp_path / "run2")])
    assert "calibrate  not with this measurement: was measured on tinynas's board emulator" in into_run.output
    # the emulator's latencies are the cost model's own: calibrate refuses them and writes no overlay
    measured = tmp_path / "run" / "measure" / "latency.json"
    assert json.loads(measured.read_text())["device"]["extension"]["emulator"] == "predicted"
    refused = CliRunner().invoke(cli, ["calibrate", "--profile", "testboard", str(measured)])
    said = refused.output + str(refused.exception)  # the entry point prints a MeasureError as "error: ..."
    assert refused.exit_code == 1 and "measured on tinynas's board emulator (predicted latency)" in said
    assert "Flash the model (tinynas flash) and measure the board itself" in said
    assert not list(profile_env["home"].rglob("testboard*.toml"))


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_hang_exits_nonzero_with_partial_json(emulate_cli, kws_path, tmp_path):
    facts = emulate_cli("--latency", "host", "--fault", "hang")
    proc = subprocess.run([*TINYNAS, "measure", "--port", facts["port"], "--model", str(kws_path),
                           "--windows", "3", "--min-window-s", "0.05", "--timeout-s", "1", "--run",
                           str(tmp_path), "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: {facts['port']}: no answer to 'infer")
    assert "m-lap-us-" in proc.stderr and "finished window(s) are in" in proc.stderr
    partial = json.loads(proc.stdout)
    assert partial["complete"] is False and len(partial["windows"]) == 1


def test_measure_no_such_port():
    proc = subprocess.run([*TINYNAS, "measure", "--port", "/dev/ttyNOPE0"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and "no such port '/dev/ttyNOPE0'" in proc.stderr


def test_calibrate_command(synthetic, profile_env, tmp_path):
    paths = synthetic.write_measurements(tmp_path / "m", synthetic.truth, count=12)
    out = tmp_path / "calibration.json"
    result = CliRunner().invoke(cli, ["calibrate", "--profile", "testboard", *map(str, paths), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "error before" in result.output and "overlay written to" in result.output
    data = json.loads(out.read_text())
    assert data["error_after_pct"] < data["error_before_pct"]
    assert Path(data["overlay_path"]).is_relative_to(profile_env["home"])


def test_flash_command_prints_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    (tmp_path / "fw").mkdir()
    (tmp_path / "fw" / ".tinynas_firmware.json").write_text(json.dumps(
        {"template": "zephyr", "build": "west build -b nrf5340dk/nrf5340/cpuapp .", "flash": "west flash"}))
    result = CliRunner().invoke(cli, ["flash", str(tmp_path / "fw")])
    assert result.exit_code == 1, result.output  # nothing was flashed
    assert "west is not installed" in result.output
    assert "  west build -b nrf5340dk/nrf5340/cpuapp .\n  west flash" in result.output


def test_emulate_needs_a_profile_for_predicted_latency(kws_path):
    from tinynas.errors import MeasureError

    result = CliRunner().invoke(cli, ["emulate", "--model", str(kws_path)])
    assert isinstance(result.exception, MeasureError)
    assert "needs a hardware profile" in str(result.exception)


def test_emulate_says_the_measure_command_with_its_profile(kws_path):
    """The line emulate prints is a command to paste: with the profile it was started with, so the measurement
    is compared with that board's prediction."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "tinynas.cli.main", "emulate", "--model", str(kws_path),
                             "-p", "nano33ble", "--no-realtime"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        port = proc.stdout.readline().strip()
        said = next(line for line in iter(proc.stderr.readline, "") if line.startswith("emulating"))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert f"measure with: tinynas measure --port {port} --model {kws_path} --profile nano33ble;" in said
