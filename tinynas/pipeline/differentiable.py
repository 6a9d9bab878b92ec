"""The ``differentiable`` stage of the ``darts`` / ``drnas`` / ``rdarts`` strategies: train a layer-wise
supernet (mcunet or dscnn, tinynas.darts.layerwise) on the dataset's train split (halves for weights and
alpha), derive and repair the arch, journal it (fidelity "supernet"). The ``search`` stage then starts its
evolution from that arch.

A killed stage resumes from the supernet checkpoint of its last finished epoch (``stages/differentiable``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np

from tinynas.errors import SearchError
from tinynas.space.arch import Arch
from tinynas.text import counted

log = logging.getLogger(__name__)

#: supernet batch: small, because a TinyML search trains on a few hundred samples
BATCH_SIZE = 32


def pick_base(space: Any, *, check: Any, seed: int, samples: int, max_blocks: int, max_tries: int = 2000) -> Arch:
    """The arch with the most MACs among ``samples`` feasible random archs whose supernet has at most the
    branches of ``max_blocks`` mcunet blocks (9 each; the fewest branches when the draws find none that small):
    the supernet keeps its width, resolution, channels and depths. Why the largest: the supernet then mixes the
    blocks of the biggest skeleton the board holds, and the hardware loss and the repair shrink kernels,
    expansions and depth where it overshoots. Why a cap: tracing and training the supernet grows with its
    branches (11 mcunet blocks: ~100 s on 2 cores for one epoch of 64 samples, nearly all of it graph tracing);
    a dscnn supernet has a branch per stem kernel and block, so every dscnn arch is under it."""
    from tinynas.darts.layerwise import rules_for
    from tinynas.darts.layerwise_mcunet import BRANCHES_PER_BLOCK

    rules = rules_for(space)
    if rules is None:
        raise SearchError(f"space {space.name!r} has no layer-wise supernet")
    branches = lambda arch: rules.branches(space, arch)  # noqa: E731
    cap = int(max_blocks) * BRANCHES_PER_BLOCK
    rng = np.random.default_rng(seed)
    found: dict[str, Arch] = {}
    small = 0
    for _ in range(max_tries):
        arch = space.canonical(space.sample(rng))
        if arch.id not in found and check(arch):
            found[arch.id] = arch
            small += branches(arch) <= cap
            if small >= samples:
                break
    if not found:
        raise SearchError(f"no feasible {space.name} arch in {max_tries} random draws: loosen the constraints "
                          f"(--max-macs, --latency-ms) or pick a roomier --profile")
    fewest = min(branches(a) for a in found.values())
    pool = [a for a in found.values() if branches(a) <= max(cap, fewest)]
    return max(pool, key=lambda a: (int(check.cost(a).macs), a.id))


def supernet_search_setup(ctx: Any, strategy: Any) -> tuple[Any, Any, int]:
    """The training data, ``DartsConfig`` and epochs of ``strategy``'s supernet search in this run: the first
    ``supernet_samples`` (default ``--search-samples``) training samples, halved into weights and alpha, for
    ``supernet_epochs`` (default ``--search-epochs``). An epoch on a smaller set passes over it until it draws
    what it would draw from a large one, up to ``MIN_EPOCH_SAMPLES``, as training does
    (``TrainBudget.on_train_set``): one pass over GunPoint's 42 series was one step of 21 per epoch, and the
    derived arch came from 3 steps of a barely trained supernet."""
    from tinynas.train.budget import MIN_EPOCH_SAMPLES, passes_to_draw

    s, data = ctx.settings, ctx.resolved.dataset
    cap = strategy.supernet_samples or s.search_samples
    n = min(len(data.y_train), cap or len(data.y_train))
    data = replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n])
    epochs = strategy.supernet_epochs or int(s.search_epochs)
    passes = passes_to_draw(min(MIN_EPOCH_SAMPLES, cap or MIN_EPOCH_SAMPLES), pass_samples=n)
    config = strategy.config(epochs=epochs, batch_size=min(BATCH_SIZE, max(1, n // 2)), epoch_passes=passes)
    return data, config, epochs


def chance_accuracy(y: Any) -> float:
    """What a constant guess of the most common class scores on labels ``y``: a supernet at or below it did
    not learn (1/classes only on a split balanced to the sample)."""
    import numpy as np

    y = np.asarray(y).reshape(-1)
    return float(np.bincount(y.astype(np.int64)).max() / len(y)) if len(y) else 0.0


def run_layerwise_search(ctx: Any, data: Any, *, plan: Any, config: Any, epochs: int, label: str,
                         state_dir: Any) -> tuple[Any, list[str]]:
    """The layer-wise search with its epoch bar, and what the run must say about it: a derived arch that was
    repaired to fit, a NaN stop, a RobustDARTS early stop (each also logged). Shared by the ``differentiable``
    stage of ``--strategy darts|drnas|rdarts`` and the ``refine`` stage of ``staged --refine``."""
    from tinynas.darts import search_layerwise

    profile = ctx.resolved.profile
    bar = _epoch_bar(ctx, epochs, label)
    try:
        result = search_layerwise(data, plan=plan, config=config, profile=profile, fits=ctx.check,
                                  state_dir=state_dir,
                                  progress=None if bar is None else lambda epoch, r: _show(bar, plan, epoch, r))
    finally:
        if bar is not None:
            bar.close()
    notes = []
    if result.derived_infeasible:
        notes.append(f"the derived arch {result.derived_infeasible} did not fit {profile.id}; took the nearest "
                     f"feasible arch {result.arch.id} ({counted(int(result.changed_to_fit), 'block')} changed)")
    if result.nan_stop:
        notes.append(f"the search diverged (NaN); kept the arch of epoch {result.arch_epoch}")
    if result.stopped_early and not result.nan_stop:
        notes.append(f"RobustDARTS early stop at epoch {result.stop_epoch} (Hessian eigenvalue grew)")
    for note in notes:
        log.warning("%s: %s", label, note)
    return result, notes


def _epoch_bar(ctx: Any, epochs: int, strategy: str) -> Any:
    if not ctx.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=epochs, desc=f"supernet {strategy}", unit="epoch", dynamic_ncols=True)


def _show(bar: Any, plan: Any, epoch: int, result: Any) -> None:
    """The bar's postfix: the arch the weights derive now, its expected latency and the Hessian eigenvalue."""
    eig = result.eigenvalues[-1] if result.eigenvalues else None
    lat = result.expected_latency_ms[-1] if result.expected_latency_ms else None
    bar.n = epoch + 1
    bar.set_postfix(arch=plan.derive(result.weights[-1]).id,
                    e_lat_ms="-" if lat is None else f"{lat:.2f}", eig="-" if eig is None else f"{eig:.3f}")


