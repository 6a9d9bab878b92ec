"""`tinynas flash` runs argument lists, never a shell (issue #11 item 3): a board id with shell
syntax reaches the tool as one literal argument, and nothing it names is ever executed."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
from pathlib import Path

from click.testing import CliRunner

from tinynas.cli.main import cli
from tinynas.measure.flash import STAMP, flash_project

EVIL_FQBN = "x; touch PWNED #"


def argv_recorder(bin_dir: Path, name: str) -> Path:
    """A stand-in tool that writes each argument it received on its own line (one call per block)."""
    bin_dir.mkdir(exist_ok=True)
    log = bin_dir / f"{name}.argv"
    script = bin_dir / name
    script.write_text(f"#!{sys.executable}\nimport sys\n"
                      f"with open({str(log)!r}, 'a') as f:\n"
                      "    f.write('\\n'.join(sys.argv[1:]) + '\\n--\\n')\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return log


def _calls(log: Path) -> list[list[str]]:
    return [block.strip("\n").split("\n") for block in log.read_text().split("--\n") if block.strip()]


def _no_pwned(*folders: Path) -> None:
    for folder in folders:
        assert not list(folder.rglob("PWNED")), f"a shell ran: PWNED in {folder}"


def test_a_generated_project_passes_the_board_id_as_one_argument(tmp_path, monkeypatch, profile, kws_bytes):
    """The profile bypasses validation (built in code), as a hand-edited stamp would."""
    from tinynas.deploy.firmware import generate_firmware

    log = argv_recorder(tmp_path / "bin", "arduino-cli")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin:/bin")
    evil = dataclasses.replace(profile, ecosystem=dataclasses.replace(profile.ecosystem, arduino_fqbn=EVIL_FQBN))
    project = generate_firmware(template="arduino", model_bytes=kws_bytes, profile=evil, out_dir=tmp_path / "fw",
                                class_names=[], arena_bytes=24_272, model_id="kws")
    stamp = json.loads((project / STAMP).read_text())
    assert stamp["build"] == "arduino-cli compile --fqbn 'x; touch PWNED #' tinynas_bench"  # shlex-quoted for humans
    monkeypatch.chdir(tmp_path)
    result = flash_project(project=project, port="/dev/ttyACM0")
    assert result.ran and result.returncode == 0
    assert _calls(log) == [
        ["compile", "--fqbn", EVIL_FQBN, "tinynas_bench"],
        ["upload", "--fqbn", EVIL_FQBN, "--port", "/dev/ttyACM0", "tinynas_bench"],
    ]
    _no_pwned(tmp_path)


def test_an_unquoted_stamp_line_is_still_not_a_shell(tmp_path, monkeypatch):
    """Stamps written before quoting: ';', '#', '|' and '$(...)' stay literal characters."""
    log = argv_recorder(tmp_path / "bin", "arduino-cli")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin:/bin")
    project = tmp_path / "fw"
    project.mkdir()
    (project / STAMP).write_text(json.dumps({
        "template": "arduino", "build": "arduino-cli compile --fqbn x; touch PWNED # tinynas_bench",
        "flash": "arduino-cli upload --fqbn a:b:c$(touch PWNED)|touch PWNED --port $PORT tinynas_bench"}))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["flash", str(project), "--port", "/dev/ttyACM0"])
    assert result.exit_code == 0, result.output
    assert _calls(log) == [
        ["compile", "--fqbn", "x;", "touch", "PWNED", "#", "tinynas_bench"],
        ["upload", "--fqbn", "a:b:c$(touch", "PWNED)|touch", "PWNED", "--port", "/dev/ttyACM0", "tinynas_bench"],
    ]
    _no_pwned(tmp_path)


def test_environment_variables_and_globs_are_expanded_word_by_word(tmp_path, monkeypatch):
    log = argv_recorder(tmp_path / "bin", "picotool")
    cmake_log = argv_recorder(tmp_path / "bin", "cmake")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin:/bin")
    monkeypatch.setenv("PICO_TFLMICRO_PATH", "/opt/pico tflmicro; touch PWNED")
    project = tmp_path / "fw"
    (project / "build").mkdir(parents=True)
    (project / "build" / "app.uf2").write_bytes(b"")
    (project / STAMP).write_text(json.dumps({
        "template": "pico", "build": "cmake -B build -DPICO_TFLMICRO_PATH=$PICO_TFLMICRO_PATH && cmake --build build",
        "flash": "picotool load -x build/*.uf2"}))
    result = flash_project(project=project)
    assert result.ran
    assert _calls(cmake_log) == [["-B", "build", "-DPICO_TFLMICRO_PATH=/opt/pico tflmicro; touch PWNED"],
                                 ["--build", "build"]]
    assert _calls(log) == [["load", "-x", "build/app.uf2"]]
    _no_pwned(tmp_path)
