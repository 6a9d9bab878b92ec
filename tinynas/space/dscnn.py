"""The ``dscnn`` space: depthwise-separable CNNs for keyword spotting over MFCC
features (e.g. 49x10) and for sensor windows (1-D inputs such as mnist1d's 40x1).

Network (Zhang et al. 2017, "Hello Edge: Keyword Spotting on Microcontrollers",
DS-CNN; the MLPerf Tiny KWS reference model): CONV stem (e.g. 10x4, stride 2)
-> N blocks of [DEPTHWISE_CONV 3x3 + BN + ReLU, CONV 1x1 + BN + ReLU] with one
channel count throughout -> global average pool (MEAN) -> FULLY_CONNECTED ->
SOFTMAX. Decisions: number of blocks, channels, stem kernel and stem stride.
Hello Edge's DS-CNN S/M/L are points of it (4/4/5 blocks, 64/172/276 channels).

Hello Edge's own grid (16-276 channels, strides up to 2x2) leaves a tight board
almost nothing: with a 14 KB arena at 28x28 only 27 of its 486 networks fit, so a
search trained them all in minutes (issue 11). The space therefore also offers
narrow widths (4-12 channels, and steps between Hello Edge's), 7-8 blocks, a 7x7
stem and strides that shrink the map early (3x3, 4x2, 4x4; 1-D: 1x3, 1x4), since
the stem's output map is what bounds the arena. The new values are options of the
same four decisions, so every arch of the original grid keeps its id. A stem
stride longer than its kernel on an axis would skip input samples and is not offered.

A 1-D input (L, C) starts with a RESHAPE to (1, 1, L, C) and uses (1, k)
kernels and (1, s) strides, so the model stays in the 2-D ops TFLite Micro runs
(no EXPAND_DIMS/SQUEEZE). Stem kernels longer than an input axis are not offered.
"""

from __future__ import annotations

from typing import Sequence

from tinynas.errors import SpaceError
from tinynas.space.arch import Arch
from tinynas.space.base import Decision, SearchSpace, register_space
from tinynas.space.graph import Graph, GraphBuilder

BLOCKS = (1, 2, 3, 4, 5, 6, 7, 8)
CHANNELS = (4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 128, 172, 276)
STEM_KERNELS_2D = ("3x3", "5x5", "7x7", "10x4")
STEM_STRIDES_2D = ("1x1", "2x1", "2x2", "3x3", "4x2", "4x4")
STEM_KERNELS_1D = ("1x3", "1x5", "1x7", "1x9")
STEM_STRIDES_1D = ("1x1", "1x2", "1x3", "1x4")


def parse_pair(text: str) -> tuple[int, int]:
    """``"10x4"`` -> ``(10, 4)``."""
    h, w = text.split("x")
    return int(h), int(w)


@register_space
class DSCNNSpace(SearchSpace):
    """Hello Edge DS-CNN: stem conv + depthwise-separable blocks, 2-D or 1-D inputs."""

    name = "dscnn"
    description = (
        "Hello Edge DS-CNN (Zhang et al. 2017) for MFCC features or sensor windows: stem conv "
        "kernel/stride, 1-8 depthwise-separable blocks, 4-276 channels (ReLU); 2-D and 1-D inputs"
    )
    default_input_shape = (49, 10, 1)

    def __init__(self, *, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__(input_shape=input_shape, num_classes=num_classes)
        self._one_d = len(self.input_shape) == 2
        if self._one_d:
            self._spatial = (1, self.input_shape[0])
        else:
            self._spatial = (self.input_shape[0], self.input_shape[1])
        self.decisions()  # an input the space cannot take fails here, with the reason

    def _decisions_for_input(self) -> list[Decision]:
        h, w = self._spatial
        kernels = STEM_KERNELS_1D if self._one_d else STEM_KERNELS_2D
        strides = STEM_STRIDES_1D if self._one_d else STEM_STRIDES_2D
        fitting = tuple(k for k in kernels if parse_pair(k)[0] <= h and parse_pair(k)[1] <= w)
        if not fitting:
            smallest = kernels[0]
            raise SpaceError(
                f"dscnn: input shape {self.input_shape} is smaller than the smallest stem kernel {smallest}; "
                "use an input of at least 3 samples (1-D) or 3x3 (2-D)"
            )
        return [
            Decision("blocks", BLOCKS),
            Decision("channels", CHANNELS),
            Decision("stem_kernel", fitting),
            Decision("stem_stride", strides),
        ]

    def validate(self, arch: Arch) -> None:
        super().validate(arch)
        kh, kw = parse_pair(str(arch["stem_kernel"]))
        sh, sw = parse_pair(str(arch["stem_stride"]))
        if sh > kh or sw > kw:
            raise SpaceError(
                f"dscnn arch: stem stride {arch['stem_stride']} is longer than stem kernel {arch['stem_kernel']} "
                "on an axis, so the stem would skip input samples; pick a stride no longer than the kernel "
                "on each axis (or a larger kernel)"
            )

    def summary(self, arch: Arch) -> str:
        return (f"{arch['blocks']} blocks x {arch['channels']} ch, stem {arch['stem_kernel']} "
                f"stride {arch['stem_stride']}")

    def _build(self, arch: Arch) -> Graph:
        channels = int(arch["channels"])
        b = GraphBuilder(input_shape=self.input_shape, name=f"dscnn_{arch.id}")
        x = b.input
        if self._one_d:
            length, c_in = self.input_shape
            x = b.reshape(x, (1, 1, length, c_in))
        dw_kernel = (1, 3) if self._one_d else (3, 3)
        x = b.conv2d(x, filters=channels, kernel=parse_pair(str(arch["stem_kernel"])),
                     stride=parse_pair(str(arch["stem_stride"])), activation="relu")
        for _ in range(int(arch["blocks"])):
            x = b.depthwise_conv2d(x, kernel=dw_kernel, activation="relu")
            x = b.conv2d(x, filters=channels, kernel=1, activation="relu")
        x = b.global_avg_pool(x)
        x = b.fully_connected(x, units=self.num_classes)
        x = b.softmax(x)
        return b.build(outputs=[x])
