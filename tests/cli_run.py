"""Run the ``tinynas`` command in the test's own process (tests have no __init__.py: tests/conftest.py puts this
folder on sys.path)."""

from __future__ import annotations


def run_cli_output(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``tinynas ARGS`` in this process: its exit code (0 when main returns), stdout and stderr."""
    import sys

    import pytest

    from tinynas.cli.main import main

    monkeypatch.setattr(sys, "argv", ["tinynas", *args])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err
