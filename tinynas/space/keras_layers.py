"""Keras layers for the Graph ops that no stock Keras layer converts to one-for-one.

Each layer computes one TFLite op of ``space/graph.py`` (BATCH_MATMUL with adj_y,
SUB and MUL with broadcasting, SQUARED_DIFFERENCE, RSQRT, MEAN over any axes,
TRANSPOSE, a learned class token, a learned or fixed constant ADD, a token slice),
so the Keras builder keeps its one-layer-per-op rule and the converter's output is
the space's Graph. They are registered with Keras' serializer (package
``tinynas``), so a trained ``model.keras`` loads again once this module is imported.

This module imports Keras at import time: import it only where Keras is needed
(``keras_builder.build_keras_model``, the deployer's model loader).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

_register = keras.saving.register_keras_serializable(package="tinynas")


@_register
class BatchMatMul(keras.layers.Layer):
    """BATCH_MATMUL of two tensors; ``adj_y`` multiplies by the transpose of the last two axes of b
    (the converter keeps the flag, and TFLM then needs no persistent copy of b)."""

    def __init__(self, *, adj_x: bool = False, adj_y: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.adj_x, self.adj_y = bool(adj_x), bool(adj_y)

    def call(self, a: Any, b: Any) -> Any:
        import tensorflow as tf  # keras.ops has no transpose flags; tf.linalg.matmul keeps them as adj_x/adj_y

        return tf.linalg.matmul(a, b, transpose_a=self.adj_x, transpose_b=self.adj_y)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "adj_x": self.adj_x, "adj_y": self.adj_y}


@_register
class Transpose(keras.layers.Layer):
    """TRANSPOSE by ``perm`` (batch axis included, and first)."""

    def __init__(self, *, perm: tuple[int, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.perm = tuple(int(p) for p in perm)

    def call(self, x: Any) -> Any:
        return ops.transpose(x, self.perm)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "perm": list(self.perm)}


@_register
class Mean(keras.layers.Layer):
    """MEAN over ``axes`` (batch axis 0 excluded)."""

    def __init__(self, *, axes: tuple[int, ...], keepdims: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axes = tuple(int(a) for a in axes)
        self.keepdims = bool(keepdims)

    def call(self, x: Any) -> Any:
        axis = self.axes[0] - len(x.shape) if len(self.axes) == 1 and self.keepdims else self.axes
        return ops.mean(x, axis=axis, keepdims=self.keepdims)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axes": list(self.axes), "keepdims": self.keepdims}


@_register
class Subtract(keras.layers.Layer):
    """SUB with broadcasting (keras.layers.Subtract wants equal shapes)."""

    def call(self, a: Any, b: Any) -> Any:
        return ops.subtract(a, b)


@_register
class SquaredDifference(keras.layers.Layer):
    """(a - b)^2 with broadcasting: the converter writes one SQUARED_DIFFERENCE."""

    def call(self, a: Any, b: Any) -> Any:
        return ops.square(ops.subtract(a, b))


@_register
class Rsqrt(keras.layers.Layer):
    def call(self, x: Any) -> Any:
        return ops.rsqrt(x)


@_register
class BroadcastMultiply(keras.layers.Layer):
    """MUL with broadcasting. ``affine``: the product is the last step of a LayerNorm and this layer
    also owns its gamma and beta (over the last axis); the converter folds both into the
    FULLY_CONNECTED that follows, so the int8 model has the one MUL of the Graph."""

    def __init__(self, *, affine: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.affine = bool(affine)

    def build(self, a_shape: Any, b_shape: Any = None) -> None:
        if self.affine:
            dim = int(a_shape[-1])
            self.gamma = self.add_weight(name="gamma", shape=(dim,), initializer="ones")
            self.beta = self.add_weight(name="beta", shape=(dim,), initializer="zeros")

    def call(self, a: Any, b: Any) -> Any:
        y = ops.multiply(a, b)
        return y * self.gamma + self.beta if self.affine else y

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "affine": self.affine}


@_register
class AddConstant(keras.layers.Layer):
    """ADD of a constant: a fixed scalar (``value``, a LayerNorm's epsilon) or, without ``value``, a
    trained tensor of ``shape`` (a learned positional embedding, batch axis excluded)."""

    def __init__(self, *, shape: tuple[int, ...] = (), value: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.const_shape = tuple(int(d) for d in shape)
        self.value = None if value is None else float(value)

    def build(self, input_shape: Any) -> None:
        if self.value is None:
            self.constant = self.add_weight(name="constant", shape=self.const_shape,
                                            initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, x: Any) -> Any:
        return x + (self.value if self.value is not None else self.constant)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "shape": list(self.const_shape), "value": self.value}


@_register
class ClassToken(keras.layers.Layer):
    """CONCATENATION of a learned token in front of the token axis (axis 1) of (batch, T, D)."""

    def build(self, input_shape: Any) -> None:
        self.token = self.add_weight(name="token", shape=(1, 1, int(input_shape[-1])),
                                     initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, x: Any) -> Any:
        batch = ops.shape(x)[0]
        return ops.concatenate([ops.broadcast_to(self.token, (batch, 1, x.shape[-1])), x], axis=1)


@_register
class TakeToken(keras.layers.Layer):
    """STRIDED_SLICE: token ``index`` of (batch, T, D), token axis dropped."""

    def __init__(self, *, index: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, x: Any) -> Any:
        return x[:, self.index, :]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "index": self.index}


@_register
class GraphPropagation(keras.layers.Layer):
    """``A_hat @ x`` over the node axis of (batch, nodes, features) with a fixed, untrained ``A_hat``
    (a gcn's normalized adjacency). The einsum converts to TRANSPOSE + FULLY_CONNECTED (A_hat as
    its weights) + TRANSPOSE; ``A_hat`` is a non-trainable weight, so it is saved with the model."""

    def __init__(self, *, nodes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.nodes = int(nodes)

    def build(self, input_shape: Any) -> None:
        self.a_hat = self.add_weight(name="a_hat", shape=(self.nodes, self.nodes), initializer="zeros",
                                     trainable=False)

    def call(self, x: Any) -> Any:
        import tensorflow as tf  # keras.ops.einsum lowers through transposes the converter cannot fold

        return tf.einsum("ij,bjd->bid", tf.convert_to_tensor(self.a_hat), x)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "nodes": self.nodes}


@_register
class FixedDense(keras.layers.Layer):
    """``x @ K`` with a fixed, untrained kernel and no bias (a gcn's pick of the node-marker feature)."""

    def __init__(self, *, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape: Any) -> None:
        self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[-1]), self.units), initializer="zeros",
                                      trainable=False)

    def call(self, x: Any) -> Any:
        return ops.matmul(x, self.kernel)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


@_register
class ReduceMax(keras.layers.Layer):
    """REDUCE_MAX over ``axes`` (batch axis 0 excluded), keepdims off."""

    def __init__(self, *, axes: tuple[int, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axes = tuple(int(a) for a in axes)

    def call(self, x: Any) -> Any:
        return ops.max(x, axis=self.axes)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axes": list(self.axes)}
