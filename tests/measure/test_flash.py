"""tinynas/measure/flash.py: the ecosystem tool runs when installed (a stand-in script on PATH
records what it was called with), otherwise the exact commands come back."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tinynas.errors import MeasureError
from tinynas.measure.flash import STAMP, flash_project


def make_project(folder: Path, *, template: str, build: str, flash: str) -> Path:
    folder.mkdir(parents=True)
    (folder / STAMP).write_text(json.dumps({"template": template, "build": build, "flash": flash}))
    return folder


def fake_tool(bin_dir: Path, name: str, *, exit_code: int = 0) -> Path:
    """A stand-in for the ecosystem's CLI: logs its arguments (one call per line) and exits."""
    bin_dir.mkdir(exist_ok=True)
    log = bin_dir / f"{name}.log"
    script = bin_dir / name
    script.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\necho "{name} says hello"\nexit {exit_code}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return log


def test_missing_tool_gives_the_exact_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    project = make_project(tmp_path / "fw", template="platformio", build="pio run -e nano33ble",
                           flash="pio run -e nano33ble -t upload")
    result = flash_project(project=project, port="/dev/ttyACM0")
    assert not result.ran and not result.tool_found and result.tool == "pio"
    assert result.commands == ("pio run -e nano33ble", "pio run -e nano33ble -t upload --upload-port /dev/ttyACM0")
    assert result.not_run_because == "pio is not installed (or not on PATH)"


def test_the_command_exits_1_when_nothing_was_flashed_and_names_why(tmp_path, monkeypatch):
    """A script `tinynas flash ... && tinynas measure ...` must not go on to measure the firmware that was
    already on the board: no tool, no --port or an unset variable is exit 1 (after the commands); a dry run 0."""
    from click.testing import CliRunner

    from tinynas.cli.main import cli

    log = fake_tool(tmp_path / "bin", "cmake")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin:/bin")
    monkeypatch.delenv("TFLM_DIR", raising=False)
    project = make_project(tmp_path / "fw", template="cmake-cortexm", build="cmake -B build -DTFLM_DIR=$TFLM_DIR",
                           flash="no-such-flasher write build/app.elf $PORT")
    res = CliRunner().invoke(cli, ["flash", str(project)])
    assert res.exit_code == 1 and "run these in" in res.output and "no-such-flasher write" in res.output
    why = ("no-such-flasher is not installed (or not on PATH); the environment variable TFLM_DIR is not set; "
           "no --port was given")
    assert f"nothing was flashed: {why}" in str(res.exception) and not log.exists()
    monkeypatch.setenv("TFLM_DIR", "/opt/tflm")
    res = CliRunner().invoke(cli, ["flash", str(project), "--port", "/dev/ttyACM0", "--json"])
    assert res.exit_code == 1 and json.loads(res.output)["not_run_because"] == (
        "no-such-flasher is not installed (or not on PATH)")
    dry = CliRunner().invoke(cli, ["flash", str(project), "--dry-run"])
    assert dry.exit_code == 0 and dry.output.count("dry run; run these in") == 1 and not log.exists()


def test_installed_tool_runs_with_the_port(tmp_path, monkeypatch):
    log = fake_tool(tmp_path / "bin", "arduino-cli")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin:/bin")
    project = make_project(tmp_path / "fw", template="arduino",
                           build="arduino-cli compile --fqbn arduino:mbed_nano:nano33ble tinynas_bench",
                           flash="arduino-cli upload --fqbn arduino:mbed_nano:nano33ble --port $PORT tinynas_bench")
    result = flash_project(project=project, port="/dev/ttyACM9")
    assert result.ran and result.returncode == 0 and "hello" in result.output_tail
    assert log.read_text().splitlines() == [
        "compile --fqbn arduino:mbed_nano:nano33ble tinynas_bench",
        "upload --fqbn arduino:mbed_nano:nano33ble --port /dev/ttyACM9 tinynas_bench",
    ]


def test_failing_tool_is_an_error_with_its_output(tmp_path, monkeypatch):
    fake_tool(tmp_path / "bin", "idf.py", exit_code=3)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin:/bin")
    project = make_project(tmp_path / "fw", template="espidf", build="idf.py set-target esp32s3 build",
                           flash="idf.py -p $PORT flash")
    with pytest.raises(MeasureError, match=r"'idf.py set-target esp32s3 build' failed with exit code 3:\nidf.py says hello"):
        flash_project(project=project, port="/dev/ttyUSB0")


def test_unset_environment_variables_stop_before_running(tmp_path, monkeypatch):
    fake_tool(tmp_path / "bin", "cmake")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin:/bin")
    monkeypatch.delenv("TFLM_DIR", raising=False)
    project = make_project(tmp_path / "fw", template="cmake-cortexm",
                           build="cmake -B build -DTFLM_DIR=$TFLM_DIR && cmake --build build",
                           flash="pyocd flash build/app.elf")
    result = flash_project(project=project, port="/dev/ttyACM0")
    assert not result.ran
    assert result.commands == ("cmake -B build -DTFLM_DIR=$TFLM_DIR", "cmake --build build", "pyocd flash build/app.elf")
    assert any("TFLM_DIR" in n for n in result.notes) and any("debug probe" in n for n in result.notes)


