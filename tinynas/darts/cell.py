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

DropPath (RobustDARTS's DP variant, Zela et al., ICLR 2020): ``model.set_drop_prob(p)`` zeroes each
non-identity op's output (``none`` aside, which is zero anyway) for a random share ``p`` of the samples in a
training pass and scales the kept ones by ``1 / (1 - p)``; the skip is never dropped. The default 0 leaves
the network as DARTS has it; inference (``training=False``) never drops.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from tinynas.space.nasbench201 import EDGES, OPS

#: the ops DropPath acts on: every op but the skip (and ``none``, zero anyway)
DROPPED_OPS = ("nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def build_cell_supernet(*, input_shape: tuple[int, ...], num_classes: int, cells_per_stage: int = 1,
                        base_channels: int = 8, seed: int = 0, drop_path: bool = False,
                        affine_ops: bool = False) -> Any:
    """A ``keras.Model`` subclass instance: ``model(x, mixing, training=...)`` -> class probabilities.

    ``drop_path`` builds DropPath into the training passes (at probability 0 until ``set_drop_prob``); without
    it the graphs have no random op at all. ``affine_ops``: the candidate convolutions' BatchNorms get a scale
    and a shift (``DartsConfig.affine_ops``)."""
    from tinynas.tf_runtime import quiet_import

    quiet_import()
    import keras
    import tensorflow as tf

    from tinynas.darts.sequential import call_sequential

    keras.utils.set_random_seed(int(seed))
    layers = keras.layers
    # outside the model, so it is neither a weight of the supernet nor in its checkpoints
    drop_prob = tf.Variable(0.0, trainable=False, dtype=tf.float32)
    drop_rng = tf.random.Generator.from_seed(int(seed) + 7)

    # read when a function is traced: a graph traced under ``model.without_drop_path()`` has no random op,
    # which the eigenvalue's Hessian needs: its Hessian-vector products must all differentiate one function
    with_drop = bool(drop_path)
    tracing_drop = [with_drop]
    n_cells = 3 * int(cells_per_stage)

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
            self.ops = {"nor_conv_1x1": conv_bn(channels, 1, affine=affine_ops),
                        "nor_conv_3x3": conv_bn(channels, 3, affine=affine_ops),
                        "avg_pool_3x3": layers.AveragePooling2D(3, strides=1, padding="same")}

        def call(self, x: Any, weights: Any, training: bool = False, drops: Any = None) -> Any:
            out = weights[OPS.index("skip_connect")] * x
            for name, op in self.ops.items():
                y = (call_sequential(op, x, training=training) if name != "avg_pool_3x3"
                     else _avg_pool_excluding_pad(tf, op, x))
                if drops is not None:
                    y = y * drops[DROPPED_OPS.index(name)][:, None, None, None]
                out = out + weights[OPS.index(name)] * y
            return out

    class Cell(layers.Layer):
        def __init__(self, channels: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.edges = [MixedEdge(channels, name=f"edge_{dst}_{src}") for dst, src in EDGES]

        def call(self, x: Any, mixing: Any, training: bool = False, drops: Any = None) -> Any:
            nodes = [x]
            for dst in (1, 2, 3):
                terms = [edge(nodes[src], mixing[i], training=training, drops=None if drops is None else drops[i])
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
            drops = self.drop_factors(tf.shape(x)[0]) if training and tracing_drop[0] else None
            x = self.stem(x, training=training)
            cell = 0
            for blocks in self.stages:
                for block in blocks:
                    if isinstance(block, Cell):
                        x = block(x, mixing, training=training, drops=None if drops is None else drops[cell])
                        cell += 1
                    else:
                        x = block(x, training=training)
            x = tf.reduce_mean(tf.nn.relu(x), axis=(1, 2))
            return tf.nn.softmax(self.head(x))

        def drop_factors(self, batch: Any) -> Any:
            """0 or 1 / keep per (cell, edge, dropped op, sample), drawn in one call per forward pass (one RNG
            op, not one per op: stateful ops run in program order); all ones at probability 0."""
            keep = 1.0 - drop_prob
            u = drop_rng.uniform((n_cells, len(EDGES), len(DROPPED_OPS), batch))
            return tf.floor(keep + u) / keep

        def set_drop_prob(self, p: float) -> None:
            """DropPath's probability for the following training passes (0 disables it)."""
            drop_prob.assign(float(p))

        @contextlib.contextmanager
        def without_drop_path(self) -> Iterator[None]:
            """Functions first traced inside this block never drop (the eigenvalue's Hessian)."""
            tracing_drop[0] = False
            try:
                yield
            finally:
                tracing_drop[0] = with_drop

    model = CellSupernet()
    model(tf.zeros((1, *input_shape)), tf.fill((len(EDGES), len(OPS)), 1.0 / len(OPS)))  # create the variables
    return model


def _avg_pool_excluding_pad(tf: Any, pool: Any, x: Any) -> Any:
    """3x3 stride-1 SAME average pool that divides by the pixels inside the image (``count_include_pad=False``)."""
    ones = tf.ones_like(x[:1, :, :, :1])
    return pool(x) / pool(ones)
