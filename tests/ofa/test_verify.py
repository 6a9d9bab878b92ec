"""The verify stage's choice of subnets to measure, in rounds (tinynas.ofa.verify), without a supernet."""

from __future__ import annotations

import numpy as np

from tinynas.space import get_space


def _pool(n: int = 30):
    space = get_space("mcunet", input_shape=(28, 28, 1), num_classes=10)
    rng = np.random.default_rng(0)
    archs = list({a.id: a for a in (space.sample(rng) for _ in range(n))}.values())
    # predicted best first, as the search's journal ranks them
    return [(a, 0.9 - 0.01 * i) for i, a in enumerate(archs)]


class _Reverse:
    """A refitted predictor that ranks the pool the other way round."""

    def __init__(self, pool):
        self.rank = {a.id: i for i, (a, _) in enumerate(pool)}

    def predict(self, archs):
        return [float(self.rank[a.id]) for a in archs]


def test_round_one_takes_the_best_predicted_and_later_rounds_follow_the_refit():
    pool = _pool()
    measured, anchors_seen = [], []

    def measure(arch, prediction, round_):
        measured.append((arch.id, prediction, round_))
        return None if len(measured) == 2 else 0.5  # the second could not be scored: no anchor

    def refit(anchors):
        anchors_seen.append([a.id for a, _ in anchors])
        return _Reverse(pool)

    from tinynas.ofa.verify import measure_in_rounds

    picks = measure_in_rounds(pool, n=6, rounds=3, measure=measure, refit=refit)
    ids = [a.id for a, _ in pool]
    assert [(a.id, r) for a, _, r in picks] == [(ids[0], 1), (ids[1], 1), (ids[-1], 2), (ids[-2], 2),
                                                (ids[-3], 3), (ids[-4], 3)]
    assert [m[:1] + m[2:] for m in measured] == [(a.id, r) for a, _, r in picks]
    assert picks[0][1] == 0.9 and picks[2][1] == float(len(pool) - 1)  # the prediction each was picked by
    assert anchors_seen == [[ids[0]], [ids[0], ids[-1], ids[-2]]]  # measured ones only, in measured order


def test_a_pool_smaller_than_a_round_is_measured_at_once_without_refitting():
    from tinynas.ofa.verify import measure_in_rounds

    pool = _pool(3)
    picks = measure_in_rounds(pool, n=20, rounds=4, measure=lambda a, p, r: 0.5,
                              refit=lambda anchors: (_ for _ in ()).throw(AssertionError("refitted")))
    assert [(a.id, r) for a, _, r in picks] == [(a.id, 1) for a, _ in pool]
