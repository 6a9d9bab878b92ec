"""How ``dscnn`` is relaxed layer-wise (``tinynas.darts.layerwise``), and its keras supernet.

The space has one channel count throughout and its stem stride fixes every later map, so the choices that keep
the tensor shapes between blocks are: the stem's kernel (SAME padding: every kernel gives the map of the base's
stride; only the kernels that stride allows, ``DSCNNSpace.validate``) and, for every depthwise-separable block
after the first, whether it is there at all (stride 1, same channels: a skipped block is the identity, and a
network with a middle block skipped is the network with one block fewer, ``pack``). The first block stays, as
the space has at least one. Channels, stem stride and the base's block count are the base's.

Every block shares one option list: the stem kernels (smallest area first), ``KEEP``, ``SKIP``; a block may take
only its own (``MixedBlock.only``), the rest is masked.
"""

from __future__ import annotations

from typing import Any

from tinynas.darts.layerwise import SKIP, MixedBlock
from tinynas.space.arch import Arch
from tinynas.space.dscnn import parse_pair

#: a depthwise-separable block that stays
KEEP = ("block",)
STEM = "stem"


def _block_index(name: str) -> int:
    """``"b3"`` -> 3."""
    return int(name[1:])


class DSCNNRules:
    """``LayerwiseRules`` of ``dscnn``."""

    def options(self, space: Any, base: Arch) -> tuple[tuple[Any, ...], ...]:
        kernels = next(d.options for d in space.decisions() if d.name == "stem_kernel")
        by_area = sorted(kernels, key=lambda k: (parse_pair(k)[0] * parse_pair(k)[1], k))
        return tuple((k,) for k in by_area) + (KEEP, SKIP)

    def blocks(self, space: Any, base: Arch, options: tuple[tuple[Any, ...], ...]) -> list[MixedBlock]:
        sh, sw = parse_pair(str(base["stem_stride"]))
        kernels = frozenset(o for o in options if o not in (KEEP, SKIP)
                            and parse_pair(o[0])[0] >= sh and parse_pair(o[0])[1] >= sw)
        out = []
        if kernels and kernels != {(str(base["stem_kernel"]),)}:  # one kernel, the base's: nothing to mix
            out.append(MixedBlock(name=STEM, decisions=("stem_kernel",), options=options, only=kernels))
        out += [MixedBlock(name=f"b{b}", decisions=(), options=options, skippable=True, only=frozenset({KEEP}))
                for b in range(2, int(base["blocks"]) + 1)]
        return out

    def value(self, arch: Arch, block: MixedBlock) -> tuple[Any, ...]:
        if block.name == STEM:
            return (str(arch["stem_kernel"]),)
        return KEEP if _block_index(block.name) <= int(arch["blocks"]) else SKIP

    def pack(self, values: dict[str, Any], skipped: set[str]) -> None:
        values["blocks"] = int(values["blocks"]) - len(skipped)

    def extremes(self, block: MixedBlock) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        if block.name != STEM:
            return SKIP, KEEP
        allowed = [o for o in block.options if block.allows(o)]
        return allowed[0], allowed[-1]

    def neighbours(self, block: MixedBlock, option: tuple[Any, ...]) -> set[tuple[Any, ...]]:
        if block.name != STEM:
            return {KEEP, SKIP}
        allowed = [o for o in block.options if block.allows(o)]
        i = allowed.index(option)
        return set(allowed[max(0, i - 1):i + 2])

    def branches(self, space: Any, arch: Arch) -> int:
        stem = [b for b in self.blocks(space, arch, self.options(space, arch)) if b.name == STEM]
        return (len(stem[0].only) if stem else 1) + int(arch["blocks"])

    def build(self, plan: Any, *, input_shape: tuple[int, ...], num_classes: int, seed: int) -> Any:
        return build_dscnn_supernet(plan, input_shape=input_shape, num_classes=num_classes, seed=seed)


def build_dscnn_supernet(plan: Any, *, input_shape: tuple[int, ...], num_classes: int, seed: int = 0) -> Any:
    """A ``keras.Model`` for ``plan`` (dscnn, inputs H,W,C or 1-D L,C): ``DSCNNSpace._build``'s network with
    BatchNormalization after every conv (as training builds it), the stem a weighted sum of one conv branch per
    kernel and each mixed block ``w_keep * block(x) + w_skip * x``."""
    from tinynas.darts.sequential import call_sequential
    from tinynas.tf_runtime import quiet_import

    quiet_import()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    layers = keras.layers
    values = dict(plan.base.decisions)
    channels = int(values["channels"])
    one_d = len(input_shape) == 2
    stride = parse_pair(str(values["stem_stride"]))
    dw_kernel = (1, 3) if one_d else (3, 3)
    index = {block.name: i for i, block in enumerate(plan.blocks)}

    def conv_bn(kernel: tuple[int, int], strides: tuple[int, int] = (1, 1)) -> Any:
        return keras.Sequential([layers.Conv2D(channels, kernel, strides=strides, padding="same", use_bias=False),
                                 layers.BatchNormalization(momentum=0.9), layers.ReLU()])

    class DSCNNSupernet(keras.Model):
        def __init__(self) -> None:
            super().__init__(name=f"layerwise_{plan.base.id}")
            self.stem_row = index.get(STEM)  # None: the stem keeps the base's kernel
            if self.stem_row is None:
                self.stem_options, kernels = [], [str(values["stem_kernel"])]
            else:
                row = plan.blocks[self.stem_row]
                self.stem_options = [o for o, option in enumerate(row.options) if row.allows(option)]
                kernels = [row.options[o][0] for o in self.stem_options]
            self.stems = [conv_bn(parse_pair(k), stride) for k in kernels]
            self.ds_blocks = []
            for b in range(1, int(values["blocks"]) + 1):
                body = keras.Sequential([layers.DepthwiseConv2D(dw_kernel, padding="same", use_bias=False),
                                         layers.BatchNormalization(momentum=0.9), layers.ReLU(),
                                         layers.Conv2D(channels, 1, use_bias=False),
                                         layers.BatchNormalization(momentum=0.9), layers.ReLU()])
                self.ds_blocks.append((index.get(f"b{b}"), body))
            self.classifier = layers.Dense(int(num_classes))

        def call(self, x: Any, mixing: Any, training: bool = False) -> Any:
            if one_d:
                x = tf.reshape(x, (-1, 1, input_shape[0], input_shape[1]))
            if self.stem_row is None:
                x = call_sequential(self.stems[0], x, training=training)
            else:
                row = mixing[self.stem_row]
                x = tf.add_n([row[o] * call_sequential(branch, x, training=training)
                              for o, branch in zip(self.stem_options, self.stems)])
            for i, body in self.ds_blocks:
                y = call_sequential(body, x, training=training)
                if i is not None:  # mixed: keep, or skip where the plan offers it
                    options = plan.blocks[i].options
                    y = mixing[i][options.index(KEEP)] * y
                    if SKIP in options:
                        y = y + mixing[i][options.index(SKIP)] * x
                x = y
            return tf.nn.softmax(self.classifier(tf.reduce_mean(x, axis=(1, 2))))

    model = DSCNNSupernet()
    n, k = plan.shape
    model(tf.zeros((1, *input_shape)), tf.fill((n, k), 1.0 / k))  # create the variables
    return model


RULES = DSCNNRules()
