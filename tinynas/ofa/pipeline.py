"""The once-for-all stage of a run: train or reuse the supernet, and hand the search its subnet evaluator.

``tinynas run --strategy ofa`` plans supernet -> search -> final -> winner
(tinynas.pipeline.stages.stage_plan). The supernet is keyed in the run's cache
directory, which a sweep shares, so every board after the first reuses it. With
``score=predictor`` the stage also collects (or reads back) the predictor's pairs
beside the supernet and fits it, so that cost too is paid once per supernet.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from tinynas.ofa.evaluate import SubnetEvaluator
from tinynas.ofa.pairs import collect_pairs, pairs_path
from tinynas.ofa.predictor import AccuracyPredictor, PredictorReport
from tinynas.ofa.shrinking import EpochDone, ShrinkingSchedule, train_supernet
from tinynas.ofa.supernet import ElasticMCUNet
from tinynas.space.arch import Arch

log = logging.getLogger(__name__)

_LOADED: dict[str, ElasticMCUNet] = {}
_PREDICTORS: dict[str, tuple[AccuracyPredictor, PredictorReport, list[tuple[Arch, float]]]] = {}
#: weight of each subnet the verify stage measured when it refits the predictor, against 1 per pair: a few
#: subnets among 1,000 pairs, weighted to count where the board's search looks (20 and 100 found alike,
#: benchmarks/ofa/README.md (r))
ANCHOR_WEIGHT = 20.0


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
    schedule = ShrinkingSchedule.scaled(samples, steps_per_phase=int(hyper["steps_per_phase"]),
                                        max_width=float(hyper["max_width"]),
                                        subnets_per_step=int(hyper["subnets_per_step"]),
                                        max_train_samples=None if samples >= n_train else samples,
                                        seed=int(ctx.settings.seed))
    return schedule.with_readers_phase() if hyper["readers_phase"] else schedule


def _supernet(ctx: Any, *, on_epoch: Callable[[EpochDone], None] | None = None) -> tuple[ElasticMCUNet, Any]:
    schedule = schedule_for(ctx)
    net, report = train_supernet(dataset=ctx.resolved.dataset, space=ctx.resolved.space, schedule=schedule,
                                 cache_dir=ctx.evaluator.spec.cache_dir, on_epoch=on_epoch)
    _LOADED[report.directory] = net
    return net, report


def supernet_stage(ctx: Any) -> dict[str, Any]:
    """Train (or resume, or reuse) the supernet; its done.json says which and how long it took. Training
    takes minutes, so with progress on a bar counts its epochs (phase, epoch, last loss)."""
    bar = None

    def on_epoch(e: EpochDone) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=e.total, initial=e.done - 1, desc="supernet", unit="epoch", dynamic_ncols=True)
        bar.set_postfix_str(f"{e.phase} {e.epoch}/{e.epochs}, loss {e.loss:.3f}", refresh=False)
        bar.update(1)

    try:
        net, report = _supernet(ctx, on_epoch=on_epoch if ctx.progress else None)
    finally:
        if bar is not None:
            bar.close()
    for note in report.notes:
        ctx.run.journal.append({"type": "stage", "stage": "supernet", "event": "checkpoint", "message": note})
    log.info("supernet %s: %s in %.1f s", report.directory,
             "reused" if report.reused else "trained", report.seconds)
    extra: dict[str, Any] = {}
    if _hyper(ctx)["score"] == "predictor":
        _, fit, _, how = _predictor(ctx, net, report.directory)
        extra["predictor"] = {**how, **asdict(fit)}
    return {**extra, "directory": report.directory, "reused": report.reused, "resumed_from": report.resumed_from,
            "seconds": round(report.seconds, 1), "phase_seconds": {k: round(v, 1) for k, v in
                                                                   report.phase_seconds.items()},
            "cached_training": report.cached_training,
            "notes": report.notes, "schedule": schedule_for(ctx).to_json()}


def _predictor(ctx: Any, net: ElasticMCUNet, directory: str) -> tuple[AccuracyPredictor, PredictorReport,
                                                                      list[tuple[Arch, float]], dict[str, Any]]:
    """The accuracy predictor of the supernet in ``directory``, its fit, its pairs and how they were had:
    collected (or read back, or resumed), the MLP fitted with a fifth held out; one fit per process and
    pairs file."""
    hyper = _hyper(ctx)
    n, seed, recal = int(hyper["predictor_samples"]), int(ctx.settings.seed), int(hyper["recalibration_samples"])
    path = pairs_path(directory, n=n, seed=seed, recalibration_samples=recal)
    if str(path) in _PREDICTORS:  # fitted by an earlier board of this sweep
        return (*_PREDICTORS[str(path)], {"pairs_file": str(path), "reused": n, "scored": 0, "seconds": 0.0})
    scorer = SubnetEvaluator(supernet=net, dataset=ctx.resolved.dataset, spec=None, recalibration_samples=recal,
                             seed=seed)

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            log.info("predictor pairs: %d of %d subnets scored", done, total)

    pairs, how = collect_pairs(space=ctx.resolved.space, covers=net.covers, score=lambda a: scorer.inherited(a)[0],
                               path=path, n=n, seed=seed, on_pair=progress)
    predictor = AccuracyPredictor(space=ctx.resolved.space, seed=seed)
    fit = predictor.fit([a for a, _ in pairs], [acc for _, acc in pairs])
    log.info("accuracy predictor on %d subnets: held-out MAE %.4f (mean predictor %.4f), Kendall tau %.3f",
             n, fit.mae, fit.baseline_mae, fit.kendall_tau)
    _PREDICTORS[str(path)] = (predictor, fit, pairs)
    return predictor, fit, pairs, {"pairs_file": str(path), **how}


def anchored_predictor(ctx: Any, anchors: list[tuple[Arch, float]]) -> AccuracyPredictor:
    """The run's predictor refitted on its pairs with ``anchors``, subnets this run measured, at
    ANCHOR_WEIGHT each: the verify stage's later rounds rank the search's subnets by it. Deterministic for
    the same anchors in the same order, so a resumed stage picks the subnets it picked before."""
    net, directory = _run_supernet(ctx)
    pairs = _predictor(ctx, net, directory)[2]
    refit = AccuracyPredictor(space=ctx.resolved.space, seed=int(ctx.settings.seed))
    refit.fit([a for a, _ in pairs], [acc for _, acc in pairs], anchors=anchors, anchor_weight=ANCHOR_WEIGHT)
    return refit


def _run_supernet(ctx: Any) -> tuple[ElasticMCUNet, str]:
    """The run's supernet and its folder (loaded from the cache when this process has not got it)."""
    directory = (ctx.run.stage_done("supernet") or {}).get("directory", "")
    net = _LOADED.get(directory)
    if net is None:
        net, report = _supernet(ctx)
        directory = report.directory
    return net, directory


def subnet_evaluator(ctx: Any) -> SubnetEvaluator:
    """The evaluator of the run's supernet (loaded from the cache when this process has not got it)."""
    net, directory = _run_supernet(ctx)
    hyper = _hyper(ctx)
    predictor = _predictor(ctx, net, directory)[0] if hyper["score"] == "predictor" else None
    return SubnetEvaluator(supernet=net, dataset=ctx.resolved.dataset, spec=ctx.evaluator.spec,
                           recalibration_samples=int(hyper["recalibration_samples"]),
                           seed=int(ctx.settings.seed), finetune_keep=float(hyper["finetune_keep"]),
                           supernet_key=Path(directory).name, predictor=predictor)
