"""``deploy`` and ``firmware generate`` never delete, move or rewrite a file they did not write
(issue 11, defect 1: deploying a run's model folder into itself deleted model.keras, arch.json
and the user's notes, because the whole --out folder was swapped for the new output)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from _deploy_support import digits, digits_int8, make_profile, trained_digits_keras
from tinynas.cli.main import cli, main
from tinynas.deploy import outdir
from tinynas.deploy.deployer import METRICS_FILE, DeployResult, deploy
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


def test_cli_deploying_an_output_model_into_its_own_folder_exits_1_and_keeps_it(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    deploy(model_path=_tflite(tmp_path), profile=make_profile(), dataset=digits(), out_dir=out, firmware=False)
    model = out / "model_int8.tflite"
    before = _snapshot(out)
    monkeypatch.setattr(sys, "argv", ["tinynas", "deploy", str(model), "--profile", "nano33ble", "--dataset",
                                      "digits", "--out", str(out)])
    with pytest.raises(SystemExit) as exc:
        main()
    text = capsys.readouterr().err
    assert exc.value.code == 1 and "model_int8.tflite" in text and "input model" in text and "another --out" in text
    assert "Traceback" not in text
    assert _snapshot(out) == before


def test_a_user_file_where_deploy_needs_a_folder_is_refused_before_anything_moves(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "firmware").write_text("my notes on the firmware\n")  # deploy writes firmware/<template>/...
    with pytest.raises(DeployError, match=r"firmware/.*did not write"):
        deploy(model_path=_tflite(tmp_path), profile=make_profile(), dataset=digits(), out_dir=out)
    assert _snapshot(out) == {"firmware": b"my notes on the firmware\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite", "out"]


def test_an_edited_file_list_never_reaches_outside_out(tmp_path):
    src = _tflite(tmp_path)
    out = tmp_path / "out"
    deploy(model_path=src, profile=make_profile(), dataset=digits(), out_dir=out, firmware=False)
    victim = tmp_path / "victim.txt"
    victim.write_text("outside --out\n")
    metrics = json.loads((out / METRICS_FILE).read_text())
    metrics["files"] += ["../victim.txt", str(victim)]
    (out / METRICS_FILE).write_text(json.dumps(metrics))
    deploy(model_path=src, profile=make_profile(), dataset=digits(), out_dir=out, firmware=False)
    assert victim.read_text() == "outside --out\n"


def _interrupt_after(monkeypatch, *, moves: int, into: Path) -> None:
    """Raise KeyboardInterrupt (a Ctrl-C) when the install has moved ``moves`` files into ``into``."""
    real, done = os.replace, []

    def replace(src, dst, *args, **kwargs):
        if Path(dst).resolve().is_relative_to(into.resolve()) and not Path(dst).name.startswith(outdir.JOURNAL):
            if len(done) == moves:
                raise KeyboardInterrupt
            done.append(dst)
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def test_an_interrupted_deploy_never_looks_finished_and_the_next_one_completes(tmp_path, monkeypatch):
    src = _tflite(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("notes\n")
    deploy(model_path=src, profile=make_profile(), dataset=digits(), out_dir=out)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, moves=3, into=out)
        with pytest.raises(KeyboardInterrupt):
            deploy(model_path=src, profile=make_profile(), dataset=digits(), out_dir=out)
    with pytest.raises(DeployError, match="not a finished deploy"):
        DeployResult.load(out)  # no metrics.json: half old, half new files never pass as a deploy
    assert (out / "notes.txt").read_text() == "notes\n"
    again = deploy(model_path=src, profile=make_profile(), dataset=digits(), out_dir=out)  # not refused
    assert set(_snapshot(out)) == {"notes.txt", *again.metrics["files"]}  # and no journal left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite", "out"]


def test_an_interrupted_firmware_regenerate_can_be_run_again(tmp_path, monkeypatch):
    kwargs = dict(template=None, model_bytes=digits_int8(), profile=load_profile("pico"), out_dir=tmp_path / "fw",
                  class_names=[str(c) for c in digits().class_names], arena_bytes=20_000, model_id="abc123abc123")
    project = generate_firmware(**kwargs)
    (project / "TODO.md").write_text("wire the sensor\n")
    with monkeypatch.context() as patch:
        _interrupt_after(patch, moves=2, into=project)
        with pytest.raises(KeyboardInterrupt):
            generate_firmware(**{**kwargs, "model_id": "def456def456"})
    assert not (project / STAMP).exists()  # the stamp comes last: no half project looks generated
    generate_firmware(**{**kwargs, "model_id": "def456def456"})
    assert json.loads((project / STAMP).read_text())["model_id"] == "def456def456"
    assert (project / "TODO.md").read_text() == "wire the sensor\n"
    assert not (project / outdir.JOURNAL).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fw"]


def test_cli_firmware_generate_keeps_user_files(tmp_path, capsys, monkeypatch):
    model = tmp_path / "m.tflite"
    model.write_bytes(digits_int8())
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine\n")
    args = ["firmware", "generate", "--model", str(model), "--profile", "pico", "--arena-bytes", "20000"]
    # A folder that is not a project of ours is refused whole: nothing added, nothing lost.
    monkeypatch.setattr(sys, "argv", ["tinynas", *args, "--out", str(theirs)])
    with pytest.raises(SystemExit) as exc:
        main()
    text = capsys.readouterr().err
    assert exc.value.code == 1 and "new or empty folder" in text and "Traceback" not in text
    assert _snapshot(theirs) == {"notes.txt": b"mine\n"}
    # A project it generated receives a regenerate; the files the user added there stay.
    project = tmp_path / "fw"
    assert CliRunner().invoke(cli, [*args, "--out", str(project)]).exit_code == 0
    (project / "notes.txt").write_text("mine\n")
    (project / "build").mkdir()
    (project / "build" / "app.uf2").write_bytes(b"UF2")
    again = CliRunner().invoke(cli, [*args, "--out", str(project), "--model-id", "def456def456"])
    assert again.exit_code == 0, again.output
    assert (project / "notes.txt").read_text() == "mine\n" and (project / "build" / "app.uf2").read_bytes() == b"UF2"
    assert json.loads((project / STAMP).read_text())["model_id"] == "def456def456"


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
