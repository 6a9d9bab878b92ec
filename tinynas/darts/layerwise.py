"""Layer-wise relaxation of the TinyML spaces (FBNet / ProxylessNAS style): which blocks of a base arch
become mixed ops, over which options, and how mixing weights turn back into an arch of the space.

Differentiable search needs a fixed macro skeleton: only per-block choices that leave every tensor shape
between blocks unchanged can be mixed in one supernet. What those are is the space's own knowledge, kept in
its ``LayerwiseRules`` (one module per space, ``RULE_MODULES``):

- ``mcunet`` (``tinynas.darts.layerwise_mcunet``): each active block's kernel x expand (9 options; the block's
  input/output channels and stride are fixed by the stage), plus skip for every block after a stage's first;
- ``dscnn`` (``tinynas.darts.layerwise_dscnn``): the stem's kernel (every kernel the base's stem stride allows;
  SAME padding keeps the map), plus keep-or-skip for every depthwise-separable block after the first.

Width, resolution, channels, strides and the depths beyond the base's change shapes, so they are taken from a
base arch (e.g. the evolution winner). A space with no rules, or a base with nothing to mix, gets a SearchError
naming the decisions that could not be relaxed, rather than a supernet that searches nothing.

Skip is exact: a block that may be skipped keeps the shape (stride 1, same channels), so a network with a
middle block skipped computes what the network with one block fewer and the later blocks moved up computes;
``arch_of`` packs the kept blocks that way (``LayerwiseRules.pack``). Every block shares one option list, so
the supernet's weights are one matrix; an option a block cannot take (the skip of a stage's first block, a
kernel option on a dscnn block) is masked (``LayerwisePlan.mask``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from typing import Any, Protocol, Sequence

import numpy as np

from tinynas.errors import SearchError
from tinynas.space.arch import Arch


#: the option that leaves a block out
SKIP = (0, 0)

#: the spaces that can be relaxed, and the module whose ``RULES`` says how (imported on first use)
RULE_MODULES = {"mcunet": "tinynas.darts.layerwise_mcunet", "dscnn": "tinynas.darts.layerwise_dscnn"}
RELAXABLE_SPACES = tuple(RULE_MODULES)


def option_label(option: Sequence[Any]) -> str:
    """``"skip"``, or the option's values in parentheses (``"(5, 4)"``, ``"(5x5)"``), for notes and reports."""
    return "skip" if tuple(option) == SKIP else f"({', '.join(str(v) for v in option)})"


@dataclass(frozen=True)
class MixedBlock:
    """One mixed op: the decisions it sets and the plan's shared options (one value per decision, in
    ``decisions`` order); ``skippable``: whether its ``SKIP`` option may be taken (not for a stage's first
    block); ``only``: the non-skip options this block may take (None: all of them)."""

    name: str
    decisions: tuple[str, ...]
    options: tuple[tuple[Any, ...], ...]
    skippable: bool = False
    only: frozenset | None = None

    def allows(self, option: Sequence[Any]) -> bool:
        option = tuple(option)
        if option == SKIP:
            return self.skippable and SKIP in self.options
        return option in self.options and (self.only is None or option in self.only)


class LayerwiseRules(Protocol):
    """What a space tells the layer-wise relaxation (one instance per space, ``RULES`` in its module)."""

    def options(self, space: Any, base: Arch) -> tuple[tuple[Any, ...], ...]:
        """Every block option of the space, the smallest first and ``SKIP`` last (the repair's order)."""

    def blocks(self, space: Any, base: Arch, options: tuple[tuple[Any, ...], ...]) -> list[MixedBlock]:
        """Every block of ``base`` that can be mixed, over ``options``."""

    def value(self, arch: Arch, block: MixedBlock) -> tuple[Any, ...]:
        """The option ``arch`` takes at ``block`` (``SKIP`` where its network has no such block)."""

    def pack(self, values: dict[str, Any], skipped: set[str]) -> None:
        """Drop the ``skipped`` blocks from the decision values (later blocks move up)."""

    def extremes(self, block: MixedBlock) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """The block's cheapest and dearest options, for ranking blocks by what they move."""

    def neighbours(self, block: MixedBlock, option: tuple[Any, ...]) -> set[tuple[Any, ...]]:
        """The options one step around ``option`` (itself included)."""

    def branches(self, space: Any, arch: Arch) -> int:
        """How many trained branches the supernet around ``arch`` has (tracing and training time grow
        with them)."""

    def build(self, plan: "LayerwisePlan", *, input_shape: tuple[int, ...], num_classes: int, seed: int) -> Any:
        """The keras supernet of ``plan``: ``model(x, mixing, training=...)``."""


