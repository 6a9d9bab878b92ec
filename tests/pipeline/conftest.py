"""Shared pieces of the pipeline tests: tiny budgets, a board nothing fits, one end-to-end run."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # helpers beside this file, any import mode

from pipeline_helpers import TINY  # noqa: E402


@pytest.fixture(scope="session")
def digits():
    from tinynas.data import load_dataset

    return load_dataset("digits", seed=0)


@pytest.fixture
def no_room_profile(tmp_path: Path, repo_root: Path) -> Path:
    """A board whose arena budget (1 KiB) no architecture of any space fits."""
    text = (repo_root / "hardware_profiles" / "nucleo-l010rb.toml").read_text()
    text = text.replace('id = "nucleo-l010rb"', 'id = "no-room"')
    text = re.sub(r"sram_bytes = 20_480.*", "sram_bytes = 7_168", text)
    path = tmp_path / "no-room.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """One `tinynas run` on digits for nano33ble with a tiny budget (shared by the report tests)."""
    from click.testing import CliRunner

    from tinynas.cli.main import cli

    out = tmp_path_factory.mktemp("run") / "digits-nano33ble"
    result = CliRunner().invoke(cli, ["run", "--profile", "nano33ble", "--dataset", "digits", *TINY,
                                      "--out", str(out), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out
