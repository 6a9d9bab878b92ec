"""The ``refine`` stage of ``staged --refine darts|drnas|rdarts``: differentiable refinement between evolution
and final training (prefilter -> search -> refine -> final -> winner), the pipeline the design card names.

It trains the layer-wise supernet (tinynas.darts; mcunet or dscnn) around the evolution's best arch, every block
mixing only the choices that the top candidates use there (mcunet: (kernel, expand); dscnn: the stem kernel; and
skip where one lacks a block the best arch has: a shallower stage, fewer dscnn blocks), derives and
repairs the arch with the cost model and journals it (fidelity "supernet", like the ``differentiable`` stage).
When the top candidates agree on every block (a small search often converges on one arch), there is no
disagreement to mix; rather than skip the stage, it then mixes the best arch's own blocks over the options one
step around its choices, plus skip (``neighbour_blocks``), so it always searches
something, and says so in its notes and the report.
The supernet's accuracy is not comparable with the search's, so the derived arch is then trained at the search's
own fidelity ("low") unless the search already did; final training takes it when it ranks among the top
``final_top_k`` by that measure. A killed stage resumes from the supernet checkpoint of its last finished epoch
(``stages/refine``).
"""

from __future__ import annotations

import difflib
import logging
from typing import Any, Callable

import numpy as np

from tinynas.darts.layerwise import RELAXABLE_SPACES, SKIP, option_label, relax, rules_for
from tinynas.errors import CostError, SearchError, SpaceError
from tinynas.space.arch import Arch
from tinynas.text import counted

log = logging.getLogger(__name__)

#: ``--refine`` values; "none" leaves the stage out of the plan
REFINE_METHODS = ("none", "darts", "drnas", "rdarts")
#: the spaces whose blocks the layer-wise supernet can mix (tinynas.darts.layerwise.relax)
REFINE_SPACES = RELAXABLE_SPACES
STAGE = "refine"
#: the hyperparameters of --strategy darts|drnas|rdarts that size its refinement (``--refine-option``); the others
#: (the evolution's population, the base samples) belong to that strategy's own search, where nothing uses them here
REFINE_OPTIONS = ("supernet_epochs", "supernet_samples", "alpha_lr", "hw_lambda", "max_mixed_blocks")


def check_refine(*, refine: str, strategy: str, space: str) -> None:
    """SearchError (before anything is written) for an unknown method, a strategy other than ``staged``, or a
    space with nothing to mix."""
    if refine not in REFINE_METHODS:
        raise SearchError(f"--refine {refine!r} is unknown; choose one of {', '.join(REFINE_METHODS)}")
    if refine == "none":
        return
    if strategy != "staged":
        raise SearchError(f"--refine {refine} refines the evolution of --strategy staged, not {strategy!r}; "
                          f"use --strategy staged, or --strategy {refine} for a differentiable search on its own")
    if space not in REFINE_SPACES:
        raise SearchError(f"--refine {refine}: space {space!r} has nothing to mix (no per-block decision keeps the "
                          f"tensor shapes between blocks fixed, so none could be relaxed); the layer-wise supernet "
                          f"works on {', '.join(REFINE_SPACES)}. Use --space {' or '.join(REFINE_SPACES)}, or "
                          f"--refine none")


