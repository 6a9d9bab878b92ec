"""The mcunet row of the `tinynas run` matrix (run_matrix_helpers.py), in a file of its own: its
cells are the slowest, and pytest's workers share files, not tests."""

from __future__ import annotations

import pytest
from run_matrix_helpers import CELLS, OWN_FILE_SPACE, run_cell

HERE = [(space, strategy) for space, strategy in CELLS if space == OWN_FILE_SPACE]


@pytest.mark.slow
@pytest.mark.parametrize("space, strategy", HERE, ids=[f"{a}-{b}" for a, b in HERE])
def test_run_finishes(space, strategy, tmp_path, capsys, monkeypatch):
    run_cell(space, strategy, tmp_path, capsys, monkeypatch)
