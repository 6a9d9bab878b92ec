"""``reinforce``: a factorized categorical policy trained with REINFORCE (Williams 1992), with
MnasNet's latency-aware reward (Tan et al. 2019, eq. 2).

One softmax per decision of the space (numpy only, no controller network): a
cheap stand-in for the RNN controller of Zoph & Le 2017 that still learns which
option of each decision pays. Each told result moves the logits along
(reward - baseline) * grad log pi(arch), the baseline being a moving average.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from tinynas.errors import SearchError
from tinynas.space.arch import Arch
from tinynas.space.base import SearchSpace
from tinynas.strategies.base import Observation, Strategy, register_strategy

REWARDS = ("soft", "hard")


def mnas_reward(
    accuracy: float, latency_ms: float | None, *, target_ms: float | None, kind: str = "soft", w: float = -0.07
) -> float:
    """MnasNet's reward ACC x (LAT/T)^w (Tan et al. 2019, eq. 2).

    ``soft``: w = ``w`` (-0.07) everywhere, a mild push toward the target; ``hard``:
    w = 0 at or below T and -1 above it. Without a target or a latency, the accuracy.
    """
    if target_ms is None or latency_ms is None:
        return float(accuracy)
    ratio = max(float(latency_ms), 1e-9) / float(target_ms)
    if kind == "hard":
        exponent = 0.0 if ratio <= 1.0 else -1.0
    else:
        exponent = w
    return float(accuracy) * ratio**exponent


@register_strategy
class Reinforce(Strategy):
    """REINFORCE over one categorical distribution per decision.

    ``learning_rate`` scales the logit step per result (rewards are accuracies in
    [0, 1], so advantages are a few hundredths to tenths: a large step is right);
    ``baseline_decay`` is the moving average's weight on the past. A failed or
    infeasible result earns reward 0. With ``allow_repeats`` False the policy's
    sample is redrawn (up to max_tries) until it is an arch not tried yet, so no
    evaluation is spent twice on the same arch.
    """

    name = "reinforce"

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int = 0,
        feasible: Callable[[Arch], bool] | None = None,
        max_tries: int = 1000,
        learning_rate: float = 2.0,
        baseline_decay: float = 0.8,
        latency_target_ms: float | None = None,
        reward: str = "soft",
        reward_exponent: float = -0.07,
        allow_repeats: bool = False,
    ) -> None:
        super().__init__(space=space, seed=seed, feasible=feasible, max_tries=max_tries)
        if not float(learning_rate) > 0:
            raise SearchError(f"reinforce learning_rate must be positive, got {learning_rate}")
        if not 0.0 <= float(baseline_decay) < 1.0:
            raise SearchError(f"reinforce baseline_decay must be in [0, 1), got {baseline_decay}")
        if reward not in REWARDS:
            raise SearchError(f"reinforce reward must be one of {', '.join(REWARDS)}, got {reward!r}")
        if latency_target_ms is not None and not float(latency_target_ms) > 0:
            raise SearchError(f"reinforce latency_target_ms must be positive or None, got {latency_target_ms}")
        self.learning_rate = float(learning_rate)
        self.baseline_decay = float(baseline_decay)
        self.latency_target_ms = None if latency_target_ms is None else float(latency_target_ms)
        self.reward = reward
        self.reward_exponent = float(reward_exponent)
        self.allow_repeats = bool(allow_repeats)
        self._logits = [np.zeros(len(d.options)) for d in space.decisions()]
        self._baseline: float | None = None
        self._updates = 0

    # -- policy -----------------------------------------------------------------------------
    def probabilities(self) -> list[np.ndarray]:
        """The policy: one probability vector per decision, in the space's order."""
        out = []
        for logits in self._logits:
            z = np.exp(logits - logits.max())
            out.append(z / z.sum())
        return out

    def _draw(self) -> Arch:
        probs = self.probabilities()
        indices = [int(self._rng.choice(len(p), p=p)) for p in probs]
        return self.space.decode(indices)

    def _propose(self, n: int) -> list[Arch]:
        out: list[Arch] = []
        exclude = set(self._seen)
        for _ in range(n):
            arch = None
            fallback = None
            for _ in range(self.max_tries):
                candidate = self._draw()
                if not self.space.contains(candidate) or not self.is_feasible(candidate):
                    continue
                if self.allow_repeats or candidate.id not in exclude:
                    arch = candidate
                    break
                fallback = fallback or candidate
            if arch is None:
                # The policy keeps drawing tried archs: take a fresh uniform one, else repeat one.
                arch = self._sample_new(exclude) or fallback
            if arch is None:
                raise self._no_feasible("draws from the policy")
            exclude.add(arch.id)
            out.append(arch)
        return out

    def _observe(self, arch: Arch, result: Observation) -> None:
        if result.usable:
            reward = mnas_reward(float(result.accuracy), result.latency_ms, target_ms=self.latency_target_ms,
                                 kind=self.reward, w=self.reward_exponent)
        else:
            reward = 0.0
        if self._baseline is None:
            self._baseline = reward  # the first result only sets the baseline
            return
        advantage = reward - self._baseline
        self._baseline = self.baseline_decay * self._baseline + (1.0 - self.baseline_decay) * reward
        indices = self.space.encode(arch)
        for logits, probs, index in zip(self._logits, self.probabilities(), indices):
            # d log softmax(logits)[index] / d logits = onehot(index) - probs
            grad = -probs
            grad[index] += 1.0
            logits += self.learning_rate * advantage * grad
        self._updates += 1

    # -- checkpointing ------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"logits": [l.tolist() for l in self._logits], "baseline": self._baseline, "updates": self._updates}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        logits = [np.asarray(l, dtype=float) for l in state.get("logits", [])]
        if [len(l) for l in logits] != [len(d.options) for d in self.space.decisions()]:
            raise SearchError("reinforce state does not match this space's decisions; start the search again")
        self._logits = logits
        self._baseline = state.get("baseline")
        self._updates = int(state.get("updates", 0))
