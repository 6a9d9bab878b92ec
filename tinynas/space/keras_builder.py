"""Turn a framework-free ``Graph`` into a trainable ``keras.Model``.

Every op kind of ``space/graph.py`` maps to the Keras layers that the TFLite
converter turns back into that op (stock layers where one exists, else the small
layers of ``space/keras_layers.py``): Conv2D(+BatchNormalization)(+ReLU/ReLU6)
becomes one CONV_2D with a fused activation, GlobalAveragePooling2D becomes
MEAN, Flatten/Reshape becomes RESHAPE. So the int8 model of what this builds
reads back as the same Graph, and the cost model's figures are the converter's.
"""

from __future__ import annotations

from typing import Any

from tinynas.errors import SpaceError
from tinynas.space.graph import Graph, Op


def _activation(keras: Any, name: str | None, x: Any, layer_name: str) -> Any:
    if name is None:
        return x
    if name == "relu":
        return keras.layers.ReLU(name=f"{layer_name}_relu")(x)
    if name == "relu6":
        return keras.layers.ReLU(max_value=6.0, name=f"{layer_name}_relu6")(x)
    raise SpaceError(f"op {layer_name}: unknown activation {name!r}")


def _apply(keras: Any, op: Op, args: list[Any], name: str, graph: Graph) -> Any:
    from tinynas.space import keras_layers as tl

    layers = keras.layers
    a = op.attrs
    kind = op.kind
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        bn = bool(a.get("batch_norm", False))
        if kind == "CONV_2D":
            layer = layers.Conv2D(
                filters=op_out_channels(op, a), kernel_size=tuple(a["kernel"]), strides=tuple(a["stride"]),
                padding=a["padding"], use_bias=not bn, name=name,
            )
        else:
            layer = layers.DepthwiseConv2D(
                kernel_size=tuple(a["kernel"]), strides=_depthwise_strides(op, args[0], name), padding=a["padding"],
                depth_multiplier=int(a.get("depth_multiplier", 1)), use_bias=not bn, name=name,
            )
        x = layer(args[0])
        if bn:
            x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return _activation(keras, a.get("activation"), x, name)
    if kind == "FULLY_CONNECTED" and a.get("fixed"):
        return _fixed_dense(keras, op, args[0], name)
    if kind == "TRANSPOSE" and a.get("batch_axis") is False:
        return args[0]  # the converter's layout around a gcn propagation: Keras keeps (batch, nodes, features)
    if kind == "RESHAPE" and _same_layout(args[0], a):
        return args[0]
    if kind == "REDUCE_MAX":
        return tl.ReduceMax(axes=tuple(a["axes"]), name=name)(args[0])
    if kind == "FULLY_CONNECTED":
        x = layers.Dense(int(a["units"]), name=name)(args[0])
        return _activation(keras, a.get("activation"), x, name)
    if kind == "MUL" and a.get("norm") == "batch":
        return args[0]  # the scale of the BatchNormalization built at the ADD after it
    if kind == "ADD" and a.get("constant") == "batch_norm":
        return layers.BatchNormalization(name=name)(args[0])
    if kind == "ADD" and len(args) == 1:  # a constant operand: epsilon or a learned embedding
        const = next(graph.tensors[n] for n in op.inputs if n and graph.tensors[n].constant)
        if a.get("constant") == "epsilon":
            return tl.AddConstant(value=float(a["value"]), name=name)(args[0])
        return tl.AddConstant(shape=const.shape, name=name)(args[0])
    if kind == "ADD":
        x = layers.Add(name=name)(args)
        return _activation(keras, a.get("activation"), x, name)
    if kind == "SUB":
        return tl.Subtract(name=name)(*args)
    if kind == "SQUARED_DIFFERENCE":
        return tl.SquaredDifference(name=name)(*args)
    if kind == "MUL" and len(args) == 2:
        return tl.BroadcastMultiply(affine=bool(a.get("affine", False)), name=name)(*args)
    if kind == "RSQRT":
        return tl.Rsqrt(name=name)(args[0])
    if kind == "HARD_SWISH":
        return layers.Activation("hard_swish", name=name)(args[0])
    if kind == "BATCH_MATMUL":
        return tl.BatchMatMul(adj_x=bool(a.get("adj_x")), adj_y=bool(a.get("adj_y")), name=name)(*args)
    if kind == "TRANSPOSE":
        return tl.Transpose(perm=tuple(a["perm"]), name=name)(args[0])
    if kind == "CONCATENATION" and len(args) == 1 and int(a.get("axis", 1)) == 1:
        return tl.ClassToken(name=name)(args[0])
    if kind == "STRIDED_SLICE":
        return tl.TakeToken(index=int(a.get("index", 0)), name=name)(args[0])
    if kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        cls = layers.MaxPooling2D if kind == "MAX_POOL_2D" else layers.AveragePooling2D
        return cls(pool_size=tuple(a["pool"]), strides=tuple(a["stride"]), padding=a["padding"], name=name)(args[0])
    if kind == "MEAN":
        axes, keepdims = tuple(a.get("axes", (1, 2))), bool(a.get("keepdims", False))
        if axes == (1, 2) and not keepdims and len(args[0].shape) == 4:
            return layers.GlobalAveragePooling2D(name=name)(args[0])
        return tl.Mean(axes=axes, keepdims=keepdims, name=name)(args[0])
    if kind == "RESHAPE":
        # a batch-less reshape (before a FULLY_CONNECTED, as the converter writes it) is the same
        # Keras reshape: the converter drops the batch axis again
        shape = tuple(a["shape"])
        return layers.Reshape(shape if a.get("batch_axis", True) is False else shape[1:], name=name)(args[0])
    if kind == "SOFTMAX":
        return layers.Softmax(name=name)(args[0])
    if kind == "MUL":  # one activation and a constant scalar
        # Rescaling(scale) converts to one MUL by a constant scalar.
        return layers.Rescaling(scale=float(a["factor"]), name=name)(args[0])
    if kind == "RELU":
        return layers.ReLU(name=name)(args[0])
    if kind == "RELU6":
        return layers.ReLU(max_value=6.0, name=name)(args[0])
    raise SpaceError(f"the Keras builder cannot build op {kind!r} (tensor {name})")


