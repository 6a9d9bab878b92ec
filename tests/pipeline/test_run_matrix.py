"""Every search space that takes the input x every registered strategy x `tinynas run`, on a tiny
budget (run_matrix_helpers.py says why); mcunet's cells are in test_run_matrix_mcunet.py."""

from __future__ import annotations

import pytest
from run_matrix_helpers import CELLS, MUST_RUN, OWN_FILE_SPACE, takes_input, run_cell

from tinynas.space.base import space_names
from tinynas.strategies.base import get_strategy, strategy_names

HERE = [(space, strategy) for space, strategy in CELLS if space != OWN_FILE_SPACE]


def test_the_matrix_covers_the_registries():
    assert MUST_RUN <= set(space_names())
    for space in MUST_RUN:
        assert takes_input(space) is None, space
    assert {"random", "evolution", "reinforce"} <= set(strategy_names())
    for strategy in strategy_names():  # every strategy runs on at least one space of the matrix
        supported = get_strategy(strategy).supported_spaces
        assert supported is None or any(takes_input(s) is None for s in supported), strategy


@pytest.mark.slow
@pytest.mark.parametrize("space, strategy", HERE, ids=[f"{a}-{b}" for a, b in HERE])
def test_run_finishes(space, strategy, tmp_path, capsys, monkeypatch):
    run_cell(space, strategy, tmp_path, capsys, monkeypatch)
