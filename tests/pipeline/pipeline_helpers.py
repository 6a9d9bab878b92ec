"""Helpers of the pipeline tests (imported by path: tests have no __init__.py)."""

from __future__ import annotations

# Flags that make a run take seconds: few candidates, one epoch on a small subset.
TINY = ["--budget-candidates", "3", "--search-epochs", "1", "--search-samples", "200", "--final-epochs", "1",
        "--final-top-k", "2", "--prefilter-candidates", "12", "--no-progress"]


def tiny_settings(**changes):
    from tinynas.pipeline.settings import RunSettings

    values = dict(profile="nano33ble", dataset="digits", budget_candidates=3, search_epochs=1, search_samples=200,
                  final_epochs=1, final_top_k=2, prefilter_candidates=12, prefilter_keep=4)
    values.update(changes)
    return RunSettings(**values)


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """``tinynas ARGS`` in this process: its exit code (0 when main returns) and what it wrote to stderr."""
    code, _, err = run_cli_output(monkeypatch, capsys, *args)
    return code, err


def run_cli_output(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``tinynas ARGS`` in this process: its exit code, stdout and stderr."""
    import sys

    import pytest

    from tinynas.cli.main import main

    monkeypatch.setattr(sys, "argv", ["tinynas", *args])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err
