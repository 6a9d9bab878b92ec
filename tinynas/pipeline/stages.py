"""The stages of a search, each skipped once its ``stages/<name>/done.json`` exists.

staged:  prefilter -> search (regularized evolution seeded by the prefilter, low fidelity)
         [-> refine (--refine darts|drnas|rdarts, mcunet: layer-wise supernet around the evolution's best,
         mixing the block choices of its top candidates; derived + repaired arch journaled fidelity "supernet",
         then trained at low fidelity; tinynas.pipeline.refine)] -> final (top few at full fidelity,
         the refined arch among them when it ranks there) -> winner
others:  search (the named strategy) -> final -> winner
darts, drnas, rdarts: differentiable (layer-wise supernet of mcunet, derived + repaired arch: journal
         fidelity "supernet") -> search (evolution from the derived arch) -> final -> winner
``tinynas run`` appends deploy and report (tinynas.pipeline.run). Each candidate is
journaled before the strategy hears of it, and the strategy's state is saved after
every tell, so a killed run resumes without training anything twice. A search that ends
before its budget (every feasible arch tried, or the strategy done) says why in its done.json,
the journal and the report, and hands the work it did not do to the final training.

ofa:     supernet (train or reuse the once-for-all supernet, tinynas.ofa) -> search (evolution over
         its subnets, scored by inherited accuracy: journal fidelity "ofa") -> final (fine-tuned
         from inherited weights) -> winner. With score=predictor the supernet stage also fits the
         accuracy predictor, the search scores by it, and a verify stage measures its best before final.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import logging
import math
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from tinynas.errors import SearchError, TinyNASError
from tinynas.pipeline.constraints import CostCheck
from tinynas.pipeline.evaluate import EvalJob, Evaluator
from tinynas.pipeline.rundir import RunDir, atomic_write_json, read_json
from tinynas.pipeline.settings import Resolved
from tinynas.registry import Registry
from tinynas.space.arch import Arch
from tinynas.strategies import Observation, Strategy, make_strategy
from tinynas.strategies.staged import seeds_for_budget
from tinynas.text import counted
from tinynas.train.budget import TrainBudget

if TYPE_CHECKING:
    from tinynas.pipeline.fill import FillPlan

log = logging.getLogger(__name__)

StageFn = Callable[["StageContext"], dict]
#: consecutive proposals of already-evaluated archs after which the search stops ("stalled")
MAX_REPEATS = 200
#: seconds between saves of the search strategy's state while candidates come in (always saved at the end)
STATE_SAVE_S = 2.0
#: a search that stops early hands its unused work to the final stage, up to this many times its planned epochs
MAX_FINAL_SCALE = 2
STAGES: Registry[StageFn] = Registry("pipeline stage", error=SearchError)
#: stages that only hand work to the evaluator; the others run TensorFlow or matplotlib in this process
#: and take DRIVER_LOCK, so the boards of a concurrent sweep (tinynas.pipeline.sweep) can share the process
EVALUATOR_STAGES = ("search", "final")
#: strategies whose search starts from a differentiable supernet search (tinynas.pipeline.differentiable)
DIFFERENTIABLE = ("darts", "drnas", "rdarts")
DRIVER_LOCK = threading.RLock()


@dataclass
class StageContext:
    """What every stage reads: the open run directory, resolved settings, the cost check and the evaluator."""

    run: RunDir
    resolved: Resolved
    check: CostCheck
    evaluator: Evaluator  # or ray_backend.RayEvaluator: the same submit, close, workers and spec
    progress: bool = False
    #: called with each journal entry of a finished candidate (progress hooks, tests)
    on_candidate: Callable[[dict[str, Any]], None] | None = None
    #: low-fidelity results of other boards of a sweep (journal entries), told before searching
    shared: list[dict[str, Any]] = field(default_factory=list)
    shared_from: str | None = None

    @property
    def settings(self):
        return self.resolved.settings

    @property
    def train_samples(self) -> int:
        """The dataset's training samples, which size a small dataset's epochs (``TrainBudget.on_train_set``)."""
        return len(self.resolved.dataset.y_train)


def stage_plan(strategy: str, *, refine: str = "none", verify: bool = False) -> list[str]:
    """The search stages for a strategy, in order (``refine``: staged's differentiable refinement; ``verify``:
    ofa's search scored by its accuracy predictor, whose best are then measured)."""
    head = {"staged": ["prefilter"], "ofa": ["supernet"], **{d: ["differentiable"] for d in DIFFERENTIABLE}}.get(
        strategy, [])
    middle = ["refine"] if strategy == "staged" and refine != "none" else \
        ["verify"] if strategy == "ofa" and verify else []
    return [*head, "search", *middle, "final", "winner"]


def stage_evaluator(ctx: StageContext) -> Evaluator:
    """Who scores the search's and final stage's jobs: the supernet's subnets for ``ofa``, else training."""
    if ctx.settings.strategy == "ofa":
        from tinynas.ofa.pipeline import subnet_evaluator

        return subnet_evaluator(ctx)  # type: ignore[return-value]
    return ctx.evaluator


def run_stages(ctx: StageContext, names: list[str]) -> dict[str, dict]:
    """Run each stage not done yet, in order; returns every stage's result (done.json)."""
    results: dict[str, dict] = {}
    for name in names:
        done = ctx.run.stage_done(name)
        if done is not None:
            log.info("stage %s already done: skipped", name)
            results[name] = done
            continue
        ctx.run.journal.append({"type": "stage", "stage": name, "event": "start"})
        with nullcontext() if name in EVALUATOR_STAGES else DRIVER_LOCK:
            result = STAGES.get(name)(ctx)
        ctx.run.mark_done(name, result)
        results[name] = result
    return results


# -- helpers --------------------------------------------------------------------------------------
def cost_fields(cost: Any) -> dict[str, Any]:
    return {"latency_ms": cost.latency_ms, "arena_bytes": int(cost.arena_bytes), "flash_bytes": int(cost.flash_bytes),
            "macs": int(cost.macs), "params": int(cost.params), "fits": bool(cost.fits)}


def observation(entry: dict[str, Any]) -> Observation:
    cost = entry.get("cost") or {}
    return Observation(accuracy=entry.get("accuracy"), latency_ms=cost.get("latency_ms"),
                       arena_bytes=cost.get("arena_bytes"), flash_bytes=cost.get("flash_bytes"),
                       feasible=bool(cost.get("fits", True)))


def _bar(ctx: StageContext, total: int | None, desc: str, initial: int = 0) -> Any:
    if not ctx.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="cand", dynamic_ncols=True)


