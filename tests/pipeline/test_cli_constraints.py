"""Budgets stated on the command line (--latency-ms, --arena-budget, --flash-budget, --max-macs):
they replace the profile's, bind every trained candidate, and show in config.toml, summary and report."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner
from pipeline_helpers import TINY

from tinynas.cli.common import ByteSize, Count
from tinynas.cli.main import cli
from tinynas.errors import ProfileError
from tinynas.hardware import load_profile
from tinynas.pipeline.journal import Journal
from tinynas.pipeline.rundir import loads_config


@pytest.mark.parametrize("text, value", [("32768", 32768), ("32K", 32768), ("32KiB", 32768), ("32 kb", 32768),
                                         ("1.5MiB", 1_572_864), ("12_288", 12288)])
def test_byte_sizes(text, value):
    assert ByteSize().convert(text, None, None) == value


@pytest.mark.parametrize("text, value", [("500000", 500_000), ("500k", 500_000), ("1.2M", 1_200_000)])
def test_counts(text, value):
    assert Count().convert(text, None, None) == value


@pytest.mark.parametrize("text", ["", "-4K", "0", "12Q", "K", "inf", "nan", "1e999"])
def test_nonsense_sizes_are_refused(text):
    with pytest.raises(click.BadParameter, match="expected a positive"):
        ByteSize().convert(text, None, None)


def test_budgets_replace_the_profiles_and_are_checked_against_the_part():
    p = load_profile("nano33ble")
    q = p.with_budgets(arena_budget_bytes=12_288, flash_budget_bytes=65_536, latency_target_ms=30.0, max_macs=300_000)
    assert (q.sram_budget_bytes, q.flash_budget_bytes, q.latency_target_ms, q.max_macs) == (12_288, 65_536, 30.0, 300_000)
    assert q.sram_bytes == p.sram_bytes and p.max_macs is None
    with pytest.raises(ProfileError, match="--arena-budget .* 262144 B of SRAM"):
        p.with_budgets(arena_budget_bytes=p.sram_bytes + 1)
    with pytest.raises(ProfileError, match="--latency-ms"):
        p.with_budgets(latency_target_ms=float("inf"))


def test_a_bad_budget_exits_1_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", "--profile", "nano33ble", "--dataset", "digits", "--arena-budget", "2M",
                                      "--out", str(out)])
    assert result.exit_code == 1 and "--arena-budget" in str(result.exception)
    assert not out.exists()
    result = CliRunner().invoke(cli, ["run", "--profile", "nano33ble", "--dataset", "digits", "--max-macs", "lots",
                                      "--out", str(out)])
    assert result.exit_code == 2 and "--max-macs" in result.output and not out.exists()


@pytest.mark.slow
def test_command_line_budgets_bind_the_run(tmp_path):
    out = tmp_path / "run"
    flags = ["--arena-budget", "8K", "--max-macs", "300k", "--latency-ms", "30", "--flash-budget", "64KiB"]
    result = CliRunner().invoke(cli, ["run", "--profile", "nano33ble", "--dataset", "digits", *TINY, *flags,
                                      "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "constraints" in result.output and "max_macs 300000" in result.output

    config = loads_config((out / "config.toml").read_text(), where="config")
    assert config["constraints"] == {"latency_ms": 30.0, "arena_budget_bytes": 8192, "flash_budget_bytes": 65536,
                                     "max_macs": 300_000}
    assert config["profile"]["sram_budget_bytes"] == 8192 and config["profile"]["max_macs"] == 300_000
    for entry in Journal(out / "journal.jsonl").candidates():
        cost = entry["cost"]
        assert cost["fits"] and cost["arena_bytes"] <= 8192 and cost["macs"] <= 300_000, entry["id"]
        assert cost["latency_ms"] <= 30 and cost["flash_bytes"] <= 65536
    summary = json.loads((out / "summary.json").read_text())
    assert summary["constraints"]["arena_budget_bytes"] == 8192
    assert summary["winner"]["tflm_arena_bytes"] <= 8192 and summary["winner"]["fits"] is True
    assert f"arena {summary['winner']['tflm_arena_bytes']:,} B  flash {summary['winner']['tflite_flash_bytes']:,} B" \
        in result.output  # the printed summary writes bytes as the report does
    report = (out / "report.md").read_text()
    assert "budgets from the command line" in report and "arena_budget_bytes 8192" in report
    assert "(budget 8,192)" in report
    stripped = summary["winner"]["names_stripped_bytes"]  # deploy writes the model without tensor names
    assert stripped > 0 and (f"| flash | {summary['winner']['tflite_flash_bytes']:,} bytes (budget 65,536; "
                             f"{stripped:,} bytes of the converter's tensor names stripped) |") in report
    row = next(r for r in summary["pareto"]["arena_bytes"] if r["flash_bytes"] >= 1000)
    assert f"| {row['arena_bytes']:,} | {row['flash_bytes']:,} |" in report  # Pareto rows as the winner's

    # The same folder with other budgets is another configuration: refused, nothing lost.
    again = CliRunner().invoke(cli, ["run", "--profile", "nano33ble", "--dataset", "digits", *TINY,
                                     "--arena-budget", "9K", "--out", str(out)])
    assert again.exit_code == 1 and "another configuration" in str(again.exception)
