"""Helpers of the pipeline tests (imported by path: tests have no __init__.py)."""

from __future__ import annotations

from cli_run import run_cli_output

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


