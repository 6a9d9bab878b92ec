"""The ``refine`` stage of ``staged --refine darts|drnas|rdarts``: differentiable refinement between evolution
and final training (prefilter -> search -> refine -> final -> winner), the pipeline the design card names.

It trains the layer-wise supernet (tinynas.darts) around the evolution's best arch, every block mixing only the
(kernel, expand) choices that the top candidates use (and skip where one has a shallower stage), derives and
repairs the arch with the cost model and journals it (fidelity "supernet", like the ``differentiable`` stage).
When the top candidates agree on every block (a small search often converges on one arch), there is no
disagreement to mix; rather than skip the stage, it then mixes the best arch's own blocks over the kernel x
expand options one step around its choices, plus skip (``neighbour_blocks``), so it always searches
something, and says so in its notes and the report.
The supernet's accuracy is not comparable with the search's, so the derived arch is then trained at the search's
own fidelity ("low") unless the search already did; final training takes it when it ranks among the top
``final_top_k`` by that measure. A killed stage resumes from the supernet checkpoint of its last finished epoch
(``stages/refine``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Callable

from tinynas.darts.layerwise import SKIP, block_position, option_label
from tinynas.errors import CostError, SearchError, SpaceError
from tinynas.space.arch import Arch

log = logging.getLogger(__name__)

#: ``--refine`` values; "none" leaves the stage out of the plan
REFINE_METHODS = ("none", "darts", "drnas", "rdarts")
#: the spaces whose blocks the layer-wise supernet can mix (tinynas.darts.layerwise.relax)
REFINE_SPACES = ("mcunet",)
STAGE = "refine"


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
                          f"works on {', '.join(REFINE_SPACES)}. Use --space mcunet or --refine none")


def block_choices(archs: list[Arch]) -> dict[str, set[tuple[int, int]]]:
    """Per active block (``"s2_b1"``) of any of ``archs``: the (kernel, expand) pairs they use there."""
    from tinynas.space.mcunet import STAGES, _block_names

    used: dict[str, set[tuple[int, int]]] = {}
    for arch in archs:
        for s in range(1, len(STAGES) + 1):
            for b in range(1, int(arch[f"s{s}_depth"]) + 1):
                kernel, expand = _block_names(s, b)
                used.setdefault(f"s{s}_b{b}", set()).add((int(arch[kernel]), int(arch[expand])))
    return used


def mixed_blocks(base: Arch, archs: list[Arch], *, max_blocks: int) -> tuple[list[str], list[tuple[int, int]]]:
    """The blocks of ``base`` to mix and their options: the active blocks where the top candidates disagree
    (most distinct choices first, at most ``max_blocks``: every option is a branch of the supernet, and its
    tracing and training grow with them), over the union of the choices used there. A candidate whose stage is
    shallower than the base's disagrees by skipping the base's later blocks there, so ``SKIP`` joins their
    choices. Blocks where they agree keep the base's choice."""
    used = block_choices(archs)
    own = block_choices([base])
    for name in own:
        stage, index = block_position(name)
        if index > 1 and any(int(a[f"s{stage}_depth"]) < index for a in archs):
            used[name].add(SKIP)
    ranked = sorted((name for name in own if len(used[name]) > 1), key=lambda n: (-len(used[n]), n))
    names = sorted(ranked[:max_blocks])
    return names, _ordered(set().union(*(used[n] for n in names))) if names else []


