"""The keras supernet of a ``LayerwisePlan`` (``build_layerwise_supernet``; ``mcunet``'s here, ``dscnn``'s in
``tinynas.darts.layerwise_dscnn``). ``mcunet``'s: the base arch's skeleton with every mixed block a
weighted sum of its options (FBNet: one inverted-residual branch per kernel x expand option; skip adds no
branch, so a residual block with all weight on skip is the identity).

Same skeleton as ``McuNetSpace._build`` (stem 3x3 stride 2, depthwise-separable first block, stages of
inverted residual blocks, optional 1x1 head, global pooling, dense), with BatchNorm after every conv so the
branches train from scratch at the papers' SGD settings. ``model(x, mixing, training=...)`` takes the mixing
weights (blocks x options) per call, so DARTS (softmax) and DrNAS (Dirichlet samples) share the network.
"""

from __future__ import annotations

from typing import Any

from tinynas.errors import SearchError


def build_layerwise_supernet(plan: Any, *, input_shape: tuple[int, ...], num_classes: int, seed: int = 0) -> Any:
    """A ``keras.Model`` for ``plan``, built by its space's rules (``tinynas.darts.layerwise.rules_for``)."""
    return plan.rules.build(plan, input_shape=tuple(input_shape), num_classes=int(num_classes), seed=int(seed))


def build_mcunet_supernet(plan: Any, *, input_shape: tuple[int, ...], num_classes: int, seed: int = 0) -> Any:
    """A ``keras.Model`` for ``plan`` (mcunet, image inputs H,W,C)."""
    from tinynas.space.mcunet import (FIRST_BLOCK_CHANNELS, HEAD_CHANNELS, NARROW_WIDTH, STAGES, STEM_CHANNELS,
                                      make_divisible, stride_schedule)
    from tinynas.tf_runtime import quiet_import

    if plan.space.name != "mcunet" or len(input_shape) != 3:
        raise SearchError(f"the layer-wise supernet is built for mcunet on image inputs H,W,C; got space "
                          f"{plan.space.name!r} with input {input_shape}")
    from tinynas.darts.layerwise import SKIP
    from tinynas.darts.sequential import call_sequential

    quiet_import()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    layers = keras.layers
    values = dict(plan.base.decisions)
    width = float(values["width"])
    divisor = 4 if width < NARROW_WIDTH else 8
    native_h, native_w, _ = input_shape
    h = int(values["resolution"])
    w = native_w if native_h != native_w else h
    stride = stride_schedule(h, w)

    def conv(filters: int, kernel: int = 1, st: tuple[int, int] = (1, 1), act: bool = True) -> list[Any]:
        out = [layers.Conv2D(filters, kernel, strides=st, padding="same", use_bias=False),
               layers.BatchNormalization(momentum=0.9)]
        return out + [layers.ReLU(6.0)] if act else out

    def dw(kernel: int, st: tuple[int, int]) -> list[Any]:
        return [layers.DepthwiseConv2D(kernel, strides=st, padding="same", use_bias=False),
                layers.BatchNormalization(momentum=0.9), layers.ReLU(6.0)]

    class MixedBlock(layers.Layer):
        """A block's options as parallel inverted-residual branches, summed with the mixing weights."""

        def __init__(self, options: Any, in_ch: int, out_ch: int, st: tuple[int, int], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.residual = st == (1, 1) and in_ch == out_ch
            # skip: no branch (a stage's first block masks it: LayerwisePlan.mask)
            self.option_index = [o for o, option in enumerate(options) if tuple(option) != SKIP]
            self.branches = [keras.Sequential(conv(in_ch * int(options[o][1])) + dw(int(options[o][0]), st)
                                              + conv(out_ch, act=False)) for o in self.option_index]

        def call(self, x: Any, weights: Any, training: bool = False) -> Any:
            y = tf.add_n([weights[o] * call_sequential(branch, x, training=training)
                          for o, branch in zip(self.option_index, self.branches)])
            return x + y if self.residual else y

    mixed_index = {block.name: i for i, block in enumerate(plan.blocks)}

    class LayerwiseSupernet(keras.Model):
        def __init__(self) -> None:
            super().__init__(name=f"layerwise_{plan.base.id}")
            self.stem = keras.Sequential(conv(make_divisible(STEM_CHANNELS * width, divisor), 3, stride(2))
                                         + dw(3, (1, 1))
                                         + conv(make_divisible(FIRST_BLOCK_CHANNELS * width, divisor), act=False))
            channels = make_divisible(FIRST_BLOCK_CHANNELS * width, divisor)
            self.blocks: list[tuple[int, Any]] = []
            for s, (base_channels, base_stride) in enumerate(STAGES, start=1):
                out_ch = make_divisible(base_channels * width, divisor)
                for b in range(1, int(values[f"s{s}_depth"]) + 1):
                    st = stride(base_stride) if b == 1 else (1, 1)
                    i = mixed_index.get(f"s{s}_b{b}")  # None: a block the plan leaves at the base's choice
                    options = plan.blocks[i].options if i is not None else (
                        (int(values[f"s{s}_b{b}_kernel"]), int(values[f"s{s}_b{b}_expand"])),)
                    self.blocks.append((i, MixedBlock(options, channels, out_ch, st, name=f"s{s}_b{b}")))
                    channels = out_ch
            self.head = (keras.Sequential(conv(make_divisible(HEAD_CHANNELS * width, divisor)))
                         if values["head"] else None)
            self.classifier = layers.Dense(int(num_classes))

        def call(self, x: Any, mixing: Any, training: bool = False) -> Any:
            if x.shape[1] != h or x.shape[2] != w:
                x = tf.image.resize(x, (h, w))
            x = self.stem(x, training=training)
            for i, block in self.blocks:
                x = block(x, tf.ones((1,)) if i is None else mixing[i], training=training)
            if self.head is not None:
                x = self.head(x, training=training)
            return tf.nn.softmax(self.classifier(tf.reduce_mean(x, axis=(1, 2))))

    model = LayerwiseSupernet()
    n, k = plan.shape
    model(tf.zeros((1, *input_shape)), tf.fill((n, k), 1.0 / k))  # create the variables
    return model
