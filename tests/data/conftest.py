"""Data tests keep generated datasets (mnist1d) in one temporary TINYNAS_HOME for the session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("tinynas_home")


@pytest.fixture(autouse=True)
def tinynas_home(session_home, monkeypatch: pytest.MonkeyPatch):
    """TINYNAS_HOME set for each test, not once for the worker: set once, a session fixture of another
    directory set later on the same xdist worker replaced it, and mnist1d was cached in the other home."""
    monkeypatch.setenv("TINYNAS_HOME", str(session_home))
    return session_home
