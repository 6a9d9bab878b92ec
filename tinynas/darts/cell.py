"""The NAS-Bench-201 cell as a DARTS supernet: every edge a mixed op over the five candidate ops.

Same macro skeleton as ``tinynas.space.nasbench201`` (stem 3x3 conv + BN, three
stages of N cells at C, 2C, 4C channels with the ResNet basic block between
stages, ReLU, global average pooling, a dense classifier), so an arch derived
from it is an arch of that space with an id, a cost and a published accuracy.

Following DARTS (Liu et al., ICLR 2019) and NAS-Bench-201's search code:
``nor_conv_kxk`` is ReLU-Conv-BN with a BatchNorm *without* affine parameters
(so the architecture weights, not BN scales, decide how much an op counts),
``avg_pool_3x3`` is a stride-1 average pool that excludes padding,
``skip_connect`` the identity and ``none`` zero. An edge computes
``sum_o w_o * o(x)``; the mixing weights ``w`` (6 edges x 5 ops) are given to
``call``, so DARTS (softmax of alpha) and DrNAS (a Dirichlet sample) share the
network. All cells of the network share one set of architecture weights, as in
the paper.
"""

from __future__ import annotations

from typing import Any

from tinynas.space.nasbench201 import EDGES, OPS


def build_cell_supernet(*, input_shape: tuple[int, ...], num_classes: int, cells_per_stage: int = 1,
                        base_channels: int = 8, seed: int = 0) -> Any:
    """A ``keras.Model`` subclass instance: ``model(x, mixing, training=...)`` -> class probabilities."""
    from tinynas.tf_runtime import quiet_import

    quiet_import()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    layers = keras.layers

    def conv_bn(filters: int, kernel: int, stride: int = 1, *, affine: bool) -> keras.Sequential:
        return keras.Sequential([
            layers.ReLU(),
            layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False),
            layers.BatchNormalization(center=affine, scale=affine, momentum=0.9),
        ])

    class MixedEdge(layers.Layer):
        """One edge: the weighted sum of the five candidate ops (``none`` contributes nothing)."""

        def __init__(self, channels: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.ops = {"nor_conv_1x1": conv_bn(channels, 1, affine=False),
                        "nor_conv_3x3": conv_bn(channels, 3, affine=False),
                        "avg_pool_3x3": layers.AveragePooling2D(3, strides=1, padding="same")}

        def call(self, x: Any, weights: Any, training: bool = False) -> Any:
            out = weights[OPS.index("skip_connect")] * x
            for name, op in self.ops.items():
                y = op(x, training=training) if name != "avg_pool_3x3" else _avg_pool_excluding_pad(tf, op, x)
                out = out + weights[OPS.index(name)] * y
            return out

    class Cell(layers.Layer):
        def __init__(self, channels: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.edges = [MixedEdge(channels, name=f"edge_{dst}_{src}") for dst, src in EDGES]

        def call(self, x: Any, mixing: Any, training: bool = False) -> Any:
            nodes = [x]
            for dst in (1, 2, 3):
                terms = [edge(nodes[src], mixing[i], training=training)
                         for i, ((e_dst, src), edge) in enumerate(zip(EDGES, self.edges)) if e_dst == dst]
                nodes.append(tf.add_n(terms))
            return nodes[3]

    class Reduction(layers.Layer):
        def __init__(self, channels: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.a = conv_bn(channels, 3, 2, affine=True)
            self.b = conv_bn(channels, 3, affine=True)
            self.pool = layers.AveragePooling2D(2, strides=2, padding="valid")
            self.proj = layers.Conv2D(channels, 1, use_bias=False)

        def call(self, x: Any, training: bool = False) -> Any:
            return self.b(self.a(x, training=training), training=training) + self.proj(self.pool(x))

    class CellSupernet(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="darts_nasbench201")
            c = int(base_channels)
            self.stem = keras.Sequential([layers.Conv2D(c, 3, padding="same", use_bias=False),
                                          layers.BatchNormalization(momentum=0.9)])
            self.stages = []
            for stage in range(3):
                width = c * 2**stage
                blocks: list[Any] = [Reduction(width)] if stage else []
                blocks += [Cell(width) for _ in range(int(cells_per_stage))]
                self.stages.append(blocks)
            self.head = layers.Dense(int(num_classes))

        def call(self, x: Any, mixing: Any, training: bool = False) -> Any:
            x = self.stem(x, training=training)
            for blocks in self.stages:
                for block in blocks:
                    x = block(x, mixing, training=training) if isinstance(block, Cell) else block(x, training=training)
            x = tf.reduce_mean(tf.nn.relu(x), axis=(1, 2))
            return tf.nn.softmax(self.head(x))

    model = CellSupernet()
    model(tf.zeros((1, *input_shape)), tf.fill((len(EDGES), len(OPS)), 1.0 / len(OPS)))  # create the variables
    return model


def _avg_pool_excluding_pad(tf: Any, pool: Any, x: Any) -> Any:
    """3x3 stride-1 SAME average pool that divides by the pixels inside the image (``count_include_pad=False``)."""
    ones = tf.ones_like(x[:1, :, :, :1])
    return pool(x) / pool(ones)
