"""Exit codes are part of the interface: every command's error path exits 1 with a one-line
message and no traceback; click's usage errors (unknown option, bad choice) exit 2.

The table below holds one bad-input call per command; a test checks that it names every
command of the group, so a new command cannot land without its error path being checked.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click
import pytest

from tinynas.cli.main import COMMANDS, cli, main


def _leaf_commands() -> set[str]:
    """Every runnable command path (``"profiles validate"``, ``"run"``), imported for real."""
    ctx = click.Context(cli)
    names: set[str] = set()

    def walk(cmd: click.Command, path: str) -> None:
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, sub), f"{path} {sub}".strip())
        else:
            names.add(path)

    for name in COMMANDS:
        walk(cli.get_command(ctx, name), name)
    return names


# command -> arguments with a bad input that reaches the library (not a click usage error)
BAD_CALLS: dict[str, list[str]] = {
    "profiles list": ["--kind", "no-such-kind"],
    "profiles show": ["no-such-board"],
    "profiles validate": ["{tmp}/bad.toml"],
    "space list": ["--not-an-option"],
    "space sample": ["--space", "no-such-space", "--input-shape", "8,8,1", "--classes", "10"],
    "space fit": ["--space", "no-such-space", "--profile", "nano33ble"],
    "space build": ["{tmp}/arch.json", "--input-shape", "8,8,1", "--classes", "10", "--out", "{tmp}/m.keras"],
    "estimate": ["{tmp}/garbage.tflite", "-p", "nano33ble"],
    "datasets list": ["--not-an-option"],
    "datasets inspect": ["no-such-dataset"],
    "datasets cache": ["--clear", "everything"],
    "train": ["{tmp}/arch.json", "--dataset", "digits", "--out", "{tmp}/m.keras"],
    "deploy": ["{tmp}/missing.keras", "--profile", "nano33ble", "--dataset", "digits", "--out", "{tmp}/dep"],
    "firmware list": ["--not-an-option"],
    "firmware generate": ["--template", "arduino", "--model", "{tmp}/garbage.tflite", "--profile", "nano33ble",
                          "--out", "{tmp}/fw"],
    "proxies list": ["--not-an-option"],
    "proxies score": ["--space", "no-such-space"],
    "proxies benchmark": ["--space", "dscnn"],
    "search": ["--profile", "no-such-board", "--dataset", "digits", "--out", "{tmp}/s"],
    "run": ["--profile", "no-such-board", "--dataset", "digits", "--out", "{tmp}/r"],
    "sweep": ["--kind", "mcu", "--dataset", "no-such-dataset", "--out", "{tmp}/sw"],
    "report": ["{tmp}"],
    "measure": ["--port", "{tmp}/no-such-port", "--profile", "nano33ble", "--model", "{tmp}/garbage.tflite"],
    "emulate": ["--model", "{tmp}/garbage.tflite", "--profile", "nano33ble"],
    "flash": ["{tmp}/no-such-project"],
    "calibrate": ["--profile", "nano33ble", "{tmp}/missing.json"],
}
# commands whose only bad input is a usage error: click's convention, exit 2
USAGE = {"profiles list", "space list", "datasets list", "datasets cache", "firmware list", "proxies list"}


def _invoke(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["tinynas", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code or 0, out.out + out.err


def test_the_table_covers_every_command() -> None:
    assert set(BAD_CALLS) == _leaf_commands()


@pytest.mark.parametrize("command", sorted(BAD_CALLS))
def test_bad_input_exits_nonzero_with_a_clear_message(command: str, tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "bad.toml").write_text('id = "bad"\n')
    (tmp_path / "arch.json").write_text('{"space": "dscnn"}\n')
    (tmp_path / "garbage.tflite").write_bytes(b"garbage!")
    args = [a.replace("{tmp}", str(tmp_path)) for a in BAD_CALLS[command]]
    code, text = _invoke([*command.split(), *args], capsys, monkeypatch)
    assert code == (2 if command in USAGE else 1), text
    assert "Traceback" not in text
    assert text.strip(), "an error must say what went wrong"
    if command not in USAGE:
        assert "error" in text.lower() or "INVALID" in text


def test_profiles_validate_exits_0_on_good_files_and_1_if_any_is_bad(tmp_path, capsys, monkeypatch, repo_root) -> None:
    good = str(repo_root / "hardware_profiles" / "nano33ble.toml")
    assert _invoke(["profiles", "validate", good], capsys, monkeypatch)[0] == 0
    (tmp_path / "bad.toml").write_text('id = "bad"\n')
    code, text = _invoke(["profiles", "validate", good, str(tmp_path / "bad.toml")], capsys, monkeypatch)
    assert code == 1 and "INVALID" in text


def _commands(group: click.Group, prefix: str = ""):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_every_profile_option_takes_p_as_run_and_estimate_do() -> None:
    """`run -p nano33ble` then `deploy -p nano33ble` answered "No such option '-p'"."""
    missing = [name for name, command in _commands(cli) for param in command.params
               if isinstance(param, click.Option) and "--profile" in param.opts and "-p" not in param.opts]
    assert missing == [] and len(list(_commands(cli))) > 20


def test_every_count_option_takes_n_and_refuses_a_count_it_cannot_use(capsys, monkeypatch) -> None:
    """`space sample -n 3` answered "No such option '-n'"; `proxies benchmark --n 0` printed an empty table."""
    missing = [name for name, command in _commands(cli) for param in command.params
               if "--n" in param.opts and "-n" not in param.opts]
    assert missing == []
    sample = ["space", "sample", "--space", "dscnn", "--input-shape", "8,8,1", "--classes", "4", "-n", "2", "--json"]
    code, text = _invoke(sample, capsys, monkeypatch)
    assert code == 0 and len(text.strip().splitlines()) == 2
    for argv in (["proxies", "benchmark", "--space", "nasbench201", "-n", "2"],
                 ["proxies", "score", "--space", "dscnn", "--n", "0"]):
        code, text = _invoke(argv, capsys, monkeypatch)
        assert code == 2 and "Invalid value for '-n' / '--n'" in text, text


@pytest.mark.parametrize("command,module", [("run", "run"), ("search", "run"), ("sweep", "sweep")])
def test_ctrl_c_exits_130_and_says_the_same_command_resumes(command, module, tmp_path, capsys, monkeypatch) -> None:
    """The pipeline keeps everything on Ctrl-C (tests/pipeline/test_resume.py); the user is told where and how on."""
    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module(f"tinynas.pipeline.{module}"), command, interrupted)
    out = tmp_path / "out"
    code, text = _invoke([command, "-p", "nano33ble", "--dataset", "digits", "--out", str(out)], capsys, monkeypatch)
    assert code == 130
    assert f"interrupted: what the {command} had done is kept in {out}; the same command again resumes it" in text


def test_ctrl_c_elsewhere_just_says_interrupted(tmp_path, capsys, monkeypatch) -> None:
    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("tinynas.cli.space._space_and_profile", interrupted)
    code, text = _invoke(["space", "sample", "--space", "dscnn", "--input-shape", "8,8,1", "--classes", "10"],
                         capsys, monkeypatch)
    assert (code, text.strip().splitlines()[-1]) == (130, "interrupted")