def differentiable_stage(ctx: Any) -> dict:
    """Search the supernet; returns the derived (and repaired) arch with the search's record."""
    from tinynas.darts import relax
    from tinynas.strategies import make_strategy

    s, run = ctx.settings, ctx.run
    space = ctx.resolved.space
    strategy = make_strategy(s.strategy, space=space, seed=int(s.seed), feasible=ctx.check,
                             **dict(ctx.resolved.strategy_hyper))
    base = pick_base(space, check=ctx.check, seed=int(s.seed), samples=strategy.base_samples,
                     max_blocks=strategy.max_mixed_blocks)
    plan = relax(space, base)
    data, config, epochs = supernet_search_setup(ctx, strategy)
    result, notes = run_layerwise_search(ctx, data, plan=plan, config=config, epochs=epochs, label=s.strategy,
                                         state_dir=run.stage_dir("differentiable"))
    # the supernet's val accuracy at the epoch whose arch was taken (an early or NaN stop keeps an earlier one)
    epoch = -1 if result.arch_epoch is None else result.arch_epoch
    val = result.val_accuracy[epoch] if result.val_accuracy else None
    cost = ctx.check.cost(result.arch)
    from tinynas.pipeline.stages import cost_fields

    ctx.run.journal.append({"type": "candidate", "stage": "differentiable", "id": result.arch.id,
                            "arch": result.arch.to_json(), "fidelity": "supernet", "cost": cost_fields(cost),
                            "accuracy": val, "error": None, "seconds": round(result.seconds, 3),
                            "cached": False, "worker": None, "notes": notes})
    record = result.to_json()
    record.pop("weights")  # per-epoch mixing weights: the checkpoint holds the last; done.json stays small
    return {"strategy": s.strategy, "base": base.id, "mixed_blocks": plan.shape[0], "derived": result.arch.id,
            "arch": result.arch.to_json(), "notes": notes,
            "expected_latency_ms": (result.expected_latency_ms or [None])[-1],
            "latency_ms": float(cost.latency_ms), "search": record, "chance_accuracy": chance_accuracy(data.y_val)}
