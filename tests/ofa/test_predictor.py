"""The accuracy predictor learns a structured accuracy function of mcunet archs and reports held-out error."""

from __future__ import annotations

import numpy as np
import pytest

from tinynas.errors import SupernetError
from tinynas.space import get_space


def test_predictor_beats_the_mean_on_held_out_archs():
    from tinynas.ofa.predictor import AccuracyPredictor

    space = get_space("mcunet", input_shape=(28, 28, 1), num_classes=10)
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(600)]
    # accuracy rising with width, resolution and depth, as inherited accuracies do, plus noise
    acc = [0.5 + 0.3 * min(float(a["width"]), 0.5) + 0.004 * int(a["resolution"])
           + 0.01 * sum(int(a[f"s{s}_depth"]) for s in range(1, 6)) + rng.normal(0, 0.005) for a in archs]
    predictor = AccuracyPredictor(space=space, seed=0)
    report = predictor.fit(archs, acc, held_out=0.2, epochs=800)
    assert report.n_held_out == 120 and report.n_train == 480
    assert report.mae < 0.5 * report.baseline_mae, report
    pred = predictor.predict(archs[:5])
    assert pred.shape == (5,) and np.all(np.isfinite(pred))


def test_predictor_refuses_too_few_pairs_and_unfitted_use():
    from tinynas.ofa.predictor import AccuracyPredictor

    space = get_space("mcunet", input_shape=(28, 28, 1), num_classes=10)
    predictor = AccuracyPredictor(space=space)
    arch = space.sample(np.random.default_rng(0))
    with pytest.raises(SupernetError, match="not fitted"):
        predictor.predict([arch])
    with pytest.raises(SupernetError, match="at least 10"):
        predictor.fit([arch], [0.5])


def test_anchors_weigh_anchor_weight_times_a_pair_and_are_never_held_out():
    """Where a pair and an anchor (a subnet the run measured) disagree on the same arch, the fit lands near
    their weighted mean: at weight 20 near the anchor, at weight 1 half-way. The held-out share is taken from
    the pairs alone, so the held-out error is the uniform sample's either way."""
    from tinynas.ofa.predictor import AccuracyPredictor

    space = get_space("mcunet", input_shape=(28, 28, 1), num_classes=10)
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(300)]
    acc = [0.3 + 0.5 * min(float(a["width"]), 0.5) + rng.normal(0, 0.01) for a in archs]
    anchors = [(a, acc[i] + 0.3) for i, a in enumerate(archs[:5])]
    baseline = AccuracyPredictor(space=space, seed=0).fit(archs, acc, epochs=600)
    pulled = {}
    for weight in (1.0, 20.0):
        predictor = AccuracyPredictor(space=space, seed=0)
        report = predictor.fit(archs, acc, anchors=anchors, anchor_weight=weight, epochs=600)
        assert (report.n_train, report.n_held_out) == (baseline.n_train, baseline.n_held_out)
        pulled[weight] = [float(p - a) for p, a in zip(predictor.predict(archs[:5]), acc)]  # 0: pair, 0.3: anchor
    # an arch whose pair was held out has only its anchor (0.3); the others land at the weighted mean
    halfway = [d for d in pulled[1.0] if abs(d - 0.3) > 0.01]
    assert len(halfway) >= 3 and all(abs(d - 0.15) < 0.01 for d in halfway), pulled
    assert all(abs(d - 20 / 21 * 0.3) < 0.01 or abs(d - 0.3) < 0.01 for d in pulled[20.0]), pulled