def test_generated_project(tmp_path, monkeypatch, profile, kws_bytes, kws_arena):
    from tinynas.deploy.firmware import generate_firmware

    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    project = generate_firmware(template="platformio" if profile.ecosystem.platformio_board else None,
                                model_bytes=kws_bytes, profile=profile, out_dir=tmp_path / "fw",
                                class_names=[f"c{i}" for i in range(12)], arena_bytes=kws_arena, model_id="kws")
    result = flash_project(project=project, port="/dev/ttyACM0", run=False)
    assert not result.ran and result.template == profile.ecosystem.default_template
    assert result.commands and all("{{" not in c for c in result.commands)


def test_not_a_project(tmp_path):
    with pytest.raises(MeasureError, match="no such firmware project folder"):
        flash_project(project=tmp_path / "nope")
    with pytest.raises(MeasureError, match="not a firmware project tinynas knows"):
        flash_project(project=tmp_path)


def test_auto_port_uses_the_projects_profile(tmp_path, profile):
    project = tmp_path / "fw"
    project.mkdir()
    (project / STAMP).write_text(json.dumps({"template": "arduino", "profile": "testboard", "build": "",
                                             "flash": "arduino-cli upload --port $PORT x"}))
    with pytest.raises(MeasureError, match="--port auto: no serial port with USB ids 2341:805a"):
        flash_project(project=project, port="auto", run=False)


def test_a_run_directory_flashes_its_one_project_and_several_are_refused(tmp_path, monkeypatch):
    """`tinynas run` prints its --out; the project is two levels below it (firmware/<template>), and
    the deploy stage's working copy (stages/deploy/<id>/firmware/<template>) is not a second one."""
    from click.testing import CliRunner

    from tinynas.cli.main import cli

    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    run = tmp_path / "run"
    project = make_project(run / "firmware" / "arduino", template="arduino", build="arduino-cli compile x",
                           flash="arduino-cli upload --port $PORT x")
    (run / "deploy").mkdir()
    make_project(run / "stages" / "deploy" / "abc" / "firmware" / "arduino", template="arduino", build="", flash="x")
    for given in (run, run / "firmware"):
        result = flash_project(project=given, port="/dev/ttyACM0", run=False)
        assert result.project == str(project) and result.commands[-1] == "arduino-cli upload --port /dev/ttyACM0 x"
        assert result.notes[0] == f"{project} is the one firmware project under {given}; using it"
    res = CliRunner().invoke(cli, ["flash", str(run), "--dry-run"])
    assert res.exit_code == 0 and f"run these in {project}:" in res.output

    other = make_project(run / "firmware" / "platformio", template="platformio", build="pio run", flash="pio run -t upload")
    with pytest.raises(MeasureError, match=re.escape(f"holds 2 firmware projects ({project}, {other}); pass the one")):
        flash_project(project=run, run=False)
    done = subprocess.run([sys.executable, "-m", "tinynas.cli.main", "flash", str(run), "--dry-run"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "pass the one to flash" in done.stderr and "Traceback" not in done.stderr


def test_after_flashing_it_says_how_to_measure_the_model(tmp_path, monkeypatch):
    """The next step after flashing is measuring: the command names the model the project holds, and in a run
    folder keeps the measurement in the run (--run), where `tinynas calibrate` and the report find it."""
    from click.testing import CliRunner

    from tinynas.cli.main import cli

    fake_tool(tmp_path / "bin", "arduino-cli")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin:/bin")
    run = tmp_path / "my run"
    project = make_project(run / "firmware" / "arduino", template="arduino", build="arduino-cli compile x",
                           flash="arduino-cli upload --port $PORT x")
    stamp = json.loads((project / STAMP).read_text())
    (project / STAMP).write_text(json.dumps({**stamp, "profile": "nano33ble"}))
    (run / "model").mkdir()
    (run / "model" / "model_int8.tflite").write_bytes(b"model")
    res = CliRunner().invoke(cli, ["flash", str(project), "--port", "/dev/ttyACM0"])
    assert res.exit_code == 0, res.output
    model = run / "model" / "model_int8.tflite"
    assert res.output.splitlines()[-1] == (f"measure it: tinynas measure --port /dev/ttyACM0 --profile nano33ble "
                                           f"--model '{model}' --run '{run}'")
    # a deploy folder: the model beside firmware/, no run to keep the measurement in
    (run / "model" / "model_int8.tflite").rename(run / "model_int8.tflite")
    res = CliRunner().invoke(cli, ["flash", str(project), "--dry-run"])
    assert res.exit_code == 0 and res.output.splitlines()[-1] == (
        f"then measure: tinynas measure --port auto --profile nano33ble --model '{run / 'model_int8.tflite'}'")
