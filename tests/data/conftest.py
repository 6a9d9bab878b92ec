"""Data tests keep generated datasets (mnist1d) in one temporary TINYNAS_HOME for the session."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _home(tinynas_home):
    return tinynas_home
