"""The ``mcunet`` space: MobileNetV2-style inverted residual networks as searched by
Once-for-All and MCUNet's TinyNAS (per-stage depth, per-block kernel and expand
ratio, width multiplier, input resolution), turned into a framework-free Graph.

Network (Sandler et al. 2018, MobileNetV2; Cai et al. 2020, Once-for-All; Lin et
al. 2020, MCUNet): stem CONV 3x3 -> first block (depthwise 3x3 + linear 1x1,
expand 1) -> five stages of inverted residual blocks (1x1 expand, kxk depthwise,
linear 1x1 project, ADD when the stride is 1 and the channels match) ->
optional 1x1 head conv -> MEAN (global average pool) -> FULLY_CONNECTED -> SOFTMAX.
ReLU6 everywhere but the projections; every conv has a BatchNormalization that
the converter folds.

Stride schedule: the stem and the stages carry the five stride-2 positions of
MobileNetV2 (total stride 32). Each spatial axis downsamples, in that order,
only while its map is at least 4 pixels, so an 8x8 digit keeps a 2x2 map
instead of collapsing to 1x1, a 96x96 image gets the full stride 32, and a
49x10 spectrogram downsamples its time axis more often than its 10 features.

Resolution: square inputs may be resized (the trainer resizes images to
``graph.input_shape``): inputs of 32 pixels or more offer 32, 48, ... up to the
native size; smaller inputs offer the native size and the upscaled 16, 24, 32.
Downscaled options (16 and 24 for large inputs, 12-24 below a small native size)
came later, with widths 0.1-0.2 (channels rounded to multiples of 4) and
stages left out (depth 0): MCUNet's way down to 14 KB-arena boards (issue 12);
widths 1.25 and 1.5 for phones and GPUs came after them (issue 15). All are
appended to their decisions, so every earlier arch keeps its id.
Non-square and 1-D inputs keep their native size. A 1-D input (L, C) starts
with a RESHAPE to (1, 1, L, C) and uses (1, k) kernels, all ops TFLM runs.

Canonical archs: blocks beyond a stage's depth do not exist in the network, so
their kernel and expand decisions are fixed to the first option (3 and 3).
``decode``, ``sample`` and ``mutate`` return canonical archs, ``canonical()``
makes any decision vector canonical, and ``validate`` rejects the rest, so
equal networks always have equal ids.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from tinynas.errors import SpaceError
from tinynas.space.arch import Arch
from tinynas.space.base import Decision, SearchSpace, register_space
from tinynas.space.graph import Graph, GraphBuilder

# OFA's MobileNetV2 (ProxylessNAS) backbone: stem 32, first block 16, then stages
# of (base channels, stride); the 320-channel last stage is left to the optional head.
STEM_CHANNELS = 32
FIRST_BLOCK_CHANNELS = 16
STAGES: tuple[tuple[int, int], ...] = ((24, 2), (40, 2), (80, 2), (96, 1), (192, 2))
HEAD_CHANNELS = 320
KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
# Options added later go last, so every earlier arch keeps its decision indices (strategy states) and id.
DEPTHS = (1, 2, 3, 4, 0)  # 0: the stage is left out (issue 12: the 14 KB-arena boards)
# 1.25 and 1.5 (issue 15): phones and GPUs hold MobileNetV2-1.4-class networks at 224x224.
WIDTHS = (0.25, 0.35, 0.5, 0.75, 1.0, 0.1, 0.15, 0.2, 1.25, 1.5)
#: widths below this round channels to multiples of 4, not 8: at 0.1 a multiple of 8 would undo the shrinking
NARROW_WIDTH = 0.25
MAX_DOWNSAMPLES = 5  # stem + stages 1, 2, 3, 5: MobileNetV2's total stride of 32
MIN_MAP_TO_DOWNSAMPLE = 4


def make_divisible(value: float, divisor: int = 8) -> int:
    """Channel count rounded to a multiple of ``divisor``, never down by more than 10 %.

    The rounding rule of the MobileNet reference code (``_make_divisible``), which
    OFA and MCUNet inherit; multiples of 8 suit SIMD int8 kernels (CMSIS-NN).
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def downsample_count(size: int) -> int:
    """How many of the five stride-2 positions halve an axis of ``size`` pixels."""
    n = 0
    while n < MAX_DOWNSAMPLES and size >= MIN_MAP_TO_DOWNSAMPLE:
        size = -(-size // 2)
        n += 1
    return n


def stride_schedule(h: int, w: int) -> Callable[[int], tuple[int, int]]:
    """The (h, w) stride of each layer in build order: a layer whose base stride is 2 takes the
    next of the five stride-2 positions, which halves an axis only while that axis still has
    room (``downsample_count``); the Graph builder and the layer-wise supernet share it so their
    feature maps agree."""
    downs_h, downs_w = downsample_count(h), downsample_count(w)
    position = 0

    def stride(base: int) -> tuple[int, int]:
        nonlocal position
        if base == 1:
            return (1, 1)
        position += 1
        return (2 if position <= downs_h else 1, 2 if position <= downs_w else 1)

    return stride


def resolution_options(input_shape: Sequence[int]) -> tuple[int, ...]:
    """Input resolutions offered for an input shape (see the module docstring): the original options in
    ascending order, then the downscaled ones added for tiny boards (also ascending)."""
    if len(input_shape) == 2 or input_shape[0] != input_shape[1]:
        return (int(input_shape[0]),)
    native = int(input_shape[0])
    if native >= 32:
        options = set(range(32, native + 1, 16)) | {native}
        smaller = {16, 24}
    else:
        options = {native} | {r for r in (16, 24, 32) if r > native}
        smaller = {r for r in (12, 16, 20, 24) if r < native}
    return tuple(sorted(options)) + tuple(sorted(smaller - options))


def _block_names(stage: int, block: int) -> tuple[str, str]:
    return f"s{stage}_b{block}_kernel", f"s{stage}_b{block}_expand"


@register_space
class MCUNetSpace(SearchSpace):
    """MobileNetV2/MCUNet inverted-residual space (the space OFA and TinyNAS search)."""

    name = "mcunet"
    description = (
        "MobileNetV2/MCUNet inverted residual blocks: width multiplier, input resolution, optional 1x1 head, "
        "per-stage depth 0-4 (0 leaves the stage out), per-block kernel 3/5/7 and expand 3/4/6 (ReLU6)"
    )
    default_input_shape = (32, 32, 3)
    summary_legend = (
        "w: width multiplier of every layer's channels; r: the input resolution the model takes (a square image "
        "is resized to it); head: the 1x1 conv before pooling; in brackets each stage's blocks, stages separated "
        "by |, a block as kernel e expand ratio (5e6: 5x5 depthwise conv, 6x expansion; 1x5 on a sequence); a "
        "stage with no blocks is left out")
    #: the decisions that set the network's overall scale, swept by `tinynas space fit` (MCUNet's space choice)
    scale_decisions = ("width", "resolution")

    def __init__(self, *, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__(input_shape=input_shape, num_classes=num_classes)
        self._one_d = len(self.input_shape) == 2
        self._allowed: list[tuple[str, set]] | None = None

    # -- decisions ------------------------------------------------------------
    def _decisions_for_input(self) -> list[Decision]:
        decisions = [
            Decision("width", WIDTHS),
            Decision("resolution", resolution_options(self.input_shape)),
            Decision("head", (False, True)),
        ]
        for s in range(1, len(STAGES) + 1):
            decisions.append(Decision(f"s{s}_depth", DEPTHS))
            for b in range(1, max(DEPTHS) + 1):
                kernel, expand = _block_names(s, b)
                decisions.append(Decision(kernel, KERNELS))
                decisions.append(Decision(expand, EXPANDS))
        return decisions

    def resizes_input(self) -> bool:
        return len(resolution_options(self.input_shape)) > 1

    def size(self) -> int:
        """Distinct networks (canonical archs): inactive blocks (and the blocks of left-out stages) are not counted."""
        per_stage = sum((len(KERNELS) * len(EXPANDS)) ** d for d in DEPTHS)
        return len(WIDTHS) * len(resolution_options(self.input_shape)) * 2 * per_stage ** len(STAGES)

    # -- canonical form -------------------------------------------------------
    def canonical(self, arch: Arch) -> Arch:
        """``arch`` with the decisions of blocks beyond each stage's depth set to 3 and 3."""
        values = arch.as_dict()
        changed = False
        for s in range(1, len(STAGES) + 1):
            depth = values.get(f"s{s}_depth")
            if not isinstance(depth, int):
                continue
            for b in range(depth + 1, max(DEPTHS) + 1):
                kernel, expand = _block_names(s, b)
                for key, canonical in ((kernel, KERNELS[0]), (expand, EXPANDS[0])):
                    if key in values and values[key] != canonical:
                        values[key] = canonical
                        changed = True
        return Arch.from_dict(arch.space, values) if changed else arch

    def validate(self, arch: Arch) -> None:
        if not self._fast_check(arch):
            super().validate(arch)  # raises with the reason
        values = dict(arch.decisions)
        for s in range(1, len(STAGES) + 1):
            depth = values[f"s{s}_depth"]
            for b in range(int(depth) + 1, max(DEPTHS) + 1):
                kernel, expand = _block_names(s, b)
                if values[kernel] != KERNELS[0] or values[expand] != EXPANDS[0]:
                    raise SpaceError(
                        f"mcunet arch: block {b} of stage {s} is unused (s{s}_depth={depth}), so "
                        f"{kernel} must be {KERNELS[0]} and {expand} must be {EXPANDS[0]} "
                        "(canonical form, so equal networks have equal ids); "
                        "pass it through space.canonical(arch) first"
                    )

    def _fast_check(self, arch: Arch) -> bool:
        """The base class's membership test in one pass (the cost model judges many archs a second)."""
        if self._allowed is None:
            self._allowed = [(d.name, {(type(o), o) for o in d.options}) for d in self.decisions()]
        if arch.space != self.name or len(arch.decisions) != len(self._allowed):
            return False
        for (name, value), (want, allowed) in zip(arch.decisions, self._allowed):
            if name != want or (type(value), value) not in allowed:
                return False
        return True

    def decode(self, indices: Sequence[int]) -> Arch:
        """The canonical arch of a decision-index vector (any vector decodes)."""
        return self.canonical(super().decode(indices))

    def mutate(self, arch: Arch, rng: np.random.Generator, *, n_changes: int = 1) -> Arch:
        """Change ``n_changes`` decisions that shape the network; new blocks get random choices."""
        self.validate(arch)
        values = arch.as_dict()
        active = [d for d in self.decisions() if len(d.options) > 1 and self._is_active(d.name, values)]
        chosen = rng.choice(len(active), size=min(n_changes, len(active)), replace=False)
        for idx in chosen:
            d = active[int(idx)]
            old = values[d.name]
            others = [o for o in d.options if o != old]
            new = others[int(rng.integers(len(others)))]
            values[d.name] = new
            if d.name.endswith("_depth") and int(new) > int(old):
                stage = int(d.name[1:].split("_")[0])
                for b in range(int(old) + 1, int(new) + 1):
                    kernel, expand = _block_names(stage, b)
                    values[kernel] = KERNELS[int(rng.integers(len(KERNELS)))]
                    values[expand] = EXPANDS[int(rng.integers(len(EXPANDS)))]
        return self.canonical(Arch.from_dict(self.name, values))

    @staticmethod
    def _is_active(name: str, values: dict) -> bool:
        if not name.startswith("s") or "_b" not in name:
            return True
        stage, block = name[1:].split("_")[:2]
        return int(block[1:]) <= int(values[f"s{stage}_depth"])

    def summary(self, arch: Arch) -> str:
        """A one-line human description (for tables)."""
        depths = [int(arch[f"s{s}_depth"]) for s in range(1, len(STAGES) + 1)]
        blocks = []
        for s, depth in enumerate(depths, start=1):
            blocks.append(",".join(f"{arch[f's{s}_b{b}_kernel']}e{arch[f's{s}_b{b}_expand']}"
                                   for b in range(1, depth + 1)))
        head = " head" if arch["head"] else ""
        return f"w{arch['width']} r{arch['resolution']}{head} [{' | '.join(blocks)}]"

    # -- graph ----------------------------------------------------------------
    def _build(self, arch: Arch) -> Graph:
        values = dict(arch.decisions)
        width = float(values["width"])
        divisor = 4 if width < NARROW_WIDTH else 8
        resolution = int(values["resolution"])
        if self._one_d:
            length, channels = self.input_shape
            b = GraphBuilder(input_shape=(length, channels), name=f"mcunet_{arch.id}")
            x = b.reshape(b.input, (1, 1, length, channels))
            h, w = 1, length
        else:
            native_h, native_w, channels = self.input_shape
            h = resolution
            w = native_w if native_h != native_w else resolution
            b = GraphBuilder(input_shape=(h, w, channels), name=f"mcunet_{arch.id}")
            x = b.input
        stride = stride_schedule(h, w)  # stride-2 positions actually used on each axis

        def kernel(k: int) -> tuple[int, int]:
            return (1, k) if self._one_d else (k, k)

        x = b.conv2d(x, filters=make_divisible(STEM_CHANNELS * width, divisor), kernel=kernel(3), stride=stride(2),
                     activation="relu6")
        # First block: expand ratio 1, i.e. depthwise separable with a linear projection.
        x = b.depthwise_conv2d(x, kernel=kernel(3), activation="relu6")
        x = b.conv2d(x, filters=make_divisible(FIRST_BLOCK_CHANNELS * width, divisor), kernel=1, activation=None)
        for s, (base_channels, base_stride) in enumerate(STAGES, start=1):
            out_channels = make_divisible(base_channels * width, divisor)
            for blk in range(1, int(values[f"s{s}_depth"]) + 1):
                k, e = int(values[f"s{s}_b{blk}_kernel"]), int(values[f"s{s}_b{blk}_expand"])
                st = stride(base_stride) if blk == 1 else (1, 1)
                x = self._inverted_residual(b, x, out_channels=out_channels, kernel=kernel(k), expand=e, stride=st)
        if values["head"]:
            x = b.conv2d(x, filters=make_divisible(HEAD_CHANNELS * width, divisor), kernel=1, activation="relu6")
        x = b.global_avg_pool(x)
        x = b.fully_connected(x, units=self.num_classes)
        x = b.softmax(x)
        return b.build(outputs=[x])

    @staticmethod
    def _inverted_residual(
        b: GraphBuilder, x: str, *, out_channels: int, kernel: tuple[int, int], expand: int, stride: tuple[int, int]
    ) -> str:
        """MobileNetV2 block: 1x1 expand (ReLU6), kxk depthwise (ReLU6), linear 1x1 project, + residual."""
        in_channels = b.shape(x)[-1]
        y = b.conv2d(x, filters=in_channels * expand, kernel=1, activation="relu6")
        y = b.depthwise_conv2d(y, kernel=kernel, stride=stride, activation="relu6")
        y = b.conv2d(y, filters=out_channels, kernel=1, activation=None)
        if stride == (1, 1) and in_channels == out_channels:
            y = b.add(x, y)
        return y
