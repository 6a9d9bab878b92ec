"""Layer-wise relaxation of the TinyML spaces (FBNet / ProxylessNAS style): which blocks of a base arch
become mixed ops, over which options, and how mixing weights turn back into an arch of the space.

Differentiable search needs a fixed macro skeleton: only per-block choices that leave every tensor shape
between blocks unchanged can be mixed in one supernet. In ``mcunet`` those are each active block's kernel x
expand (9 options; the block's input/output channels and stride are fixed by the stage), plus skip for every
block after a stage's first. Width, resolution, head and stage depths beyond the base's change shapes, so they
are taken from a base arch (e.g. the evolution winner). A space whose base has no such block (``dscnn`` has no
per-block decisions at all) gets a SearchError naming the decisions that could not be relaxed, rather than a
supernet that searches nothing.

Why skip is exact here although ``mcunet`` can drop a block only by lowering its stage's depth: blocks 2-4 of a
stage keep the shape (stride 1, same channels, residual), so a stage whose middle block is skipped computes
what the stage with one block fewer and the later blocks moved up computes. ``arch_of`` packs the kept blocks
that way. A stage's first block (stride, new channel count) cannot be skipped; its skip option is masked
(``LayerwisePlan.mask``: every block shares one option list, so the supernet's weights are one matrix).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from tinynas.errors import SearchError
from tinynas.space.arch import Arch


#: the option that leaves a block out (in place of a (kernel, expand) pair)
SKIP = (0, 0)


def option_label(option: Sequence[int]) -> str:
    """``"skip"`` or ``"(k, e)"``, for notes and reports."""
    return "skip" if tuple(option) == SKIP else f"({int(option[0])}, {int(option[1])})"


@dataclass(frozen=True)
class MixedBlock:
    """One mixed op: the decisions it sets and its options (one value per decision, in ``decisions`` order);
    ``skippable``: whether its ``SKIP`` option may be taken (not for a stage's first block)."""

    name: str
    decisions: tuple[str, ...]
    options: tuple[tuple[Any, ...], ...]
    skippable: bool = False


@dataclass(frozen=True)
class LayerwisePlan:
    """The mixed blocks of a supernet around ``base``; every other decision stays as in ``base``."""

    space: Any
    base: Arch
    blocks: tuple[MixedBlock, ...]

    @property
    def shape(self) -> tuple[int, int]:
        """``(blocks, options)`` of the mixing weights (every block has the same option list)."""
        return len(self.blocks), len(self.blocks[0].options)

    @property
    def mask(self) -> np.ndarray:
        """1 where block ``i`` may take option ``o``, 0 for the skip of a block that cannot be left out; the
        search multiplies its mixing weights by it and renormalises, so a masked option never gets weight."""
        out = np.ones(self.shape)
        for i, block in enumerate(self.blocks):
            if not block.skippable and SKIP in block.options:
                out[i, block.options.index(SKIP)] = 0.0
        return out

    def choice(self, weights: Any) -> list[int]:
        """Each block's most weighted option that it may take."""
        weights = self._check(weights)
        return [int(np.argmax(np.where(m > 0, row, -np.inf))) for row, m in zip(weights, self.mask)]

    def derive(self, weights: Any) -> Arch:
        """The arch whose every mixed block takes its most weighted option; a valid arch of the space."""
        return self.arch_of(self.choice(weights))

    def arch_of(self, choice: list[int]) -> Arch:
        """The arch with block ``i`` set to option ``choice[i]``, skipped blocks packed out of their stage
        (validated by the space)."""
        values = dict(self.base.decisions)
        skipped = set()
        for block, o in zip(self.blocks, choice):
            option = tuple(block.options[int(o)])
            if option == SKIP:
                if not block.skippable:
                    raise SearchError(f"block {block.name} is its stage's first (stride and channels change "
                                      f"there), so it cannot be skipped")
                skipped.add(block.name)
            else:
                values.update(zip(block.decisions, option))
        if skipped:
            _pack(values, skipped)
        arch = self.space.canonical(Arch.from_dict(self.space.name, values))
        self.space.validate(arch)
        return arch

    def one_hot(self, arch: Arch) -> np.ndarray:
        """The mixing weights that put all mass on ``arch``'s options. ``arch`` must share the base's skeleton,
        but a stage may be shallower where its missing blocks can be skipped: they are read as skips of the
        stage's last blocks."""
        from tinynas.space.mcunet import _block_names

        out = np.zeros(self.shape)
        for i, block in enumerate(self.blocks):
            stage, index = block_position(block.name)
            if index > int(arch[f"s{stage}_depth"]):
                value = SKIP
            else:
                value = tuple(arch[d] for d in _block_names(stage, index))
            if value not in block.options or (value == SKIP and not block.skippable):
                raise SearchError(f"arch {arch.id} sets block {block.name} to {option_label(value)}, not an option "
                                  f"of that mixed block")
            out[i, block.options.index(value)] = 1.0
        if self.arch_of([int(np.argmax(row)) for row in out]) != arch:
            changed = [n for n, v in self.base.decisions
                       if not n.endswith(("_kernel", "_expand", "_depth")) and arch[n] != v]
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


def relax(space: Any, base: Arch, *, options: Sequence[tuple[int, int]] | None = None,
          blocks: Sequence[str] | None = None) -> LayerwisePlan:
    """The layer-wise supernet plan of ``space`` around ``base`` (validated first).

    ``options`` (None: every kernel x expand, and ``SKIP`` when a mixed block can be left out) restricts every
    mixed block to these (kernel, expand) pairs and ``SKIP``, e.g. the ones the evolution's top candidates use
    (``staged --refine``); fewer branches train faster and the search stays where the evolution found good
    archs. ``base``'s own choices must be among them, so the plan can express the base; SearchError otherwise.
    ``blocks`` (None: every active block) names the blocks to mix (``"s2_b1"``); the others keep the base's
    choices."""
    space.validate(base)
    if space.name == "mcunet":
        mixed = _mcunet_blocks(base, options)
        if blocks is not None:
            unknown = sorted(set(blocks) - {b.name for b in mixed})
            if unknown:
                raise SearchError(f"blocks {unknown} are not active blocks of arch {base.id}; active: "
                                  f"{[b.name for b in mixed]}")
            mixed = [b for b in mixed if b.name in set(blocks)]
        if mixed and SKIP in mixed[0].options and not any(b.skippable for b in mixed):
            if options is not None:
                raise SearchError(f"skip is among the options, but none of the mixed blocks "
                                  f"{[b.name for b in mixed]} can be left out (only a stage's blocks after its "
                                  f"first can); drop it from the options")
            mixed = [replace(b, options=b.options[:-1]) for b in mixed]
        for block in mixed:
            if tuple(int(base[d]) for d in block.decisions) not in block.options:
                raise SearchError(f"base arch {base.id} sets {', '.join(block.decisions)} to "
                                  f"{tuple(base[d] for d in block.decisions)}, not among the mixed options "
                                  f"{list(block.options)}; include the base's choices")
        blocks = mixed
    else:
        blocks = []
    if not blocks:
        frozen = ", ".join(d.name for d in space.decisions() if len(d.options) > 1)
        raise SearchError(f"space {space.name!r} has nothing to mix around arch {base.id}: no per-block decision "
                          f"keeps the tensor shapes between blocks fixed, and {frozen or 'no decision'} change them "
                          f"(could not be relaxed). Use an evolutionary strategy for this space, or a base with "
                          f"active blocks")
    return LayerwisePlan(space=space, base=base, blocks=tuple(blocks))


def _mcunet_blocks(base: Arch, restrict: Sequence[tuple[int, int]] | None = None) -> list[MixedBlock]:
    from tinynas.space.mcunet import EXPANDS, KERNELS, STAGES, _block_names

    options = tuple(itertools.product(KERNELS, EXPANDS)) + (SKIP,)
    if restrict is not None:
        unknown = sorted({(int(k), int(e)) for k, e in restrict} - set(options))
        if unknown:
            raise SearchError(f"mcunet has no block option (kernel, expand) {unknown}; options are "
                              f"{list(options[:-1])} and skip {SKIP}")
        # sorted like the full list, so option 0 stays the smallest (the repair's last resort) and skip is last
        options = tuple(o for o in options if o in {(int(k), int(e)) for k, e in restrict})
    blocks = []
    for s in range(1, len(STAGES) + 1):
        for b in range(1, int(base[f"s{s}_depth"]) + 1):
            kernel, expand = _block_names(s, b)
            blocks.append(MixedBlock(name=f"s{s}_b{b}", decisions=(kernel, expand), options=options,
                                     skippable=b > 1))
    return blocks


def block_position(name: str) -> tuple[int, int]:
    """``"s2_b3"`` -> ``(2, 3)``."""
    stage, block = name.split("_")
    return int(stage[1:]), int(block[1:])


def _pack(values: dict[str, Any], skipped: set[str]) -> None:
    """Drop the ``skipped`` blocks from their stages in ``values``: the stage's depth shrinks and its later
    blocks move up (exact, as blocks after a stage's first keep the shape; module docstring)."""
    from tinynas.space.mcunet import _block_names

    for stage in sorted({block_position(n)[0] for n in skipped}):
        depth = int(values[f"s{stage}_depth"])
        kept = [tuple(values[d] for d in _block_names(stage, b)) for b in range(1, depth + 1)
                if f"s{stage}_b{b}" not in skipped]
        values[f"s{stage}_depth"] = len(kept)
        for b, option in enumerate(kept, start=1):
            values.update(zip(_block_names(stage, b), option))


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
