"""Data tests keep generated datasets (mnist1d) in one temporary TINYNAS_HOME for the session."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def tinynas_home(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("tinynas_home")
    old = os.environ.get("TINYNAS_HOME")
    os.environ["TINYNAS_HOME"] = str(path)
    yield path
    if old is None:
        os.environ.pop("TINYNAS_HOME", None)
    else:
        os.environ["TINYNAS_HOME"] = old