def _best_postfix(bar: Any, best: float | None) -> None:
    if bar is not None and best is not None:
        bar.set_postfix_str(f"best {best:.4f}")


def _record(ctx: StageContext, stage: str, arch: Arch, *, fidelity: str, outcome: dict[str, Any] | None,
            error: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    cost = ctx.check.cost(arch)
    entry: dict[str, Any] = {"type": "candidate", "stage": stage, "id": arch.id, "arch": arch.to_json(),
                             "fidelity": fidelity, "cost": cost_fields(cost)}
    if outcome is not None:
        entry.update(outcome)
    else:
        entry.update(accuracy=None, error=error, seconds=0.0, cached=False, worker=None)
    entry.update(extra or {})
    return ctx.run.journal.append(entry)


@contextmanager
def _stops_cleanly(ctx: StageContext, stage: str, bar: Any,
                   on_interrupt: Callable[[], dict[str, Any]] | None = None) -> Iterator[None]:
    """Around a stage's training loop: on Ctrl-C stop the workers now, journal the interruption
    (with ``on_interrupt``'s fields, after it has saved what it must) and re-raise; always close the bar."""
    try:
        yield
    except KeyboardInterrupt:
        ctx.evaluator.close(cancel=True)
        extra = on_interrupt() if on_interrupt is not None else {}
        ctx.run.journal.append({"type": "stage", "stage": stage, "event": "interrupted", **extra})
        raise
    finally:
        if bar is not None:
            bar.close()


def _collect(fut: cf.Future, arch: Arch) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return fut.result(), None
    except TinyNASError as exc:
        log.warning("candidate %s failed: %s", arch.id, exc)
        return None, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a crash in one training must not end the search; it is journaled
        log.warning("candidate %s failed: %r", arch.id, exc)
        return None, f"{type(exc).__name__}: {exc}"


# -- prefilter ------------------------------------------------------------------------------------
@STAGES.register("prefilter")
def prefilter_stage(ctx: StageContext) -> dict:
    """Zero-cost proxies on feasible samples (tinynas.proxies.prefilter); keeps the diverse top K.

    Proxy scores depend on the arch, the data and the seed, not on the board: they are kept in
    the run's cache (``<cache>/proxies/``), so the boards of a sweep, which share one cache,
    score each arch once and differ only in which archs they find feasible.
    """
    from tinynas.proxies.prefilter import prefilter

    s = ctx.settings
    memo_path = _proxy_memo_path(ctx)
    memo: dict[str, dict[str, float]] = read_json(memo_path) or {}
    result = prefilter(space=ctx.resolved.space, profile=ctx.resolved.profile, dataset_or_batch=ctx.resolved.dataset,
                       n_candidates=int(s.prefilter_candidates), k=int(s.prefilter_keep), seed=int(s.seed),
                       workers=1, progress=ctx.progress, known_scores=memo)
    if result.partial:
        raise KeyboardInterrupt  # the prefilter swallowed Ctrl-C; redo it on resume
    reused = sum(1 for c in result.scored if set(c.scores) <= set(memo.get(c.arch.id, {})))
    memo.update({c.arch.id: {**memo.get(c.arch.id, {}), **c.scores} for c in result.scored})
    memo_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(memo_path, memo)
    data = result.to_json()
    atomic_write_json(ctx.run.stage_dir("prefilter") / "prefilter.json", data)
    log.info("prefilter: %d sampled, %d feasible (%d scores reused), kept %d", result.n_sampled, result.n_feasible,
             reused, len(result.kept))
    return {"n_sampled": result.n_sampled, "n_feasible": result.n_feasible, "proxies": list(result.proxies),
            "scored": len(result.scored) - reused, "reused": reused, "kept": [k.to_json() for k in result.kept]}


def _proxy_memo_path(ctx: StageContext) -> Path:
    """``<cache>/proxies/<key>.json``: arch id -> proxy -> score, for one space, dataset and seed
    (what the scores depend on; the prefilter's proxy batch is drawn from the dataset with the seed)."""
    r = ctx.resolved
    key = json.dumps([r.space.name, list(r.dataset.input_shape), int(r.dataset.num_classes),
                      str(getattr(r.dataset, "fingerprint", r.dataset.name)), int(ctx.settings.seed)])
    return Path(ctx.evaluator.spec.cache_dir) / "proxies" / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"


# -- once-for-all supernet -----------------------------------------------------------------------
@STAGES.register("supernet")
def supernet_stage(ctx: StageContext) -> dict:
    """Train, resume or reuse the run's once-for-all supernet (tinynas.ofa.pipeline)."""
    from tinynas.ofa.pipeline import supernet_stage as train_or_reuse

    return train_or_reuse(ctx)


@STAGES.register("verify")
def verify_stage(ctx: StageContext) -> dict:
    """Measure the ``verify_top`` subnets the accuracy predictor ranks best (ofa, ``score=predictor``), in
    ``verify_rounds`` rounds.

    A search that maximizes a learned predictor drifts to where it over-predicts; inherited accuracy
    (about a second each) decides among its best before anything is fine-tuned. The first round takes the
    search's best predicted; before each later round the predictor is refitted with the subnets measured so
    far (tinynas.ofa.pipeline.anchored_predictor) and re-ranks the search's subnets, so the measurements
    correct it where this board's subnets are, which its uniform sample barely covers. Journaled per subnet
    (fidelity "ofa", the prediction it was picked by beside the measurement, and its round); the refit is
    deterministic, so a resumed stage picks the same subnets and measures only the rest.
    """
    from tinynas.ofa.pipeline import anchored_predictor
    from tinynas.ofa.predictor import kendall_tau
    from tinynas.ofa.verify import measure_in_rounds

    run, hyper = ctx.run, ctx.resolved.strategy_hyper
    searched = run.journal.candidates(stage="search")
    pool = top_candidates(searched, len(searched))  # every usable subnet, best predicted first
    n = int(hyper["verify_top"])
    done = {e["id"]: e for e in run.journal.candidates(stage="verify")}
    evaluator = stage_evaluator(ctx)
    bar = _bar(ctx, min(n, len(pool)), "verify predicted best")

    def measure(arch: Arch, prediction: float, round_: int) -> float | None:
        if arch.id not in done:
            job = EvalJob(arch=arch, budget=ctx.settings.search_budget(train_samples=ctx.train_samples),
                          seed=int(ctx.settings.seed), fidelity="inherited")
            outcome, error = _collect(evaluator.submit(job), arch)
            done[arch.id] = _record(ctx, "verify", arch, fidelity="ofa", outcome=outcome, error=error,
                                    extra={"predicted_accuracy": prediction, "round": round_})
        if bar is not None:
            bar.update(1)
        return done[arch.id].get("accuracy")

    with _stops_cleanly(ctx, "verify", bar):
        picks = measure_in_rounds([(Arch.from_json(e["arch"]), float(e["accuracy"])) for e in pool], n=n,
                                  rounds=int(hyper["verify_rounds"]), measure=measure,
                                  refit=lambda anchors: anchored_predictor(ctx, anchors))
    picked = [done[arch.id] for arch, _, _ in picks]
    measured = [e for e in picked if e.get("accuracy") is not None]  # in the order they were picked
    if not measured:
        raise SearchError(f"none of the {len(picked)} best predicted subnets could be scored; see {run.journal.path}")
    predicted, actual = [e["predicted_accuracy"] for e in measured], [e["accuracy"] for e in measured]
    best = min(measured, key=rank_key)  # the final stage ranks them so: a tie goes to the lower loss
    return {"verified": len(measured), "rounds": max(e.get("round", 1) for e in measured),
            "best_id": best["id"], "best_inherited": best["accuracy"], "best_round": best.get("round", 1),
            "predicted_rank_of_best": measured.index(best) + 1,
            "mean_abs_error": round(sum(abs(p - a) for p, a in zip(predicted, actual)) / len(measured), 4),
            "kendall_tau": round(kendall_tau(predicted, actual), 3)}


@STAGES.register("differentiable")
def differentiable_stage(ctx: StageContext) -> dict:
    """Search the layer-wise supernet; derive, repair and journal its arch (tinynas.pipeline.differentiable)."""
    from tinynas.pipeline.differentiable import differentiable_stage as search_supernet

    return search_supernet(ctx)


@STAGES.register("refine")
def refine_stage(ctx: StageContext) -> dict:
    """Refine the evolution's best arch by a differentiable search (tinynas.pipeline.refine)."""
    from tinynas.pipeline.refine import refine_stage as refine

    return refine(ctx)


# -- search ---------------------------------------------------------------------------------------
def make_search_strategy(ctx: StageContext) -> Strategy:
    s = ctx.settings
    hyper = dict(ctx.resolved.strategy_hyper)
    if s.strategy == "staged":
        done = ctx.run.stage_done("prefilter") or {}
        kept = [Arch.from_json(k["arch"]) for k in done.get("kept", [])]
        hyper["seed_archs"] = seeds_for_budget(kept, s.candidates)
    elif s.strategy in DIFFERENTIABLE:  # the supernet's derived arch is trained first
        hyper["seed_archs"] = [Arch.from_json((ctx.run.stage_done("differentiable") or {})["arch"])]
    return make_strategy(s.strategy, space=ctx.resolved.space, seed=int(s.seed), feasible=ctx.check, **hyper)


@STAGES.register("search")
def search_stage(ctx: StageContext) -> dict:
    """Ask/tell over the candidate or time budget with ``workers`` trainings in flight."""
    s, run = ctx.settings, ctx.run
    state_file = run.stage_dir("search") / "strategy_state.json"
    strategy = make_search_strategy(ctx)
    saved = read_json(state_file)
    elapsed = 0.0
    if saved:
        strategy.load_state_dict(saved["strategy"])
        elapsed = float(saved.get("elapsed_s", 0.0))
    journaled = {e["id"]: e for e in run.journal.candidates(stage="search")}
    told = {a.id for a, _ in strategy.history}
    for entry in journaled.values():  # journaled but the state save did not happen before the kill
        if entry["id"] not in told:
            strategy.tell(Arch.from_json(entry["arch"]), observation(entry))
    budget_n, minutes = s.candidates, s.budget_minutes
    fidelity = "ofa" if s.strategy == "ofa" else "low"  # inherited accuracy from the supernet, or a short training
    best = max((e["accuracy"] for e in journaled.values() if e.get("accuracy") is not None), default=None)
    started = time.monotonic() - elapsed

    last_save = [0.0]

    def save(*, force: bool = True) -> None:
        """Write the strategy's state; after a tell only every STATE_SAVE_S: the state grows with the history,
        so saving after each of thousands of subnets scored in microseconds (ofa's predictor) costs more than
        scoring them. A kill loses nothing: what is journaled but not in the saved state is told on resume."""
        if not force and time.monotonic() - last_save[0] < STATE_SAVE_S:
            return
        atomic_write_json(state_file, {"strategy": strategy.state_dict(),
                                       "elapsed_s": round(time.monotonic() - started, 3)})
        last_save[0] = time.monotonic()

    # Results of other boards of a sweep: accuracy does not depend on the board, only feasibility does.
    # Each counts in the budget as what it cost: one candidate, and its evaluation's seconds of a time budget.
    # Not for ofa: what its boards share is the supernet. A subnet scores in about a second, so telling a board
    # the tighter boards' subnets saves seconds and spends its candidate budget on their region of the space.
    shared = [] if fidelity == "ofa" else ctx.shared
    for entry in sorted(shared, key=lambda e: -(e.get("accuracy") or 0.0)):
        if budget_n is not None and len(journaled) >= budget_n:
            break
        arch = Arch.from_json(entry["arch"])
        if arch.id in journaled or arch.id in told or entry.get("accuracy") is None or not ctx.check(arch):
            continue
        outcome = {k: entry.get(k) for k in ("accuracy", "val_loss", "test_accuracy", "train_seconds", "params")}
        outcome.update(seconds=0.0, cached=True, worker=None)
        rec = _record(ctx, "search", arch, fidelity=fidelity, outcome=outcome,
                      extra={"shared_from": entry.get("board"), "shared_seconds": float(entry.get("seconds") or 0.0)})
        journaled[arch.id] = rec
        strategy.tell(arch, observation(rec))
        best = max(best or 0.0, rec["accuracy"])
        started -= float(entry.get("seconds") or 0.0)
    save()

    evaluator = stage_evaluator(ctx)
    queue = list(strategy.pending)  # asked before the kill, never told: evaluate them first
    in_flight: dict[cf.Future, Arch] = {}
    bar = _bar(ctx, budget_n, f"search {s.strategy}", initial=len(journaled))
    _best_postfix(bar, best)
    search_budget = s.search_budget(train_samples=ctx.train_samples)

    def budget_left() -> bool:
        if not journaled and not in_flight:
            return True  # any budget buys at least one candidate
        if budget_n is not None and len(journaled) + len(in_flight) >= budget_n:
            return False
        return minutes is None or time.monotonic() - started < 60.0 * float(minutes)

    def interrupted() -> dict[str, Any]:
        save()
        log.warning("search interrupted after %d candidate%s, kept in the journal for the resume", len(journaled),
                    "" if len(journaled) == 1 else "s")
        return {"evaluated": len(journaled)}

    repeats = 0  # proposals of archs already evaluated in a row (evolution may repeat, Real et al. 2019)
    with _stops_cleanly(ctx, "search", bar, on_interrupt=interrupted):
        while True:
            while len(in_flight) < evaluator.workers and budget_left() and repeats < MAX_REPEATS:
                if queue:
                    arch = queue.pop(0)
                else:
                    asked = strategy.ask(1)
                    if not asked:
                        break
                    arch = asked[0]
                if arch.id in journaled:  # known result: told again, not trained again
                    strategy.tell(arch, observation(journaled[arch.id]))
                    repeats += 1
                    continue
                repeats = 0
                if not ctx.check(arch):  # constraints are hard: never trained
                    raise SearchError(f"strategy {s.strategy!r} proposed {arch.id}, which does not fit "
                                      f"{ctx.resolved.profile.id}; this is a bug in the strategy's feasibility filter")
                job = EvalJob(arch=arch, budget=search_budget, seed=int(s.seed), fidelity=fidelity)
                in_flight[evaluator.submit(job)] = arch
            if not in_flight:
                break
            done, _ = cf.wait(list(in_flight), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                arch = in_flight.pop(fut)
                outcome, error = _collect(fut, arch)
                entry = _record(ctx, "search", arch, fidelity=fidelity, outcome=outcome, error=error)
                journaled[arch.id] = entry
                strategy.tell(arch, observation(entry))
                save(force=False)
                if ctx.on_candidate is not None:
                    ctx.on_candidate(entry)
                if entry.get("accuracy") is not None:
                    best = max(best or 0.0, entry["accuracy"])
                if bar is not None:
                    bar.update(1)
                    _best_postfix(bar, best)
    save()
    stop = search_stop(ctx, strategy, evaluated=len(journaled), elapsed_s=time.monotonic() - started,
                       stalled=repeats >= MAX_REPEATS)
    if stop["reason"] != "budget":
        log.warning("search: %s", stop["message"])
        run.journal.append({"type": "stage", "stage": "search",
                            "event": "exhausted" if stop["reason"] == "exhausted" else "stopped_early", **stop})
    front_latency = [a.id for a, _ in strategy.pareto_front(cost="latency_ms")]
    front_arena = [a.id for a, _ in strategy.pareto_front(cost="arena_bytes")]
    usable = [e for e in journaled.values() if e.get("accuracy") is not None]
    if not usable:
        raise SearchError(f"every one of the {len(journaled)} candidates failed to train; see {run.journal.path}")
    return {"strategy": s.strategy, "evaluated": len(journaled), "elapsed_s": round(time.monotonic() - started, 3),
            "trained": sum(1 for e in journaled.values() if not e.get("cached")),
            "best_id": min(usable, key=rank_key)["id"],
            "pareto_latency": front_latency, "pareto_arena": front_arena, "stop": stop}


def search_stop(ctx: StageContext, strategy: Strategy, *, evaluated: int, elapsed_s: float,
                stalled: bool) -> dict[str, Any]:
    """Why the search ended, as recorded in its done.json, the journal and the report.

    ``reason``: ``budget`` (candidates or minutes spent), ``exhausted`` (no untried feasible arch
    is left: every feasible arch of the space, or every one the strategy's sampling could reach),
    ``stalled`` (the strategy proposed only trained archs MAX_REPEATS times in a row) or
    ``finished`` (the strategy stopped on its own, e.g. NanoNAS's climb at a local optimum).
    ``feasible_archs`` is the exact size of the feasible set where the space is small enough to
    scan (None otherwise, and not counted when the budget ended the search: the scan costs time).
    """
    s = ctx.settings
    budget_n, minutes = s.candidates, s.budget_minutes
    left_n = None if budget_n is None else max(0, int(budget_n) - evaluated)
    left_s = None if minutes is None else max(0.0, 60.0 * float(minutes) - elapsed_s)
    fractions = [f for f in (None if left_n is None else left_n / int(budget_n),
                             None if left_s is None else left_s / (60.0 * float(minutes))) if f is not None]
    unused = min(fractions) if fractions else 0.0
    if left_n == 0 or left_s == 0.0:
        reason = "budget"
    elif strategy.exhausted:
        reason = "exhausted"
    elif stalled:
        reason = "stalled"
    else:
        reason = "finished"
    feasible = None if reason == "budget" else strategy.feasible_count()
    left = {"candidates": left_n, "seconds": None if left_s is None else round(left_s, 1)}
    stop: dict[str, Any] = {"reason": reason, "exhausted": strategy.exhausted, "feasible_archs": feasible,
                            "evaluated": evaluated, "budget_left": left, "unused_fraction": round(unused, 4)}
    stop["message"] = _stop_message(stop, strategy=s.strategy, space=ctx.resolved.space.name,
                                    board=ctx.resolved.profile.id, note=strategy.finish_note)
    return stop


def _stop_message(stop: dict[str, Any], *, strategy: str, space: str, board: str, note: str) -> str:
    n, m = stop["evaluated"], stop["feasible_archs"]
    left = stop["budget_left"]
    parts = ([counted(int(left['candidates']), 'candidate')] if left.get("candidates") is not None else []) + \
            ([f"{left['seconds'] / 60.0:.1f} min"] if left.get("seconds") is not None else [])
    budget = f"{' / '.join(parts)} of the budget left ({100.0 * stop['unused_fraction']:.0f} % unused)"
    reach = f"all {n} distinct feasible archs the strategy could propose were trained"
    if stop["reason"] == "budget":
        return f"the budget ended the search after {n} candidates"
    if stop["reason"] == "exhausted":
        what = (f"all {m} feasible archs of space {space!r} on {board} were trained" if m is not None
                and m <= n else reach)
        return f"the search exhausted the feasible space: {what}, with {budget}"
    known = f"; {m} feasible archs exist" if m is not None else ""
    if stop["reason"] == "stalled":
        return (f"strategy {strategy!r} proposed only archs already trained {MAX_REPEATS} times in a row: "
                f"{reach}{known}, with {budget}")
    return f"strategy {strategy!r} finished on its own ({note}) after {n} candidates{known}, with {budget}"


# -- final training -------------------------------------------------------------------------------
def rank_key(entry: dict[str, Any]) -> tuple[float, float, float]:
    """Most accurate first; among equal accuracies the lower validation loss, then the lower latency.

    A small validation split makes ties common (8 samples: accuracy moves in steps of 12.5 points), and
    its loss still tells the candidates apart."""
    loss = entry.get("val_loss")
    latency = (entry.get("cost") or {}).get("latency_ms") or 0.0
    return (-entry["accuracy"], math.inf if loss is None else float(loss), latency)


def top_candidates(entries: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The ``k`` best distinct usable entries (``rank_key``)."""
    best: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e.get("accuracy") is None or not (e.get("cost") or {}).get("fits", True):
            continue
        if e["id"] not in best or e["accuracy"] > best[e["id"]]["accuracy"]:
            best[e["id"]] = e
    ranked = sorted(best.values(), key=rank_key)
    return ranked[:k]


@STAGES.register("final")
def final_stage(ctx: StageContext) -> dict:
    """Train the top ``final_top_k`` search candidates at full fidelity, keeping their weights.

    With ofa's ``fill_budget`` the minutes the search left decide the top and its epochs instead
    (tinynas.pipeline.fill): the best candidate is trained at the planned epochs first and timed.
    """
    s, run = ctx.settings, ctx.run
    from tinynas.pipeline.refine import final_entries

    # predicted scores (ofa's predictor) rank the search; what the verify stage measured ranks the final
    pool = run.journal.candidates(stage="verify") or run.journal.candidates(stage="search") + final_entries(ctx)
    fill = _fill_plan(ctx, pool) if ctx.resolved.strategy_hyper.get("fill_budget") else None
    top = top_candidates(pool, int(s.final_top_k) if fill is None else fill.top_k)
    if fill is None:
        budget, extension = final_budget(ctx, n_final=len(top))
    else:
        budget, extension = replace(s.final_budget(train_samples=ctx.train_samples), epochs=fill.epochs), None
    if extension is not None and not any(e.get("event") == "extended" for e in run.journal.events(stage="final")):
        log.warning("final training: %s", extension["message"])
        run.journal.append({"type": "stage", "stage": "final", "event": "extended", **extension})
    done = _train_final(ctx, [Arch.from_json(e["arch"]) for e in top], budget, "final training")
    ranked = [done[e["id"]] for e in top if done.get(e["id"], {}).get("accuracy") is not None]
    ranked.sort(key=rank_key)
    if not ranked:
        raise SearchError(f"final training failed for every one of the top {len(top)} candidates; "
                          f"see {run.journal.path}")
    return {"ranked": [e["id"] for e in ranked], "budget": budget.to_json(), "extension": extension,
            **({"fill": fill.to_json()} if fill is not None else {})}


def _train_final(ctx: StageContext, archs: list[Arch], budget: TrainBudget, desc: str) -> dict[str, dict[str, Any]]:
    """Train ``archs`` at ``budget`` (those journaled at its epochs with their weights kept are not trained
    again); returns the final entries at those epochs by id."""
    run = ctx.run
    sdir = run.stage_dir("final")
    done = {e["id"]: e for e in run.journal.candidates(stage="final") if e.get("epochs") == budget.epochs}
    todo = [a for a in archs if a.id not in done or not (sdir / f"{a.id}.keras").is_file()]
    bar = _bar(ctx, len(archs), desc, initial=len(archs) - len(todo))
    in_flight: dict[cf.Future, Arch] = {}
    evaluator = stage_evaluator(ctx) if todo else ctx.evaluator
    with _stops_cleanly(ctx, "final", bar):
        while todo or in_flight:
            while todo and len(in_flight) < evaluator.workers:
                arch = todo.pop(0)
                job = EvalJob(arch=arch, budget=budget, seed=int(ctx.settings.seed), fidelity="final",
                              model_path=str(sdir / f"{arch.id}.keras"))
                in_flight[evaluator.submit(job)] = arch
            finished, _ = cf.wait(list(in_flight), return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                arch = in_flight.pop(fut)
                outcome, error = _collect(fut, arch)
                done[arch.id] = _record(ctx, "final", arch, fidelity="final", outcome=outcome, error=error,
                                        extra={"epochs": budget.epochs})
                if ctx.on_candidate is not None:
                    ctx.on_candidate(done[arch.id])
                if bar is not None:
                    bar.update(1)
    return done


def _fill_plan(ctx: StageContext, pool: list[dict[str, Any]]) -> "FillPlan | None":
    """The final that fills the seconds the search left (None: the run has no time budget).

    Journaled once (event "filled"), so a resumed stage trains the same top at the same epochs.
    """
    from tinynas.pipeline.fill import FillPlan, plan_fill, seconds_left

    run, s = ctx.run, ctx.settings
    for event in run.journal.events(stage="final"):
        if event.get("event") == "filled":
            return FillPlan.from_json(event["plan"])
    seconds = seconds_left(run.journal, run.stage_done("search"))
    ranked = top_candidates(pool, len(pool))
    if seconds is None or not ranked:
        return None
    planned = s.final_budget(train_samples=ctx.train_samples)
    best = Arch.from_json(ranked[0]["arch"])
    probe = _train_final(ctx, [best], planned, "final training (timing the best)").get(best.id) or {}
    if probe.get("accuracy") is None:  # failed: its error is journaled; plan as if nothing were left
        return None
    plan = plan_fill(seconds=seconds, probe_seconds=float(probe.get("train_seconds") or 0.0),
                     planned_epochs=int(s.final_epochs), planned_top_k=int(s.final_top_k), available=len(ranked))
    log.info("final training fills %.0f s the search left: top %d x %d epochs (%d epochs took %.1f s)",
             plan.seconds, plan.top_k, plan.epochs, int(s.final_epochs), plan.probe_seconds)
    run.journal.append({"type": "stage", "stage": "final", "event": "filled", "plan": plan.to_json()})
    return plan


def final_budget(ctx: StageContext, *, n_final: int) -> tuple[TrainBudget, dict[str, Any] | None]:
    """The final stage's training budget, and how it was extended (None: as planned).

    A search that stopped before its budget (the space exhausted, the strategy finished or
    stalled) hands the work it did not do to the final stage: the unused candidates times a
    search candidate's sample-epochs (``search_epochs`` x the samples of its epoch), or the unused
    minutes at the rate the search trained, whichever is less, spread over the ``n_final``
    candidates as whole extra epochs, at most ``MAX_FINAL_SCALE`` times the planned epochs
    (more epochs of the same schedule stop helping). At the defaults on digits one unused
    candidate is about one extra final epoch. Computed from the search's done.json and journal
    only, so a resumed run trains its final candidates at the same budget (and from the cache).
    """
    s = ctx.settings
    budget = s.final_budget(train_samples=ctx.train_samples)
    stop = (ctx.run.stage_done("search") or {}).get("stop") or {}
    if stop.get("reason") in (None, "budget") or n_final < 1:
        return budget, None
    search_samples = s.search_budget(train_samples=ctx.train_samples).epoch_samples(ctx.train_samples)
    left = stop.get("budget_left") or {}
    works = []
    if left.get("candidates") is not None:
        works.append(float(left["candidates"]) * int(s.search_epochs) * search_samples)
    if left.get("seconds") is not None:
        trained = [e for e in ctx.run.journal.candidates(stage="search")
                   if not e.get("cached") and float(e.get("train_seconds") or 0.0) > 0.0]
        seconds = sum(float(e["train_seconds"]) for e in trained)
        rate = len(trained) * int(s.search_epochs) * search_samples / seconds if seconds else 0.0
        works.append(float(left["seconds"]) * rate)
    final_samples = budget.epoch_samples(ctx.train_samples)
    extra = min(int(min(works, default=0.0) // (n_final * final_samples)),
                int(s.final_epochs) * (MAX_FINAL_SCALE - 1))
    if extra < 1:
        return budget, None
    budget = replace(budget, epochs=int(s.final_epochs) + extra)
    message = (f"{budget.epochs} epochs instead of {s.final_epochs} for the top {counted(n_final, 'candidate')}: "
               f"the search stopped early ({stop.get('reason')}) and left "
               f"{100.0 * float(stop.get('unused_fraction') or 0.0):.0f} % of its budget")
    return budget, {"planned_epochs": int(s.final_epochs), "epochs": budget.epochs, "extra_epochs": extra,
                    "reason": stop.get("reason"), "message": message}


# -- winner ---------------------------------------------------------------------------------------
@STAGES.register("winner")
def winner_stage(ctx: StageContext) -> dict:
    """The most accurate final candidate; its weights go to ``model/model.keras``."""
    import shutil

    run = ctx.run
    final = run.stage_done("final") or {}
    entries = {e["id"]: e for e in run.journal.candidates(stage="final")}
    winner = entries[final["ranked"][0]]
    model_dir = run.path / "model"
    model_dir.mkdir(exist_ok=True)
    shutil.copyfile(run.path / "stages" / "final" / f"{winner['id']}.keras", model_dir / "model.keras")
    atomic_write_json(model_dir / "arch.json", winner["arch"])
    return {"id": winner["id"], "arch": winner["arch"], "cost": winner["cost"], "accuracy": winner["accuracy"],
            "test_accuracy": winner.get("test_accuracy"), "model": "model/model.keras"}

