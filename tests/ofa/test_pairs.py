"""The predictor's (subnet, inherited accuracy) pairs: sampled among covered subnets in a fixed order, kept
beside the supernet, resumed after a kill, and collected again (the bad file set aside) when unreadable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinynas.errors import SupernetError
from tinynas.space import get_space


def _space():
    return get_space("mcunet", input_shape=(28, 28, 1), num_classes=10)


def _covers(arch):
    return float(arch["width"]) <= 0.35


def _score(arch):  # a deterministic stand-in for inherited accuracy: what the store must keep, not what it means
    return 0.5 + float(arch["width"]) + 0.001 * int(arch["resolution"])


def test_subnets_are_distinct_covered_and_the_same_for_a_seed():
    from tinynas.ofa.pairs import sample_subnets

    space = _space()
    a = sample_subnets(space, _covers, n=40, seed=3)
    assert len({x.id for x in a}) == 40 and all(_covers(x) for x in a)
    assert [x.id for x in sample_subnets(space, _covers, n=40, seed=3)] == [x.id for x in a]
    assert [x.id for x in sample_subnets(space, _covers, n=40, seed=4)] != [x.id for x in a]
    with pytest.raises(SupernetError, match="predictor_samples"):
        sample_subnets(space, lambda arch: False, n=5, seed=0)


def test_a_killed_collection_resumes_and_scores_nothing_twice(tmp_path):
    from tinynas.ofa.pairs import SAVE_EVERY, collect_pairs, sample_subnets

    space, path = _space(), tmp_path / "pairs.json"
    calls: list[str] = []

    def dies_after_30(arch):
        if len(calls) == 30:
            raise KeyboardInterrupt
        calls.append(arch.id)
        return _score(arch)

    with pytest.raises(KeyboardInterrupt):
        collect_pairs(space=space, covers=_covers, score=dies_after_30, path=path, n=60, seed=0)
    saved = json.loads(path.read_text())["pairs"]
    assert len(saved) == SAVE_EVERY  # the last save before the kill

    again: list[str] = []
    pairs, how = collect_pairs(space=space, covers=_covers, score=lambda a: again.append(a.id) or _score(a),
                               path=path, n=60, seed=0)
    assert how["reused"] == SAVE_EVERY and how["scored"] == 60 - SAVE_EVERY == len(again)
    assert not set(again) & {p["id"] for p in saved}
    assert [a.id for a, _ in pairs] == [a.id for a in sample_subnets(space, _covers, n=60, seed=0)]
    assert all(acc == pytest.approx(_score(a)) for a, acc in pairs)

    _, how = collect_pairs(space=space, covers=_covers, score=lambda a: 1 / 0, path=path, n=60, seed=0)
    assert how == {"reused": 60, "scored": 0, "seconds": how["seconds"]}


def test_an_unreadable_pairs_file_is_set_aside_and_collected_again(tmp_path, caplog):
    from tinynas.ofa.pairs import collect_pairs

    path = tmp_path / "pairs.json"
    path.write_text("{not json")
    pairs, how = collect_pairs(space=_space(), covers=_covers, score=_score, path=path, n=12, seed=0)
    assert how["scored"] == 12 and len(pairs) == 12
    assert (tmp_path / "pairs.unreadable").read_text() == "{not json"  # kept for whoever wants to look
    assert "unreadable predictor pairs" in caplog.text and "collected again" in caplog.text


def test_kendall_tau_is_zero_where_it_is_undefined():
    from tinynas.ofa.predictor import kendall_tau

    assert kendall_tau([1.0, 2.0, 3.0], [0.1, 0.3, 0.2]) == pytest.approx(1 / 3)
    assert kendall_tau(np.ones(5), np.arange(5)) == 0.0 and kendall_tau([0.5], [0.7]) == 0.0
