"""An accuracy predictor for supernet subnets: an MLP on the arch's one-hot encoding (Once-for-All sec. 3.4).

Trained on (arch, BN-recalibrated inherited accuracy) pairs sampled from a
supernet, it answers in microseconds what a recalibration answers in about a
second, so evolution can screen thousands of subnets per board. Numpy and scipy (no
TensorFlow): the cost model's speed class. ``fit`` holds out a share of the pairs
and reports the held-out error, so nobody trusts a predictor that has not earned it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tinynas.errors import SupernetError
from tinynas.space.arch import Arch
from tinynas.space.base import SearchSpace


def one_hot(space: SearchSpace, arch: Arch) -> np.ndarray:
    """The concatenated one-hot vectors of the arch's decision indices (inactive blocks included: canonical)."""
    parts = []
    for d, index in zip(space.decisions(), space.encode(arch)):
        v = np.zeros(len(d.options), np.float32)
        v[index] = 1.0
        parts.append(v)
    return np.concatenate(parts)


@dataclass(frozen=True)
class PredictorReport:
    """Held-out error of a fitted predictor (accuracy as a fraction)."""

    n_train: int
    n_held_out: int
    mae: float
    rmse: float
    baseline_mae: float  # predicting the training mean: the error a useless predictor has
    kendall_tau: float  # held-out ranking against the measured accuracies: what a search by prediction relies on


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (scipy's), 0.0 where it is undefined (fewer than two values, or one side constant),
    so a stage's done.json never holds NaN."""
    from scipy.stats import kendalltau

    tau = float(kendalltau(x, y).statistic) if len(x) > 1 else float("nan")
    return 0.0 if np.isnan(tau) else tau


class AccuracyPredictor:
    """MLP (one hidden ReLU layer of ``hidden`` units) from one-hot arch encodings to accuracy."""

    def __init__(self, *, space: SearchSpace, hidden: int = 64, seed: int = 0) -> None:
        self.space = space
        self.hidden = int(hidden)
        self._rng = np.random.default_rng(seed)
        self._params: list[np.ndarray] | None = None
        self._mean = 0.0

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hidden activations and predictions. The output is a sigmoid around the training mean's logit:
        a linear output extrapolates, and a search that maximizes it found subnets predicted at 1.5."""
        w1, b1, w2, b2 = self._params  # type: ignore[misc]
        h = np.maximum(x @ w1 + b1, 0.0)
        mean = min(max(self._mean, 1e-3), 1.0 - 1e-3)
        return h, 1.0 / (1.0 + np.exp(-((h @ w2 + b2)[:, 0] + np.log(mean / (1.0 - mean)))))

    def fit(self, archs: Sequence[Arch], accuracies: Sequence[float], *, held_out: float = 0.2,
            anchors: Sequence[tuple[Arch, float]] = (), anchor_weight: float = 1.0,
            epochs: int = 1000, learning_rate: float = 1e-2, weight_decay: float = 1e-3) -> PredictorReport:
        """Train on all but ``held_out`` of the pairs (full-batch Adam on squared error); returns the
        held-out error. Raises SupernetError with fewer than 10 pairs.

        ``anchors``: (arch, accuracy) pairs always trained on, each with ``anchor_weight`` times a pair's weight
        in the loss: a run's few measured subnets lie where its search looks, which a uniform sample of the
        space barely covers (nucleo-l010rb's budget admits 3-4 % of it), so equal weight would not move the fit
        there. They are never held out, so the held-out error stays the uniform sample's."""
        if len(archs) != len(accuracies) or len(archs) < 10:
            raise SupernetError(f"the accuracy predictor needs at least 10 (arch, accuracy) pairs, got {len(archs)}")
        x = np.stack([one_hot(self.space, a) for a in archs])
        y = np.asarray(accuracies, np.float32)
        order = self._rng.permutation(len(y))
        n_test = max(1, int(round(held_out * len(y))))
        test, train = order[:n_test], order[n_test:]
        d = x.shape[1]
        self._mean = float(y[train].mean())
        xt, yt, wt = x[train], y[train], np.ones(len(train), np.float32)
        if anchors:
            xt = np.concatenate([xt, np.stack([one_hot(self.space, a) for a, _ in anchors])])
            yt = np.concatenate([yt, np.asarray([acc for _, acc in anchors], np.float32)])
            wt = np.concatenate([wt, np.full(len(anchors), float(anchor_weight), np.float32)])
        wt = wt * (len(wt) / wt.sum())  # mean weight 1: the learning rate means what it did without anchors
        self._params = [self._rng.normal(0, np.sqrt(2.0 / d), (d, self.hidden)).astype(np.float32),
                        np.zeros(self.hidden, np.float32),
                        self._rng.normal(0, np.sqrt(1.0 / self.hidden), (self.hidden, 1)).astype(np.float32),
                        np.zeros(1, np.float32)]
        m = [np.zeros_like(p) for p in self._params]
        v = [np.zeros_like(p) for p in self._params]
        for step in range(1, epochs + 1):
            h, pred = self._forward(xt)
            err = (wt * (pred - yt) * pred * (1.0 - pred))[:, None] * (2.0 / len(yt))  # through the sigmoid
            w1, b1, w2, b2 = self._params
            g_w2, g_b2 = h.T @ err, err.sum(axis=0)
            dh = (err @ w2.T) * (h > 0)
            grads = [xt.T @ dh, dh.sum(axis=0), g_w2, g_b2]
            for i, (p, g) in enumerate(zip(self._params, grads)):  # Adam, Kingma & Ba 2015
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.999 * v[i] + 0.001 * g * g
                p -= learning_rate * (m[i] / (1 - 0.9 ** step)) / (np.sqrt(v[i] / (1 - 0.999 ** step)) + 1e-8)
                p -= learning_rate * weight_decay * p
        _, pred = self._forward(x[test])
        return PredictorReport(n_train=len(train), n_held_out=len(test),
                               mae=float(np.mean(np.abs(pred - y[test]))),
                               rmse=float(np.sqrt(np.mean((pred - y[test]) ** 2))),
                               baseline_mae=float(np.mean(np.abs(self._mean - y[test]))),
                               kendall_tau=kendall_tau(pred, y[test]))

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """Predicted accuracies; raises SupernetError before ``fit``."""
        if self._params is None:
            raise SupernetError("the accuracy predictor is not fitted; call fit() with sampled subnets first")
        return self._forward(np.stack([one_hot(self.space, a) for a in archs]))[1]
