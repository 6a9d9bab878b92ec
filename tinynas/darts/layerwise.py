"""Layer-wise relaxation of the TinyML spaces (FBNet / ProxylessNAS style): which blocks of a base arch
become mixed ops, over which options, and how mixing weights turn back into an arch of the space.

Differentiable search needs a fixed macro skeleton: only per-block choices that leave every tensor shape
between blocks unchanged can be mixed in one supernet. In ``mcunet`` those are each active block's kernel x
expand (9 options; the block's input/output channels and stride are fixed by the stage). Width, resolution,
head and stage depths change shapes, so they are taken from a base arch (e.g. the evolution winner). A
space whose base has no such block (``dscnn`` has no per-block decisions at all) gets a SearchError naming
the decisions that could not be relaxed, rather than a supernet that searches nothing.

Skip (dropping a block) is not offered: in ``mcunet`` a block can only go by lowering its stage's depth,
which also drops every later block of the stage; that is left to the discrete search.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from tinynas.errors import SearchError
from tinynas.space.arch import Arch


@dataclass(frozen=True)
class MixedBlock:
    """One mixed op: the decisions it sets and its options (one value per decision, in ``decisions`` order)."""

    name: str
    decisions: tuple[str, ...]
    options: tuple[tuple[Any, ...], ...]


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

    def derive(self, weights: Any) -> Arch:
        """The arch whose every mixed block takes its most weighted option; a valid arch of the space."""
        weights = self._check(weights)
        return self.arch_of([int(np.argmax(row)) for row in weights])

    def arch_of(self, choice: list[int]) -> Arch:
        """The arch with block ``i`` set to option ``choice[i]`` (validated by the space)."""
        values = dict(self.base.decisions)
        for block, o in zip(self.blocks, choice):
            values.update(zip(block.decisions, block.options[int(o)]))
        arch = self.space.canonical(Arch.from_dict(self.space.name, values))
        self.space.validate(arch)
        return arch

    def one_hot(self, arch: Arch) -> np.ndarray:
        """The mixing weights that put all mass on ``arch``'s options (which must share the base's skeleton)."""
        out = np.zeros(self.shape)
        for i, block in enumerate(self.blocks):
            value = tuple(arch[d] for d in block.decisions)
            if value not in block.options:
                raise SearchError(f"arch {arch.id} sets {', '.join(block.decisions)} to {value}, not an option of "
                                  f"mixed block {block.name}")
            out[i, block.options.index(value)] = 1.0
        fixed = {d for b in self.blocks for d in b.decisions}
        for name, value in self.base.decisions:
            if name not in fixed and arch[name] != value:
                raise SearchError(f"arch {arch.id} changes {name} ({arch[name]!r}, base {value!r}); the supernet "
                                  f"only mixes {', '.join(sorted(fixed))}")
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

    ``options`` (None: every kernel x expand) restricts every mixed block to these (kernel, expand) pairs,
    e.g. the ones the evolution's top candidates use (``staged --refine``); fewer branches train faster and the
    search stays where the evolution found good archs. ``base``'s own choices must be among them, so the plan
    can express the base; SearchError otherwise. ``blocks`` (None: every active block) names the blocks to mix
    (``"s2_b1"``); the others keep the base's choices."""
    space.validate(base)
    if space.name == "mcunet":
        mixed = _mcunet_blocks(base, options)
        if blocks is not None:
            unknown = sorted(set(blocks) - {b.name for b in mixed})
            if unknown:
                raise SearchError(f"blocks {unknown} are not active blocks of arch {base.id}; active: "
                                  f"{[b.name for b in mixed]}")
            mixed = [b for b in mixed if b.name in set(blocks)]
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

    options = tuple(itertools.product(KERNELS, EXPANDS))
    if restrict is not None:
        unknown = sorted({(int(k), int(e)) for k, e in restrict} - set(options))
        if unknown:
            raise SearchError(f"mcunet has no block option (kernel, expand) {unknown}; options are {list(options)}")
        # sorted like the full list, so option 0 stays the smallest (the repair's last resort)
        options = tuple(o for o in options if o in {(int(k), int(e)) for k, e in restrict})
    blocks = []
    for s in range(1, len(STAGES) + 1):
        for b in range(1, int(base[f"s{s}_depth"]) + 1):
            kernel, expand = _block_names(s, b)
            blocks.append(MixedBlock(name=f"s{s}_b{b}", decisions=(kernel, expand), options=options))
    return blocks


def layerwise_cost_tables(plan: LayerwisePlan, profile: Any) -> Any:
    """Per mixed block and option: the latency it adds over the base (ms, may be negative) and the arena (bytes)
    of the base with that block set to that option, on ``profile``; built once (blocks x options cost-model calls).

    The cost model's latency is a sum over operators, and a block's option changes only that block's operators,
    so ``E[LAT] = base + sum p * delta`` is exact for one-hot weights (tests/darts/test_layerwise.py checks it)."""
    from tinynas.cost import estimate
    from tinynas.darts.hardware import CostTables

    base_choice = [int(np.argmax(row)) for row in plan.one_hot(plan.base)]
    base = estimate(plan.space.graph(plan.base), profile=profile)
    latency, arena = np.zeros(plan.shape), np.zeros(plan.shape)
    for i, block in enumerate(plan.blocks):
        for o in range(len(block.options)):
            choice = list(base_choice)
            choice[i] = o
            cost = estimate(plan.space.graph(plan.arch_of(choice)), profile=profile)
            latency[i, o] = float(cost.latency_ms) - float(base.latency_ms)
            arena[i, o] = float(cost.arena_bytes)
    return CostTables(base_latency_ms=float(base.latency_ms), latency_ms=latency, arena_bytes=arena,
                      latency_target_ms=profile.latency_target_ms, arena_budget_bytes=int(profile.sram_budget_bytes))