def rules_for(space: Any) -> LayerwiseRules | None:
    """The relaxation rules of ``space`` (or a space name); None where it has none."""
    name = getattr(space, "name", space)
    module = RULE_MODULES.get(str(name))
    return None if module is None else importlib.import_module(module).RULES


@dataclass(frozen=True)
class LayerwisePlan:
    """The mixed blocks of a supernet around ``base``; every other decision stays as in ``base``."""

    space: Any
    base: Arch
    blocks: tuple[MixedBlock, ...]

    @property
    def rules(self) -> LayerwiseRules:
        return rules_for(self.space)

    @property
    def shape(self) -> tuple[int, int]:
        """``(blocks, options)`` of the mixing weights (every block has the same option list)."""
        return len(self.blocks), len(self.blocks[0].options)

    @property
    def mask(self) -> np.ndarray:
        """1 where block ``i`` may take option ``o``, else 0 (e.g. the skip of a block that cannot be left out);
        the search multiplies its mixing weights by it and renormalises, so a masked option never gets weight."""
        return np.array([[1.0 if block.allows(o) else 0.0 for o in block.options] for block in self.blocks])

    def smallest(self, i: int) -> int:
        """The first option (the cheapest, skip aside) that block ``i`` may take."""
        block = self.blocks[i]
        return next(o for o, option in enumerate(block.options) if option != SKIP and block.allows(option))

    def choice(self, weights: Any) -> list[int]:
        """Each block's most weighted option that it may take."""
        weights = self._check(weights)
        return [int(np.argmax(np.where(m > 0, row, -np.inf))) for row, m in zip(weights, self.mask)]

    def derive(self, weights: Any) -> Arch:
        """The arch whose every mixed block takes its most weighted option; a valid arch of the space."""
        return self.arch_of(self.choice(weights))

    def arch_of(self, choice: list[int]) -> Arch:
        """The arch with block ``i`` set to option ``choice[i]``, skipped blocks packed out (validated by the
        space)."""
        values = dict(self.base.decisions)
        skipped = set()
        for block, o in zip(self.blocks, choice):
            option = tuple(block.options[int(o)])
            if option == SKIP and not block.skippable:
                raise SearchError(f"block {block.name} is its stage's first (stride and channels change "
                                  f"there), so it cannot be skipped")
            if not block.allows(option):
                raise SearchError(f"block {block.name} cannot take option {option_label(option)}")
            if option == SKIP:
                skipped.add(block.name)
            else:
                values.update(zip(block.decisions, option))
        if skipped:
            self.rules.pack(values, skipped)
        arch = self.space.canonical(Arch.from_dict(self.space.name, values))
        self.space.validate(arch)
        return arch

    def one_hot(self, arch: Arch) -> np.ndarray:
        """The mixing weights that put all mass on ``arch``'s options. ``arch`` must share the base's skeleton,
        but may be shallower where its missing blocks can be skipped: they are read as skips of the last
        blocks."""
        out = np.zeros(self.shape)
        for i, block in enumerate(self.blocks):
            value = self.rules.value(arch, block)
            if not block.allows(value):
                raise SearchError(f"arch {arch.id} sets block {block.name} to {option_label(value)}, not an option "
                                  f"of that mixed block")
            out[i, block.options.index(value)] = 1.0
        if self.arch_of([int(np.argmax(row)) for row in out]) != arch:
            mixed = {d for b in self.blocks for d in b.decisions}
            changed = [n for n, v in self.base.decisions if n not in mixed and arch[n] != v]
            raise SearchError(f"arch {arch.id} is not an arch of the supernet around {self.base.id}: it changes "
                              f"{', '.join(changed) or 'a block or depth the supernet does not mix'}; the supernet "
                              f"only mixes blocks {', '.join(b.name for b in self.blocks)}")
        return out

    def _check(self, weights: Any) -> np.ndarray:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != self.shape:
            raise SearchError(f"mixing weights must be {self.shape[0]}x{self.shape[1]} (blocks x options), got "
                              f"{weights.shape}")
        return weights


