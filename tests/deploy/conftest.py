"""Fixtures of the deploy tests: the shared digits model is trained once per session, in fixture setup."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The helper modules beside the tests (``_deploy_support``, ``_firmware_tools``) import
# by name in any pytest import mode, including --import-mode=importlib.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def deploy_digits_model():
    """Train (once) and quantize the small digits CNN of ``_deploy_support``; tests read it from there."""
    from _deploy_support import digits_int8, trained_digits_keras

    path = trained_digits_keras()
    digits_int8()
    return path