def check_refine_options(*, refine: str, options: dict[str, Any], space: Any, seed: int) -> None:
    """SearchError (before anything is written) for a ``--refine-option`` without ``--refine``, a key that does
    not size the refinement, or a value the method's strategy refuses."""
    if not options:
        return
    given = ", ".join(f"{k}={v!r}" for k, v in options.items())
    if refine == "none":
        raise SearchError(f"--refine-option {given} sets the differentiable refinement, which runs only with "
                          f"--refine {'|'.join(REFINE_METHODS[1:])}; add --refine, or leave the option out")
    for key in options:
        if key not in REFINE_OPTIONS:
            close = difflib.get_close_matches(key, REFINE_OPTIONS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise SearchError(f"--refine {refine} has no option {key!r}; {hint}known: {', '.join(REFINE_OPTIONS)}")
    from tinynas.strategies import make_strategy

    try:
        make_strategy(refine, space=space, seed=seed, **options)
    except (TypeError, ValueError) as exc:
        raise SearchError(f"--refine {refine} cannot take {given}: {exc}") from None


def block_choices(base: Arch, archs: list[Arch], *, space: Any) -> dict[str, set[tuple[Any, ...]]]:
    """Per block of ``base`` that can be mixed (``"s2_b1"``, dscnn's ``"stem"``): the options ``archs`` take
    there that the block may take, ``SKIP`` for one whose network lacks a block that can be left out (a
    shallower stage, fewer dscnn blocks)."""
    rules = rules_for(space)
    blocks = rules.blocks(space, base, rules.options(space, base))
    return {b.name: {v for v in (rules.value(a, b) for a in archs) if b.allows(v)} for b in blocks}


def mixed_blocks(base: Arch, archs: list[Arch], *, space: Any,
                 max_blocks: int) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The blocks of ``base`` to mix and their options: the blocks where the top candidates disagree (most
    distinct choices first, at most ``max_blocks``: every option is a branch of the supernet, and its tracing
    and training grow with them), over the union of the choices used there (with ``SKIP`` where a candidate
    lacks a block the base has). Blocks where they agree keep the base's choice."""
    used = block_choices(base, archs, space=space)
    ranked = sorted((name for name in used if len(used[name]) > 1), key=lambda n: (-len(used[n]), n))
    names = sorted(ranked[:max_blocks])
    return names, _ordered(space, base, set().union(*(used[n] for n in names))) if names else []


def _ordered(space: Any, base: Arch, options: set[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``options`` in the space's order (the smallest first, skip last), as the plan orders them."""
    return [o for o in rules_for(space).options(space, base) if o in options]


def neighbour_blocks(base: Arch, *, space: Any, max_blocks: int,
                     latency: Callable[[Arch], float]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The blocks of ``base`` to mix when its top candidates agree on every block, and their options.

    Blocks: those whose choice moves ``latency`` most (the arch with that block at its dearest option against
    its cheapest, ``LayerwiseRules.extremes``; at most ``max_blocks``), since there the hardware-aware loss and
    the accuracy trade the most. Options: each mixed block's own and the options one step around it (mcunet:
    kernel 3/5/7, expand 3/4/6; dscnn: the next stem kernels, or keep and skip), united over the mixed blocks
    (the supernet shares one option list); the base's choices are always among them, so the plan can express
    the base; and skip when a mixed block can be left out (the next smaller step; tinynas.darts.layerwise). A
    base with nothing to mix gives ``([], [])``."""
    rules = rules_for(space)
    try:
        plan = relax(space, base)
    except SearchError:
        return [], []
    own = [int(np.argmax(row)) for row in plan.one_hot(base)]

    def with_block(i: int, option: tuple[Any, ...]) -> Arch:
        choice = list(own)
        choice[i] = plan.blocks[i].options.index(option)
        return plan.arch_of(choice)

    def spread(i: int) -> float:
        small, large = rules.extremes(plan.blocks[i])
        try:
            return float(latency(with_block(i, large))) - float(latency(with_block(i, small)))
        except (CostError, SpaceError) as exc:  # a neighbour the space or cost model refuses: rank it last
            log.info("refine: block %s of %s could not be costed (%s); ranked last", plan.blocks[i].name, base.id,
                     exc)
            return float("-inf")

    ranked = sorted(range(len(plan.blocks)), key=lambda i: (-spread(i), plan.blocks[i].name))
    picked = [plan.blocks[i] for i in ranked[:max(1, int(max_blocks))]]
    options = {o for b in picked for o in rules.neighbours(b, rules.value(base, b)) if b.allows(o) and o != SKIP}
    if any(b.skippable for b in picked):
        options.add(SKIP)
    return sorted(b.name for b in picked), _ordered(space, base, options)


def refine_stage(ctx: Any) -> dict:
    """Refine the evolution's best arch; returns the derived arch, its search-fidelity accuracy and whether
    final training takes it (``handed``), and how the mixed blocks were chosen (``mix``: "disagreement" of the
    top candidates, or "neighbourhood" of the best arch when they agree on every block). Only a search with no
    usable candidate, or a best arch with no block that can be mixed, skips the supernet with a note."""
    from tinynas.pipeline.differentiable import chance_accuracy, run_layerwise_search, supernet_search_setup
    from tinynas.pipeline.stages import cost_fields, top_candidates
    from tinynas.strategies import make_strategy

    s, run = ctx.settings, ctx.run
    space = ctx.resolved.space
    method = s.refine
    top = top_candidates(run.journal.candidates(stage="search"), int(s.final_top_k))
    if not top:
        note = "the search has no trained feasible candidate to refine"
        log.warning("refine: %s", note)
        return {"method": method, "skipped": note, "handed": False}
    archs = [Arch.from_json(e["arch"]) for e in top]
    base = archs[0]
    # the supernet hyperparameters of --strategy <method>: its defaults (epochs: --search-epochs), or --refine-option
    strategy = make_strategy(method, space=space, seed=int(s.seed), feasible=ctx.check, **s.refine_options)
    names, options = mixed_blocks(base, archs, space=space, max_blocks=strategy.max_mixed_blocks)
    mix, mix_notes = "disagreement", []
    if not names:
        names, options = neighbour_blocks(base, space=space, max_blocks=strategy.max_mixed_blocks,
                                          latency=lambda a: float(ctx.check.cost(a).latency_ms))
        if not names:
            note = f"the best arch {base.id} has no block that can be mixed: nothing to mix"
            log.warning("refine: %s", note)
            return {"method": method, "base": base.id, "skipped": note, "handed": False}
        mix = "neighbourhood"
        mix_notes.append(
            f"the top {counted(len(top), 'candidate')} agree{'s' if len(top) == 1 else ''} on every block of "
            f"{base.id}; mixed instead its block{'' if len(names) == 1 else 's'} "
            f"{', '.join(names)} (where their choice moves latency most on {ctx.resolved.profile.id}) over "
            f"the options one step around their own: {', '.join(map(option_label, options))}")
        log.info("refine: %s", mix_notes[-1])
    plan = relax(space, base, options=options, blocks=names)
    data, config, epochs = supernet_search_setup(ctx, strategy)
    result, notes = run_layerwise_search(ctx, data, plan=plan, config=config, epochs=epochs,
                                         label=f"refine {method}", state_dir=run.stage_dir(STAGE))
    notes = mix_notes + notes
    derived = result.arch
    journaled = run.journal.candidates(stage=STAGE)
    if not any(e["id"] == derived.id and e.get("fidelity") == "supernet" for e in journaled):  # a resumed stage
        epoch = -1 if result.arch_epoch is None else result.arch_epoch
        val = result.val_accuracy[epoch] if result.val_accuracy else None
        run.journal.append({"type": "candidate", "stage": STAGE, "id": derived.id, "arch": derived.to_json(),
                            "fidelity": "supernet", "cost": cost_fields(ctx.check.cost(derived)), "accuracy": val,
                            "error": None, "seconds": round(result.seconds, 3), "cached": False, "worker": None,
                            "notes": notes})
    accuracy = _search_fidelity_accuracy(ctx, derived)
    cut = min(e["accuracy"] for e in top)
    feasible = bool(ctx.check(derived))
    # not worse than the last arch final training takes (or fewer than final_top_k candidates: always a place)
    handed = feasible and accuracy is not None and (accuracy >= cut or len(top) < int(s.final_top_k))
    record = result.to_json()
    record.pop("weights")
    return {"method": method, "base": base.id, "top": [a.id for a in archs], "options": [list(o) for o in options],
            "mix": mix, "mixed": names, "mixed_blocks": plan.shape[0], "derived": derived.id,
            **({"hyperparameters": dict(s.refine_options)} if s.refine_options else {}),
            "arch": derived.to_json(), "notes": notes,
            "accuracy": accuracy, "cut_accuracy": cut, "feasible": feasible, "handed": handed,
            "expected_latency_ms": (result.expected_latency_ms or [None])[-1],
            "latency_ms": float(ctx.check.cost(derived).latency_ms), "search": record,
            "chance_accuracy": chance_accuracy(data.y_val)}


def _search_fidelity_accuracy(ctx: Any, arch: Arch) -> float | None:
    """``arch``'s accuracy at the search's fidelity: the search's own entry, an earlier run of this stage's, or
    one training with the search budget now (journaled in stage ``refine``, fidelity "low")."""
    from tinynas.pipeline.evaluate import EvalJob
    from tinynas.pipeline.stages import _collect, _record

    for stage in ("search", STAGE):
        for e in ctx.run.journal.candidates(stage=stage):
            if e["id"] == arch.id and e.get("fidelity") == "low" and e.get("accuracy") is not None:
                return float(e["accuracy"])
    s = ctx.settings
    budget = s.search_budget(train_samples=ctx.train_samples)
    fut = ctx.evaluator.submit(EvalJob(arch=arch, budget=budget, seed=int(s.seed), fidelity="low"))
    outcome, error = _collect(fut, arch)
    entry = _record(ctx, STAGE, arch, fidelity="low", outcome=outcome, error=error)
    if ctx.on_candidate is not None:
        ctx.on_candidate(entry)
    return entry.get("accuracy")


def final_entries(ctx: Any) -> list[dict[str, Any]]:
    """The refine stage's search-fidelity entry for final training's ranking (none unless it was handed)."""
    done = ctx.run.stage_done(STAGE) or {}
    if not done.get("handed"):
        return []
    return [e for e in ctx.run.journal.candidates(stage=STAGE)
            if e["id"] == done["derived"] and e.get("fidelity") == "low"]

