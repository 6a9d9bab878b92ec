"""Which supernet weights an mcunet arch uses: its Graph's ops in order, each named by a weight slot.

The plan is read off the space's own Graph for the arch (not re-derived from
the decisions), so the supernet computes exactly the network the cost model
judges and the Keras builder builds, op for op, shape for shape. Framework-free.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinynas.errors import SupernetError
from tinynas.space.arch import Arch
from tinynas.space.base import SearchSpace
from tinynas.space.graph import Graph
from tinynas.space.mcunet import DEPTHS, STAGES


@dataclass(frozen=True)
class Step:
    """One op of the subnet: ``slot`` names its weights in the supernet ('' for weightless ops).

    ``layer`` is the Keras layer name the builder gives that op (its output tensor).
    """

    kind: str
    slot: str
    layer: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    activation: str | None
    block_start: bool = False  # the block's input is kept for a residual ADD


@dataclass(frozen=True)
class SubnetPlan:
    arch: Arch
    resolution: int
    steps: tuple[Step, ...]


def _slots(arch: Arch) -> list[tuple[str, bool]]:
    """Weight slots of the arch's weighted ops in Graph order, with 'starts a block'."""
    slots = [("stem", False), ("first_dw", False), ("first_pw", False)]
    for s in range(1, len(STAGES) + 1):
        for b in range(1, int(arch[f"s{s}_depth"]) + 1):
            slots += [(f"s{s}b{b}_expand", True), (f"s{s}b{b}_dw", False), (f"s{s}b{b}_project", False)]
    if arch["head"]:
        slots.append(("head", False))
    slots.append(("classifier_head" if arch["head"] else "classifier", False))
    return slots


def subnet_plan(space: SearchSpace, arch: Arch, *, graph: Graph | None = None) -> SubnetPlan:
    """The plan of ``arch``; raises SupernetError for a space or input the supernet does not cover."""
    if space.name != "mcunet":
        raise SupernetError(f"once-for-all supernets cover the 'mcunet' space only, not {space.name!r}; "
                            "use --space mcunet or another strategy")
    shape = tuple(space.input_shape)
    if len(shape) != 3 or shape[0] != shape[1]:
        raise SupernetError(f"once-for-all supernets need square image inputs (H, H, C); input shape {shape} "
                            "is not one; use another strategy for sequences and spectrograms")
    space.validate(arch)
    graph = graph if graph is not None else space.graph(arch)
    slots = iter(_slots(arch))
    steps: list[Step] = []
    for op in graph.ops:
        in_shape = graph.tensors[op.inputs[0]].shape
        out_shape = graph.tensors[op.outputs[0]].shape
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            slot, block_start = next(slots)
            kernel = int(op.attrs.get("kernel", (1, 1))[0])
            stride = int(op.attrs.get("stride", (1, 1))[0])
            steps.append(Step(op.kind, slot, op.outputs[0], int(in_shape[-1]), int(out_shape[-1]), kernel, stride,
                              op.attrs.get("activation"), block_start))
        elif op.kind in ("ADD", "MEAN", "SOFTMAX"):
            steps.append(Step(op.kind, "", op.outputs[0], int(in_shape[-1]), int(out_shape[-1]), 1, 1, None))
        else:  # pragma: no cover - the mcunet space writes no other op for square images
            raise SupernetError(f"mcunet arch {arch.id}: op {op.kind} has no supernet counterpart")
    return SubnetPlan(arch=arch, resolution=int(arch["resolution"]), steps=tuple(steps))


def stride_pattern(plan: SubnetPlan) -> tuple[str, ...]:
    """The weight slots that downsample in ``plan``. A left-out stage (depth 0) or another input
    resolution moves the space's stride-2 positions (``stride_schedule``), so shared weights then
    see features at another scale; progressive shrinking keeps most subnets on the full network's."""
    return tuple(step.slot for step in plan.steps if step.stride == 2)


def largest_archs(space: SearchSpace, *, max_width: float) -> list[Arch]:
    """The biggest networks at ``max_width`` (with and without head): together they size every slot."""
    values = {d.name: d.options[-1] for d in space.decisions()}
    values["width"] = max_width
    values["resolution"] = max(space.decisions()[1].options)
    for s in range(1, len(STAGES) + 1):
        values[f"s{s}_depth"] = max(DEPTHS)
        for b in range(1, max(DEPTHS) + 1):
            values[f"s{s}_b{b}_kernel"] = 7
            values[f"s{s}_b{b}_expand"] = 6
    out = []
    for head in (True, False):
        values["head"] = head
        out.append(Arch.from_dict(space.name, {d.name: values[d.name] for d in space.decisions()}))
    return out