def _same_layout(x: Any, attrs: dict[str, Any]) -> bool:
    """A RESHAPE that only adds or drops the batch axis of the Keras tensor (gcn's layout ops)."""
    shape = tuple(attrs["shape"])
    target = shape if attrs.get("batch_axis", True) is False else shape[1:]
    return tuple(int(d) for d in x.shape[1:]) == target


def _fixed_dense(keras: Any, op: Op, x: Any, name: str) -> Any:
    """A FULLY_CONNECTED with fixed weights (Op.attrs ``fixed``, ``values``) as its Keras layer."""
    import numpy as np

    from tinynas.space import keras_layers as tl

    a = op.attrs
    values = a.get("values")
    if values is None:
        raise SpaceError(
            f"op {name}: its fixed {a['fixed']} weights are unknown; build the gcn space with the dataset's "
            "adjacency (get_space('gcn', ..., adjacency=dataset.adjacency)) to train or convert it")
    values = np.asarray(values, dtype=np.float32)
    if a["fixed"] == "adjacency":
        layer = tl.GraphPropagation(nodes=values.shape[0], name=name)
        out = layer(x)
        layer.a_hat.assign(values)
    elif a["fixed"] == "select_last":
        layer = tl.FixedDense(units=int(a["units"]), name=name)
        out = layer(x)
        layer.kernel.assign(values.T)
    else:
        raise SpaceError(f"op {name}: unknown fixed FULLY_CONNECTED role {a['fixed']!r}")
    return _activation(keras, a.get("activation"), out, name)


def _depthwise_strides(op: Op, x: Any, name: str) -> tuple[int, int]:
    """TensorFlow's depthwise kernel takes only equal strides. A sequence model is
    an Lx1 image, so its (2, 1) stride is spent on a width of 1, where every stride
    gives the same output: use (2, 2) there. Anything else is refused by name."""
    sh, sw = (int(v) for v in op.attrs["stride"])
    if sh == sw:
        return sh, sw
    kh, kw = (int(v) for v in op.attrs["kernel"])
    height, width = int(x.shape[1]), int(x.shape[2])
    if (sw < sh and width == 1 and kw == 1) or (sh < sw and height == 1 and kh == 1):
        s = max(sh, sw)
        return s, s
    raise SpaceError(
        f"op {name}: a depthwise convolution with strides ({sh}, {sw}) on a {height}x{width} input "
        "cannot be built (TensorFlow's depthwise kernel needs equal strides)"
    )


def op_out_channels(op: Op, attrs: dict[str, Any]) -> int:
    if "filters" in attrs:
        return int(attrs["filters"])
    raise SpaceError(f"CONV_2D op producing {op.outputs[0]} lacks its 'filters' attribute")


def build_keras_model(graph: Graph, *, seed: int | None = None) -> Any:
    """A ``keras.Model`` computing ``graph`` in float32 (batch dimension left free).

    ``seed`` makes weight initialisation reproducible. Raises SpaceError for an
    op kind the builder does not know.
    """
    from tinynas.tf_runtime import quiet_import

    quiet_import()
    import keras

    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    if len(graph.inputs) != 1:
        raise SpaceError(f"graph {graph.name!r} must have one input, has {len(graph.inputs)}")
    inp = keras.Input(shape=graph.input_shape[1:], name="input", dtype="float32")
    values: dict[str, Any] = {graph.inputs[0]: inp}
    normalized: dict[str, Any] = {}  # one BatchNormalization per tensor, shared by the ops it feeds
    for op in graph.ops:
        args = [values[n] for n in op.inputs if n and not graph.tensors[n].constant]
        if op.attrs.get("batch_norm_in"):
            src = op.inputs[0]
            if src not in normalized:
                normalized[src] = keras.layers.BatchNormalization(name=f"{src}_bn")(args[0])
            args[0] = normalized[src]
        out = _apply(keras, op, args, op.outputs[0], graph)
        values[op.outputs[0]] = out
    outputs = [values[n] for n in graph.outputs]
    return keras.Model(inputs=inp, outputs=outputs[0] if len(outputs) == 1 else outputs, name=graph.name)
