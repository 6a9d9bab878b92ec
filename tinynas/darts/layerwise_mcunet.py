"""How ``mcunet`` is relaxed layer-wise (``tinynas.darts.layerwise``): every active block mixes its kernel x
expand (9 options), plus skip for every block after its stage's first.

Why skip is exact although ``mcunet`` can drop a block only by lowering its stage's depth: blocks 2-4 of a stage
keep the shape (stride 1, same channels, residual), so a stage whose middle block is skipped computes what the
stage with one block fewer and the later blocks moved up computes; ``pack`` moves them up. A stage's first block
(stride, new channel count) cannot be skipped.
"""

from __future__ import annotations

import itertools
from typing import Any

from tinynas.darts.layerwise import SKIP, MixedBlock, block_position
from tinynas.space.arch import Arch
from tinynas.space.mcunet import EXPANDS, KERNELS, STAGES, _block_names

#: branches of the supernet per block with every option (for the strategies' block cap)
BRANCHES_PER_BLOCK = len(KERNELS) * len(EXPANDS)


class McuNetRules:
    """``LayerwiseRules`` of ``mcunet``."""

    def options(self, space: Any, base: Arch) -> tuple[tuple[Any, ...], ...]:
        # (3, 3) first: the smallest option, the repair's last resort
        return tuple(itertools.product(KERNELS, EXPANDS)) + (SKIP,)

    def blocks(self, space: Any, base: Arch, options: tuple[tuple[Any, ...], ...]) -> list[MixedBlock]:
        return [MixedBlock(name=f"s{s}_b{b}", decisions=_block_names(s, b), options=options, skippable=b > 1)
                for s in range(1, len(STAGES) + 1) for b in range(1, int(base[f"s{s}_depth"]) + 1)]

    def value(self, arch: Arch, block: MixedBlock) -> tuple[Any, ...]:
        stage, index = block_position(block.name)
        if index > int(arch[f"s{stage}_depth"]):
            return SKIP
        return tuple(int(arch[d]) for d in _block_names(stage, index))

    def pack(self, values: dict[str, Any], skipped: set[str]) -> None:
        for stage in sorted({block_position(n)[0] for n in skipped}):
            depth = int(values[f"s{stage}_depth"])
            kept = [tuple(values[d] for d in _block_names(stage, b)) for b in range(1, depth + 1)
                    if f"s{stage}_b{b}" not in skipped]
            values[f"s{stage}_depth"] = len(kept)
            for b, option in enumerate(kept, start=1):
                values.update(zip(_block_names(stage, b), option))

    def extremes(self, block: MixedBlock) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        return (KERNELS[0], EXPANDS[0]), (KERNELS[-1], EXPANDS[-1])

    def neighbours(self, block: MixedBlock, option: tuple[Any, ...]) -> set[tuple[Any, ...]]:
        if option == SKIP:
            return {SKIP}
        kernel, expand = option
        return {(k, e) for k in _around(KERNELS, kernel) for e in _around(EXPANDS, expand)}

    def branches(self, space: Any, arch: Arch) -> int:
        return BRANCHES_PER_BLOCK * sum(int(arch[f"s{s}_depth"]) for s in range(1, len(STAGES) + 1))

    def build(self, plan: Any, *, input_shape: tuple[int, ...], num_classes: int, seed: int) -> Any:
        from tinynas.darts.layerwise_net import build_mcunet_supernet

        return build_mcunet_supernet(plan, input_shape=input_shape, num_classes=num_classes, seed=seed)


def _around(options: tuple[int, ...], value: int) -> list[int]:
    i = options.index(value)
    return list(options[max(0, i - 1):i + 2])


RULES = McuNetRules()
