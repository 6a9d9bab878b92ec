"""Differentiable search over a layer-wise supernet (mcunet or dscnn around a base arch): the same DARTS / DrNAS /
RobustDARTS loop as the NAS-Bench-201 cell (``search._search_loop``), a hardware-aware loss from the cost
model's per-block tables, and the hard budget check of the derived arch with a nearest-feasible repair."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from tinynas.darts.layerwise import SKIP
from tinynas.darts.search import DartsConfig, DartsResult, _repair, _search_loop
from tinynas.errors import SearchError
from tinynas.space.arch import Arch


def search_layerwise(dataset: Any, *, plan: Any, config: DartsConfig = DartsConfig(), profile: Any = None,
                     progress: Any = None, state_dir: Any = None,
                     fits: Callable[[Arch], bool] | None = None) -> DartsResult:
    """Run ``config.method`` on ``plan``'s supernet; the result's arch is a valid arch of ``plan.space``.

    With a ``profile`` the architecture loss carries the expected latency / arena penalties and a derived arch
    that does not fit is replaced by the nearest one that does (``changed_to_fit`` blocks changed). With
    ``state_dir`` every epoch is checkpointed there and a killed search resumes from the last epoch. ``fits``
    (default: the profile's budgets) is the hard check, e.g. the pipeline's CostCheck with its MAC bound."""
    from tinynas.darts.checkpoint import finished_result
    from tinynas.darts.layerwise import layerwise_cost_tables
    from tinynas.darts.layerwise_net import build_layerwise_supernet

    started = time.perf_counter()
    # a stage resumed after its search ended takes the result without building the supernet again
    result = None if state_dir is None else finished_result(state_dir, config, shape=plan.shape)
    if result is None:
        model = build_layerwise_supernet(plan, input_shape=tuple(dataset.input_shape),
                                         num_classes=dataset.num_classes, seed=config.seed)
        tables = layerwise_cost_tables(plan, profile) if profile is not None else None
        result = _search_loop(dataset, model=model, shape=plan.shape, derive=plan.derive, cfg=config, tables=tables,
                              progress=progress, state_dir=state_dir, mask=plan.mask)
    if profile is not None:
        from tinynas.darts.search import _check

        check = fits if fits is not None else _check(plan.space, profile)
        _repair(result, plan.space, profile, lambda arch, w: nearest_feasible_layerwise(plan, arch, w, check))
    result.seconds = time.perf_counter() - started
    return result


def nearest_feasible_layerwise(plan: Any, arch: Arch, weights: np.ndarray,
                               fits: Callable[[Arch], bool]) -> tuple[Arch, int]:
    """``arch`` if it fits; else the fitting arch with one block changed and the highest probability under
    ``weights``; failing that, blocks are set to their smallest option (mcunet: 3x3, expand 3; dscnn: the
    smallest stem kernel) one at a time, the blocks with the largest options first, then left out where the
    plan offers skip, the last first, until the arch fits.
    Exhaustive search over two or more blocks is 9^k x C(n, k) cost-model calls, too many for a stage.
    Returns ``(arch, blocks changed)``; SearchError if even the smallest options do not fit."""
    if fits(arch):
        return arch, 0
    logp = np.log(np.clip(np.asarray(weights, dtype=np.float64), 1e-12, None))
    current = plan.choice(weights)  # the choice ``arch`` was derived from (which block a skip left out)
    if plan.arch_of(current) != arch:
        current = [int(np.argmax(row)) for row in plan.one_hot(arch)]
    mask = plan.mask
    best: tuple[float, Arch] | None = None
    for i in range(len(current)):
        for o in np.argsort(-logp[i]):
            if o == current[i] or not mask[i, o]:
                continue
            choice = list(current)
            choice[i] = int(o)
            score = float(sum(logp[j, c] for j, c in enumerate(choice)))
            if best is not None and score <= best[0]:
                break
            candidate = plan.arch_of(choice)
            if fits(candidate):
                best = (score, candidate)
                break
    if best is not None:
        return best[1], 1
    # greedy: every block to its smallest option; a skipped block (skip is the last option) is cheaper still
    # and stays skipped
    choice, changed = list(current), set()
    skipped = {i for i, o in enumerate(current) if tuple(plan.blocks[i].options[o]) == SKIP}
    order = sorted(set(range(len(current))) - skipped, key=lambda i: -current[i])
    for i in order:
        if choice[i] == plan.smallest(i):
            continue
        choice[i] = plan.smallest(i)
        changed.add(i)
        candidate = plan.arch_of(choice)
        if fits(candidate):
            return candidate, len(changed)
    # then leave blocks out where the plan can, the last mixed blocks first
    for i in reversed(range(len(current))):
        block = plan.blocks[i]
        if i in skipped or not block.skippable or SKIP not in block.options:
            continue
        choice[i] = block.options.index(SKIP)
        changed.add(i)
        candidate = plan.arch_of(choice)
        if fits(candidate):
            return candidate, len(changed)
    raise SearchError(f"no choice of the mixed blocks {', '.join(b.name for b in plan.blocks)} of base arch "
                      f"{plan.base.id} fits the board; what the supernet keeps from the base (its width, "
                      f"resolution, channels or depth) is too large: start from a smaller base (e.g. a feasible "
                      f"evolution winner)")
