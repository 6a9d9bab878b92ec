"""``--strategy-option KEY=VALUE``: a strategy's hyperparameters from the command line, typed as TOML reads
them, checked by the strategy before anything is written, kept in config.toml [strategy] and binding on resume."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from tinynas.cli.common import Setting
from tinynas.cli.main import cli
from tinynas.pipeline.rundir import loads_config

SEARCH = ["search", "--profile", "nano33ble", "--dataset", "digits", "--space", "dscnn", "--strategy", "evolution",
          "--budget-candidates", "2", "--search-epochs", "1", "--search-samples", "64", "--no-progress"]


@pytest.mark.parametrize("text, pair", [("steps_per_phase=200", ("steps_per_phase", 200)),
                                        ("max_width = 0.35", ("max_width", 0.35)),
                                        ("flag=true", ("flag", True)),
                                        ("name=fast", ("name", "fast")),
                                        ("name=\"a b\"", ("name", "a b"))])
def test_values_are_typed_as_toml_reads_them(text, pair):
    assert Setting().convert(text, None, None) == pair


@pytest.mark.parametrize("text", ["steps_per_phase", "=3", "two words=1"])
def test_a_pair_without_a_key_is_refused(text):
    with pytest.raises(click.BadParameter, match="expected KEY=VALUE"):
        Setting().convert(text, None, None)


@pytest.mark.parametrize("option, message", [
    ("population_sise=8", "has no hyperparameter 'population_sise'"),
    ("population_size=many", "cannot take population_size='many'"),
    ("population_size=1", "population_size"),
])
def test_a_bad_option_exits_1_and_writes_nothing(tmp_path, option, message):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [*SEARCH, "--strategy-option", option, "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert message in str(result.exception) and not out.exists()
    result = CliRunner().invoke(cli, [*SEARCH, "--strategy-option", "population_size", "--out", str(out)])
    assert result.exit_code == 2 and "--strategy-option" in result.output and not out.exists()


@pytest.mark.slow
def test_an_option_reaches_config_and_binds_the_resume(tmp_path):
    out = tmp_path / "run"
    flags = ["--strategy-option", "population_size=4", "--strategy-option", "sample_size=2"]
    result = CliRunner().invoke(cli, [*SEARCH, *flags, "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    strategy = loads_config((out / "config.toml").read_text(), where="config")["strategy"]
    assert strategy["name"] == "evolution" and strategy["population_size"] == 4 and strategy["sample_size"] == 2

    again = CliRunner().invoke(cli, [*SEARCH, *flags, "--out", str(out)], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    other = CliRunner().invoke(cli, [*SEARCH, "--strategy-option", "population_size=6", "--out", str(out)])
    assert other.exit_code == 1 and "population_size" in str(other.exception)
    assert loads_config((out / "config.toml").read_text(), where="config")["strategy"]["population_size"] == 4
