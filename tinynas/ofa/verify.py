"""Which of a predicted search's subnets to measure, in rounds: the ``verify`` stage's choice.

A search that maximizes the accuracy predictor ends among subnets the predictor cannot rank
(benchmarks/ofa/README.md (q)), and its uniform pairs barely cover a tight board's region
(nucleo-l010rb's budget admits 3-4 % of the covered subnets). Measuring in rounds, with the
predictor refitted on what was measured before each later round, spends the same measurements
where the board's search looks. No TensorFlow: the caller measures (tinynas.pipeline.stages)
or replays measurements (scripts/bench_ofa_verify.py), so both run the same choice.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

from tinynas.space.arch import Arch


class Predicts(Protocol):
    def predict(self, archs: Sequence[Arch]) -> Sequence[float]: ...


def measure_in_rounds(pool: Sequence[tuple[Arch, float]], *, n: int, rounds: int,
                      measure: Callable[[Arch, float, int], float | None],
                      refit: Callable[[list[tuple[Arch, float]]], Predicts]) -> list[tuple[Arch, float, int]]:
    """Measure ``n`` subnets of ``pool`` ((arch, predicted accuracy), best predicted first; all of it if it
    holds fewer) in up to ``rounds`` rounds of ``ceil(n / rounds)``.

    Round 1 takes the best predicted. Before each later round ``refit(anchors)`` (every (arch, accuracy)
    measured so far, in the order measured) gives a predictor that re-ranks the pool, and the round takes its
    best not yet measured. ``measure(arch, prediction, round)`` returns the accuracy, or None where it could
    not be scored (it is then no anchor). Returns (arch, the prediction it was picked by, round) in the order
    picked. Deterministic for a deterministic ``refit``, so a resumed stage picks again what it picked.
    """
    per_round = -(-int(n) // int(rounds))  # of the n asked for: a pool smaller than one round is measured at once
    n = min(int(n), len(pool))
    picked: list[tuple[Arch, float, int]] = []
    anchors: list[tuple[Arch, float]] = []
    ranking = list(pool)
    for r in range(1, int(rounds) + 1):
        if len(picked) >= n:
            break
        if r > 1:
            predicted = refit(list(anchors)).predict([a for a, _ in pool])
            ranking = sorted(zip((a for a, _ in pool), (float(p) for p in predicted)), key=lambda t: -t[1])
        chosen = {a.id for a, _, _ in picked}
        for arch, prediction in [t for t in ranking if t[0].id not in chosen][:min(per_round, n - len(picked))]:
            accuracy = measure(arch, prediction, r)
            picked.append((arch, prediction, r))
            if accuracy is not None:
                anchors.append((arch, float(accuracy)))
    return picked
