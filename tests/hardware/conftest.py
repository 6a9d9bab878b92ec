"""Each hardware test gets an empty TINYNAS_HOME and no TINYNAS_PROFILE_PATH, and fresh caches."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinynas.hardware import builtin_profile_dir, clear_cache


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "tinynas_home"
    monkeypatch.setenv("TINYNAS_HOME", str(home))
    monkeypatch.delenv("TINYNAS_PROFILE_PATH", raising=False)
    clear_cache()
    yield home
    clear_cache()


@pytest.fixture()
def builtin_text():
    """The text of a built-in profile, to derive malformed variants from."""

    def read(profile_id: str = "nano33ble") -> str:
        return (builtin_profile_dir() / f"{profile_id}.toml").read_text()

    return read
