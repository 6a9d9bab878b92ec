"""Which supernet weights an mcunet arch uses: its Graph's ops in order, each named by a weight slot.

The plan is read off the space's own Graph for the arch (not re-derived from
the decisions), so the supernet computes exactly the network the cost model
judges and the Keras builder builds, op for op, shape for shape. Framework-free.

Predecessor inputs: the reader of a stage's output (the next stage's first block,
else the head conv or classifier) reads, after a left-out stage, an earlier stage's
features, and fewer of them. With ``predecessor_inputs`` it then uses slots of its
own per actual predecessor (``input_slot``), not the ones the full network trains on
another stage's features (benchmarks/ofa/README.md (f)). The Graph is the same either
way; only which weights fill it differs.
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


PREDECESSOR_TAG = "_from_s"


def input_slot(slot: str, predecessor: int) -> str:
    """The slot ``slot`` uses when its input comes from stage ``predecessor`` (0: the first block)
    instead of the stage before it, a left-out stage in between."""
    return f"{slot}{PREDECESSOR_TAG}{predecessor}"


def shared_slot(slot: str) -> str:
    """The full network's slot behind ``slot`` (itself unless it is an ``input_slot``)."""
    return slot.split(PREDECESSOR_TAG)[0]


def _slots(arch: Arch, *, predecessor_inputs: bool) -> list[tuple[str, bool]]:
    """Weight slots of the arch's weighted ops in Graph order, with 'starts a block'."""
    slots = [("stem", False), ("first_dw", False), ("first_pw", False)]
    previous = 0  # the last stage present so far (0: the first block)

    def reader(slot: str, stage: int) -> str:  # the op reading the output of the stage before ``stage``
        return input_slot(slot, previous) if predecessor_inputs and previous != stage - 1 else slot

    for s in range(1, len(STAGES) + 1):
        depth = int(arch[f"s{s}_depth"])
        for b in range(1, depth + 1):
            block = [(f"s{s}b{b}_expand", True), (f"s{s}b{b}_dw", False), (f"s{s}b{b}_project", False)]
            # the whole first block: its expansion count follows the input's channel count too
            slots += [(reader(slot, s), start) for slot, start in block] if b == 1 else block
        previous = s if depth else previous
    after = len(STAGES) + 1
    if arch["head"]:
        slots.append((reader("head", after), False))
    slots.append(("classifier_head" if arch["head"] else reader("classifier", after), False))
    return slots


def subnet_plan(space: SearchSpace, arch: Arch, *, graph: Graph | None = None,
                predecessor_inputs: bool = False) -> SubnetPlan:
    """The plan of ``arch`` (with ``predecessor_inputs``, the reader of a left-out stage's successor
    uses its ``input_slot``); raises SupernetError for a space or input the supernet does not cover."""
    if space.name != "mcunet":
        raise SupernetError(f"once-for-all supernets cover the 'mcunet' space only, not {space.name!r}; "
                            "use --space mcunet or another strategy")
    shape = tuple(space.input_shape)
    if len(shape) != 3 or shape[0] != shape[1]:
        raise SupernetError(f"once-for-all supernets need square image inputs (H, H, C); input shape {shape} "
                            "is not one; use another strategy for sequences and spectrograms")
    space.validate(arch)
    graph = graph if graph is not None else space.graph(arch)
    slots = iter(_slots(arch, predecessor_inputs=predecessor_inputs))
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
    see features at another scale; progressive shrinking keeps most subnets on the full network's.
    Named by the shared slots: a position in the network, whichever predecessor's weights fill it."""
    return tuple(shared_slot(step.slot) for step in plan.steps if step.stride == 2)


def reader_gaps() -> list[tuple[int, int]]:
    """Every (reader, predecessor) pair that has an ``input_slot``: the reader is stage 2..5's first block
    or, as stage 6, the head (or classifier); the predecessor the last stage present before it (0: the
    first block)."""
    last = len(STAGES) + 1
    return [(reader, predecessor) for reader in range(2, last + 1) for predecessor in range(0, reader - 1)]


def uses_gap(plan: SubnetPlan, reader: int, predecessor: int) -> bool:
    """Whether ``plan`` (with predecessor inputs) uses the ``input_slot`` of that (reader, predecessor) pair."""
    slots = {step.slot for step in plan.steps}
    if reader <= len(STAGES):
        return input_slot(f"s{reader}b1_expand", predecessor) in slots
    return bool({input_slot("head", predecessor), input_slot("classifier", predecessor)} & slots)


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


def skip_archs(space: SearchSpace, *, max_width: float) -> list[Arch]:
    """The largest networks with stages ``p+1 .. s-1`` left out, for every reader ``s`` (a stage, or the
    head and classifier after the last) and earlier predecessor ``p``: together they size every
    ``input_slot``."""
    out = []
    for arch in largest_archs(space, max_width=max_width):
        for reader in range(2, len(STAGES) + 2):
            for predecessor in range(0, reader - 1):
                gone = {f"s{s}_depth": 0 for s in range(predecessor + 1, reader)}
                out.append(space.canonical(arch.replace(**gone)))
    return out