def relax(space: Any, base: Arch, *, options: Sequence[Sequence[Any]] | None = None,
          blocks: Sequence[str] | None = None) -> LayerwisePlan:
    """The layer-wise supernet plan of ``space`` around ``base`` (validated first).

    ``options`` (None: every option of the space, and ``SKIP`` when a mixed block can be left out) restricts
    every mixed block to these options and ``SKIP``, e.g. the ones the evolution's top candidates use
    (``staged --refine``); fewer branches train faster and the search stays where the evolution found good
    archs. ``base``'s own choices must be among them, so the plan can express the base; SearchError otherwise.
    ``blocks`` (None: every block that can be mixed) names the blocks to mix (``"s2_b1"``); the others keep the
    base's choices."""
    space.validate(base)
    rules = rules_for(space)
    mixed: list[MixedBlock] = []
    if rules is not None:
        every = rules.options(space, base)
        shared = every
        if options is not None:
            wanted = {_option(o) for o in options}
            unknown = sorted(map(option_label, wanted - set(every)))
            if unknown:
                raise SearchError(f"{space.name} has no block option {', '.join(unknown)}; options are "
                                  f"{', '.join(map(option_label, every))}")
            shared = tuple(o for o in every if o in wanted)  # in the space's order: smallest first, skip last
        mixed = rules.blocks(space, base, shared)
        if blocks is not None:
            unknown_blocks = sorted(set(blocks) - {b.name for b in mixed})
            if unknown_blocks:
                raise SearchError(f"blocks {unknown_blocks} are not blocks of arch {base.id} that can be mixed; "
                                  f"those are: {[b.name for b in mixed]}")
            mixed = [b for b in mixed if b.name in set(blocks)]
        if mixed and SKIP in shared and not any(b.skippable for b in mixed):
            if options is not None:
                raise SearchError(f"skip is among the options, but none of the mixed blocks "
                                  f"{[b.name for b in mixed]} can be left out (only a stage's blocks after its "
                                  f"first can); drop it from the options")
            mixed = [replace(b, options=b.options[:-1]) for b in mixed]
        for block in mixed:
            own = rules.value(base, block)
            if not block.allows(own):
                raise SearchError(f"base arch {base.id} sets {', '.join(block.decisions) or block.name} to "
                                  f"{option_label(own)}, not among the mixed options "
                                  f"{', '.join(map(option_label, block.options))}; include the base's choices")
    if not mixed:
        frozen = ", ".join(d.name for d in space.decisions() if len(d.options) > 1)
        raise SearchError(f"space {space.name!r} has nothing to mix around arch {base.id}: no per-block decision "
                          f"keeps the tensor shapes between blocks fixed, and {frozen or 'no decision'} change them "
                          f"(could not be relaxed). Use an evolutionary strategy for this space, or a base with "
                          f"blocks that can be mixed")
    return LayerwisePlan(space=space, base=base, blocks=tuple(mixed))


def _option(option: Sequence[Any]) -> tuple[Any, ...]:
    """An option as the rules spell it (JSON gives lists, and ints for mcunet's (kernel, expand))."""
    return tuple(int(v) if isinstance(v, (int, np.integer)) else v for v in option)


def block_position(name: str) -> tuple[int, int]:
    """``"s2_b3"`` -> ``(2, 3)``."""
    stage, block = name.split("_")
    return int(stage[1:]), int(block[1:])


def layerwise_cost_tables(plan: LayerwisePlan, profile: Any) -> Any:
    """Per mixed block and option: the latency it adds over the base (ms, may be negative) and the arena (bytes)
    of the base with that block set to that option, on ``profile``; built once (blocks x options cost-model calls).

    The cost model's latency is a sum over operators, and a block's option changes only that block's operators,
    so ``E[LAT] = base + sum p * delta`` is exact for one-hot weights (tests/darts/test_layerwise.py checks it)."""
    from tinynas.cost import estimate
    from tinynas.darts.hardware import CostTables

    base_choice = [int(np.argmax(row)) for row in plan.one_hot(plan.base)]
    base = estimate(plan.space.graph(plan.base), profile=profile)
    latency, arena = np.zeros(plan.shape), np.full(plan.shape, float(base.arena_bytes))
    mask = plan.mask
    for i, block in enumerate(plan.blocks):
        for o in range(len(block.options)):
            if not mask[i, o]:  # a skip the block cannot take: never weighted
                continue
            choice = list(base_choice)
            choice[i] = o
            cost = estimate(plan.space.graph(plan.arch_of(choice)), profile=profile)
            latency[i, o] = float(cost.latency_ms) - float(base.latency_ms)
            arena[i, o] = float(cost.arena_bytes)
    return CostTables(base_latency_ms=float(base.latency_ms), latency_ms=latency, arena_bytes=arena,
                      latency_target_ms=profile.latency_target_ms, arena_budget_bytes=int(profile.sram_budget_bytes))
