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
