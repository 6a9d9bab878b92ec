"""The once-for-all stage of a run: train or reuse the supernet, and hand the search its subnet evaluator.

``tinynas run --strategy ofa`` plans supernet -> search -> final -> winner
(tinynas.pipeline.stages.stage_plan). The supernet is keyed in the run's cache
directory, which a sweep shares, so every board after the first reuses it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tinynas.ofa.evaluate import SubnetEvaluator
from tinynas.ofa.shrinking import ShrinkingSchedule, train_supernet
from tinynas.ofa.supernet import ElasticMCUNet

log = logging.getLogger(__name__)

_LOADED: dict[str, ElasticMCUNet] = {}


def _hyper(ctx: Any) -> dict[str, Any]:
    """The ofa strategy's hyperparameters: the run's values over the strategy's own defaults (one place for
    those defaults: ``tinynas.strategies.ofa.OnceForAll``)."""
    from tinynas.strategies import strategy_hyperparameters

    return {**strategy_hyperparameters("ofa"), **ctx.resolved.strategy_hyper}


def schedule_for(ctx: Any) -> ShrinkingSchedule:
    """The run's shrinking schedule: ``steps_per_phase`` optimizer steps per phase on ``supernet_samples``
    training samples (every one by default), whatever ``--search-epochs`` and ``--search-samples`` say: those
    size the per-candidate training of the other strategies, and the supernet is trained once for every board."""
    hyper = _hyper(ctx)
    n_train = len(ctx.resolved.dataset.y_train)
    cap = hyper["supernet_samples"]
    samples = n_train if cap is None else min(int(cap), n_train)
    return ShrinkingSchedule.scaled(samples, steps_per_phase=int(hyper["steps_per_phase"]),
                                    max_width=float(hyper["max_width"]), subnets_per_step=int(hyper["subnets_per_step"]),
                                    max_train_samples=None if samples >= n_train else samples,
                                    seed=int(ctx.settings.seed))


def _supernet(ctx: Any) -> tuple[ElasticMCUNet, Any]:
    schedule = schedule_for(ctx)
    net, report = train_supernet(dataset=ctx.resolved.dataset, space=ctx.resolved.space, schedule=schedule,
                                 cache_dir=ctx.evaluator.spec.cache_dir)
    _LOADED[report.directory] = net
    return net, report


def supernet_stage(ctx: Any) -> dict[str, Any]:
    """Train (or resume, or reuse) the supernet; its done.json says which and how long it took."""
    _, report = _supernet(ctx)
    for note in report.notes:
        ctx.run.journal.append({"type": "stage", "stage": "supernet", "event": "checkpoint", "message": note})
    log.info("supernet %s: %s in %.1f s", report.directory,
             "reused" if report.reused else "trained", report.seconds)
    return {"directory": report.directory, "reused": report.reused, "resumed_from": report.resumed_from,
            "seconds": round(report.seconds, 1), "phase_seconds": {k: round(v, 1) for k, v in
                                                                   report.phase_seconds.items()},
            "notes": report.notes, "schedule": schedule_for(ctx).to_json()}


def subnet_evaluator(ctx: Any) -> SubnetEvaluator:
    """The evaluator of the run's supernet (loaded from the cache when this process has not got it)."""
    done = ctx.run.stage_done("supernet") or {}
    directory = done.get("directory", "")
    net = _LOADED.get(directory)
    if net is None:
        net, report = _supernet(ctx)
        directory = report.directory
    hyper = _hyper(ctx)
    return SubnetEvaluator(supernet=net, dataset=ctx.resolved.dataset, spec=ctx.evaluator.spec,
                           recalibration_samples=int(hyper["recalibration_samples"]),
                           seed=int(ctx.settings.seed), finetune_keep=float(hyper["finetune_keep"]),
                           supernet_key=Path(directory).name)