def _ordered(options: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """(kernel, expand) pairs in order, skip last (as the plan orders them)."""
    return sorted(options, key=lambda o: (o == SKIP, o))


def _neighbours(options: tuple[int, ...], value: int) -> list[int]:
    i = options.index(value)
    return list(options[max(0, i - 1):i + 2])


def neighbour_blocks(base: Arch, *, space: Any, max_blocks: int,
                     latency: Callable[[Arch], float]) -> tuple[list[str], list[tuple[int, int]]]:
    """The blocks of ``base`` to mix when its top candidates agree on every block, and their options.

    Blocks: the active blocks where the kernel x expand choice moves ``latency`` most (the arch with that block
    at its largest option against its smallest; at most ``max_blocks``), since there the hardware-aware loss
    and the accuracy trade the most. Options: each mixed block's own (kernel, expand) and the options one step
    around it (kernel 3/5/7, expand 3/4/6), united over the mixed blocks (the supernet shares one option list);
    the base's choices are always among them, so the plan can express the base; and skip when a mixed block
    comes after its stage's first (leaving it out is the next smaller step; tinynas.darts.layerwise). An arch
    with no active block gives ``([], [])``."""
    from tinynas.space.mcunet import EXPANDS, KERNELS

    own = block_choices([base])
    if not own:
        return [], []
    small, large = (KERNELS[0], EXPANDS[0]), (KERNELS[-1], EXPANDS[-1])

    def with_block(name: str, choice: tuple[int, int]) -> Arch:
        values = dict(base.decisions)
        values[f"{name}_kernel"], values[f"{name}_expand"] = choice
        return space.canonical(Arch.from_dict(space.name, values))

    def spread(name: str) -> float:
        try:
            return float(latency(with_block(name, large))) - float(latency(with_block(name, small)))
        except (CostError, SpaceError) as exc:  # a neighbour the space or cost model refuses: rank it last
            log.info("refine: block %s of %s could not be costed (%s); ranked last", name, base.id, exc)
            return float("-inf")

    ranked = sorted(own, key=lambda n: (-spread(n), n))
    names = sorted(ranked[:max(1, int(max_blocks))])
    options = {(k, e) for n in names for (k0, e0) in own[n]
               for k in _neighbours(KERNELS, k0) for e in _neighbours(EXPANDS, e0)}
    if any(block_position(n)[1] > 1 for n in names):
        options.add(SKIP)
    return names, _ordered(options)


def refine_stage(ctx: Any) -> dict:
    """Refine the evolution's best arch; returns the derived arch, its search-fidelity accuracy and whether
    final training takes it (``handed``), and how the mixed blocks were chosen (``mix``: "disagreement" of the
    top candidates, or "neighbourhood" of the best arch when they agree on every block). Only a search with no
    usable candidate, or a best arch with no active block, skips the supernet with a note (nothing to mix)."""
    from tinynas.darts import relax
    from tinynas.pipeline.differentiable import BATCH_SIZE, run_layerwise_search
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
    # the supernet hyperparameters of --strategy <method> at their defaults (epochs: --search-epochs)
    strategy = make_strategy(method, space=space, seed=int(s.seed), feasible=ctx.check)
    names, options = mixed_blocks(base, archs, max_blocks=strategy.max_mixed_blocks)
    mix, mix_notes = "disagreement", []
    if not names:
        names, options = neighbour_blocks(base, space=space, max_blocks=strategy.max_mixed_blocks,
                                          latency=lambda a: float(ctx.check.cost(a).latency_ms))
        if not names:
            note = f"the best arch {base.id} has no active block: nothing to mix"
            log.warning("refine: %s", note)
            return {"method": method, "base": base.id, "skipped": note, "handed": False}
        mix = "neighbourhood"
        mix_notes.append(
            f"the top {len(top)} candidate(s) agree on every block of {base.id}; mixed instead its block(s) "
            f"{', '.join(names)} (where kernel x expand moves latency most on {ctx.resolved.profile.id}) over "
            f"the options one step around their own: (kernel, expand) {', '.join(map(option_label, options))}")
        log.info("refine: %s", mix_notes[-1])
    plan = relax(space, base, options=options, blocks=names)
    data = ctx.resolved.dataset
    n = min(len(data.y_train), strategy.supernet_samples or s.search_samples or len(data.y_train))
    data = replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n])
    epochs = strategy.supernet_epochs or int(s.search_epochs)
    config = strategy.config(epochs=epochs, batch_size=min(BATCH_SIZE, max(1, n // 2)))
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
            "arch": derived.to_json(), "notes": notes,
            "accuracy": accuracy, "cut_accuracy": cut, "feasible": feasible, "handed": handed,
            "expected_latency_ms": (result.expected_latency_ms or [None])[-1],
            "latency_ms": float(ctx.check.cost(derived).latency_ms), "search": record}


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
    fut = ctx.evaluator.submit(EvalJob(arch=arch, budget=s.search_budget(), seed=int(s.seed), fidelity="low"))
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

