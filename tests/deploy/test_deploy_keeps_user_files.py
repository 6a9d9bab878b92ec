"""``deploy`` and ``firmware generate`` never delete, move or rewrite a file they did not write
(issue 11, defect 1: deploying a run's model folder into itself deleted model.keras, arch.json
and the user's notes, because the whole --out folder was swapped for the new output)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from _deploy_support import digits, digits_int8, make_profile, trained_digits_keras
from tinynas.cli.main import cli, main
from tinynas.deploy.deployer import METRICS_FILE, deploy
from tinynas.deploy.firmware import STAMP, generate_firmware
from tinynas.errors import DeployError
from tinynas.hardware import load_profile

pytestmark = pytest.mark.usefixtures("deploy_digits_model")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_cli_deploy_into_the_model_folder_keeps_every_user_file(tmp_path):
    folder = tmp_path / "cp3"
    folder.mkdir()
    shutil.copy2(trained_digits_keras(), folder / "model.keras")
    (folder / "arch.json").write_text('{"space": "x", "decisions": {}}\n')
    (folder / "notes.txt").write_text("notes\n")
    before = _snapshot(folder)
    args = ["deploy", str(folder / "model.keras"), "--profile", "nano33ble", "--dataset", "digits",
            "--out", str(folder)]
    for _ in range(2):  # and again: a re-run replaces only its own files
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        after = _snapshot(folder)
        assert {k: after[k] for k in before} == before
        metrics = json.loads((folder / METRICS_FILE).read_text())
        assert set(after) == set(before) | set(metrics["files"])
        assert not set(before) & set(metrics["files"])
    assert (folder / "model_int8.tflite").is_file() and (folder / "firmware" / metrics["template"]).is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp3"]  # no temp folder left beside it


def test_an_output_name_taken_by_a_user_file_is_refused_and_nothing_moves(tmp_path, capsys, monkeypatch):
    src = tmp_path / "m.tflite"
    src.write_bytes(digits_int8())
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_data.h").write_text("// my own header\n")
    (out / "notes.txt").write_text("mine")
    before = _snapshot(out)
    monkeypatch.setattr(sys, "argv", ["tinynas", "deploy", str(src), "--profile", "nano33ble", "--dataset",
                                      "digits", "--out", str(out)])
    with pytest.raises(SystemExit) as exc:
        main()
    text = capsys.readouterr().err
    assert exc.value.code == 1 and "model_data.h" in text and "did not write" in text
    assert "Traceback" not in text
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite", "out"]


def test_the_input_model_is_never_overwritten(tmp_path):
    out = tmp_path / "out"
    first = deploy(model_path=_tflite(tmp_path), profile=make_profile(), dataset=digits(), out_dir=out,
                   firmware=False)
    # Deploying the earlier output model into its own folder would replace the file being read.
    model = first.model_path
    data = model.read_bytes()
    with pytest.raises(DeployError, match="input model"):
        deploy(model_path=model, profile=make_profile(), dataset=digits(), out_dir=out, firmware=False)
    assert model.read_bytes() == data


def test_files_a_previous_deploy_wrote_but_no_longer_writes_are_removed_others_kept(tmp_path):
    src = _tflite(tmp_path)
    out = tmp_path / "out"
    deploy(model_path=src, profile=make_profile(), dataset=digits(), out_dir=out)  # with firmware/
    assert (out / "firmware").is_dir()
    (out / "firmware" / "cmake-cortexm" / "build").mkdir()
    (out / "firmware" / "cmake-cortexm" / "build" / "app.elf").write_bytes(b"\x7fELF")
    again = deploy(model_path=src, profile=make_profile(), dataset=digits(), out_dir=out, firmware=False)
    assert not any(f.startswith("firmware/") for f in again.metrics["files"])
    left = sorted(p.relative_to(out / "firmware").as_posix() for p in (out / "firmware").rglob("*") if p.is_file())
    assert left == ["cmake-cortexm/build/app.elf"]  # the user's build output, and nothing of the old project


def test_regenerating_a_firmware_project_keeps_the_users_files(tmp_path):
    profile = load_profile("pico")
    model = digits_int8()
    project = tmp_path / "fw"
    kwargs = dict(template=None, model_bytes=model, profile=profile, out_dir=project,
                  class_names=[str(c) for c in digits().class_names], arena_bytes=20_000, model_id="abc123abc123")
    generate_firmware(**kwargs)
    (project / "build").mkdir()
    (project / "build" / "firmware.uf2").write_bytes(b"UF2")
    (project / "TODO.md").write_text("wire the sensor\n")
    stamp = json.loads((project / STAMP).read_text())
    generate_firmware(**{**kwargs, "model_id": "def456def456"})
    assert (project / "build" / "firmware.uf2").read_bytes() == b"UF2"
    assert (project / "TODO.md").read_text() == "wire the sensor\n"
    new_stamp = json.loads((project / STAMP).read_text())
    assert new_stamp["model_id"] == "def456def456" and new_stamp["files"] == stamp["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fw"]


def _tflite(tmp_path: Path) -> Path:
    src = tmp_path / "m.tflite"
    src.write_bytes(digits_int8())
    return src
