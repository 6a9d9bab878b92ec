"""A small differentiable interpreter of a ``Graph``: what the zero-cost proxies compute on.

Building a ``keras.Model`` costs 0.2-2 s per architecture, far more than one
forward and backward pass of a tiny network, so the proxies run the Graph's ops
directly with ``tf.nn`` in eager mode on weights held as numpy arrays. The
weights either come from a fresh Keras-style initialisation (glorot-uniform
kernels, zero biases, BN gamma 1 / beta 0 / mean 0 / var 1) or are copied out
of a Keras model that ``build_keras_model`` made from the same Graph; either way
nothing is ever written back, so a model given to a proxy stays unchanged.
Learned embeddings and class tokens (tinyformer) are taken at zero and a
LayerNorm's gamma and beta at 1 and 0: their fresh values are near that, and the
proxies score untrained networks. BatchNormalizations that are not part of a
convolution (tinyformer's norms) live in ``norms``, by the tensor they normalize
(in front of FULLY_CONNECTED layers) or produce (a MUL/ADD pair); they are not
kernels, so the per-weight proxies do not score them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from tinynas.errors import ProxyError
from tinynas.space.graph import Graph

BN_EPSILON = 1e-3  # Keras BatchNormalization's default
BN_MODES = ("inference", "batch", "off")
PARAMETRIC = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@dataclass(frozen=True)
class Batch:
    """Inputs (N, *input_shape) float32 and integer labels (N,) for data-dependent proxies."""

    x: np.ndarray
    y: np.ndarray


def _glorot(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # Glorot & Bengio 2010 uniform, fans as Keras computes them (receptive field x in/out channels).
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return ((rng.random(size=shape, dtype=np.float32) * 2.0 - 1.0) * np.float32(limit)).astype(np.float32)


class GraphNet:
    """Weights for every parametric op of ``graph`` plus a TF forward pass over the Graph's ops.

    ``weights[op_output_name]`` holds ``kernel`` (TF layout: HWIO for CONV_2D,
    HW C M for DEPTHWISE_CONV_2D, (in, units) for FULLY_CONNECTED) and either
    ``bias`` or, with ``batch_norm``, ``gamma``/``beta``/``mean``/``var``.
    """

    def __init__(self, graph: Graph, *, seed: int = 0, weights: dict[str, dict[str, np.ndarray]] | None = None,
                 norms: dict[str, dict[str, np.ndarray]] | None = None):
        self.graph = graph
        for op in graph.ops:
            if op.kind not in _FORWARD:
                raise ProxyError(
                    f"zero-cost proxies cannot run op {op.kind!r} of graph {graph.name!r}; "
                    f"supported: {', '.join(sorted(_FORWARD))}"
                )
        self.weights = weights if weights is not None else self._init(np.random.default_rng(seed))
        self.norms = norms if norms is not None else {
            name: {"gamma": np.ones(dim, np.float32), "beta": np.zeros(dim, np.float32),
                   "mean": np.zeros(dim, np.float32), "var": np.ones(dim, np.float32)}
            for name, dim in _norm_tensors(graph).items()}

    def _init(self, rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
        weights: dict[str, dict[str, np.ndarray]] = {}
        for op in self.graph.ops:
            if op.kind not in PARAMETRIC or op.attrs.get("fixed"):  # gcn's A_hat is not a trained weight
                continue
            cin = self.graph.tensors[op.inputs[0]].shape[-1]
            a = op.attrs
            if op.kind == "CONV_2D":
                kh, kw = a["kernel"]
                shape, cout = (kh, kw, cin, int(a["filters"])), int(a["filters"])
            elif op.kind == "DEPTHWISE_CONV_2D":
                kh, kw = a["kernel"]
                dm = int(a.get("depth_multiplier", 1))
                shape, cout = (kh, kw, cin, dm), cin * dm
            else:
                shape, cout = (cin, int(a["units"])), int(a["units"])
            w = {"kernel": _glorot(rng, shape)}
            if a.get("batch_norm", False):
                w.update(gamma=np.ones(cout, np.float32), beta=np.zeros(cout, np.float32),
                         mean=np.zeros(cout, np.float32), var=np.ones(cout, np.float32))
            else:
                w["bias"] = np.zeros(cout, np.float32)
            weights[op.outputs[0]] = w
        return weights

    @classmethod
    def from_keras(cls, model: Any, graph: Graph) -> "GraphNet":
        """Copy (never alias) the weights of a model made by ``build_keras_model(graph)``.

        Raises ProxyError when a layer the Graph needs is missing from the model.
        """
        weights: dict[str, dict[str, np.ndarray]] = {}
        for op in graph.ops:
            if op.kind not in PARAMETRIC or op.attrs.get("fixed"):
                continue
            name = op.outputs[0]
            try:
                layer = model.get_layer(name)
            except ValueError:
                raise ProxyError(
                    f"Keras model {model.name!r} has no layer {name!r}: score models built by "
                    "tinynas.space.keras_builder.build_keras_model from the same Graph"
                ) from None
            vals = [np.array(v, dtype=np.float32, copy=True) for v in layer.get_weights()]
            w = {"kernel": vals[0]}
            if op.attrs.get("batch_norm", False):
                g, b, m, v = (np.array(t, dtype=np.float32, copy=True) for t in model.get_layer(f"{name}_bn").get_weights())
                w.update(gamma=g, beta=b, mean=m, var=v)
            else:
                w["bias"] = vals[1] if len(vals) > 1 else np.zeros(vals[0].shape[-1], np.float32)
            weights[name] = w
        norms = {}
        for tensor in _norm_tensors(graph):
            layer = tensor if tensor in {op.outputs[0] for op in graph.ops if _is_norm_shift(op)} else f"{tensor}_bn"
            try:
                g, b, m, v = (np.array(t, dtype=np.float32, copy=True) for t in model.get_layer(layer).get_weights())
            except ValueError:
                raise ProxyError(f"Keras model {model.name!r} has no BatchNormalization {layer!r}: score models built "
                                 "by tinynas.space.keras_builder.build_keras_model from the same Graph") from None
            norms[tensor] = dict(gamma=g, beta=b, mean=m, var=v)
        return cls(graph, weights=weights, norms=norms)

    def kernel_names(self) -> list[str]:
        """The ops whose kernels the per-weight proxies score (conv, depthwise, dense: as in Abdelfattah et al.)."""
        return list(self.weights)

    def params(self, dtype: Any, *, transform: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, dict[str, Any]]:
        """Fresh TF tensors of the weights in ``dtype`` (the numpy arrays are never modified)."""
        import tensorflow as tf

        out: dict[str, dict[str, Any]] = {}
        for name, w in self.weights.items():
            out[name] = {}
            for key, value in w.items():
                value = transform(value) if transform is not None and key == "kernel" else value
                out[name][key] = tf.constant(value, dtype=dtype)
        return out

    def forward(
        self,
        x: Any,
        params: dict[str, dict[str, Any]],
        *,
        bn: str = "inference",
        taps: dict[str, list[Any]] | None = None,
        linear: bool = False,
    ) -> Any:
        """Logits (the final SOFTMAX is skipped) of the batch ``x``.

        ``bn``: ``inference`` uses the stored mean/var, ``batch`` the batch
        statistics (training mode), ``off`` bypasses BatchNorm (SynFlow). With
        ``taps`` given, fills ``pre_act`` (inputs of every ReLU), ``layer_out``
        (every conv/dense output before BN), ``bn_var`` (batch variance per BN)
        and ``features`` (the tensor entering the global pool). ``linear``
        makes every ReLU/ReLU6 the identity: SynFlow's linearised network, where
        all values are positive anyway and a ReLU6 would otherwise clip.
        """
        import tensorflow as tf

        if bn not in BN_MODES:
            raise ProxyError(f"bn must be one of {BN_MODES}, got {bn!r}")
        ctx = {"bn": bn, "taps": taps, "linear": linear, "norms": self.norms, "normalized": {}}
        values: dict[str, Any] = {self.graph.inputs[0]: x}
        out_name = self.graph.outputs[0]
        for op in self.graph.ops:
            args = [values[n] for n in op.inputs if n and not self.graph.tensors[n].constant]
            if op.kind == "SOFTMAX" and op.outputs[0] == out_name:
                values[out_name] = args[0]
                continue
            values[op.outputs[0]] = _FORWARD[op.kind](tf, op, args, params.get(op.outputs[0]), ctx)
        return values[out_name]


# -- one function per op kind -------------------------------------------------------

def _act(tf: Any, y: Any, activation: str | None, ctx: dict) -> Any:
    taps = ctx["taps"]
    if activation is None or ctx["linear"]:
        return y
    if taps is not None:
        taps.setdefault("pre_act", []).append(y)
    return tf.nn.relu(y) if activation == "relu" else tf.clip_by_value(y, 0.0, 6.0) if activation == "relu6" else y


def _bn(tf: Any, y: Any, w: dict, ctx: dict) -> Any:
    mode, taps = ctx["bn"], ctx["taps"]
    axes = list(range(len(y.shape) - 1))
    if mode == "off":
        return y
    if mode == "batch":
        mean, var = tf.nn.moments(y, axes=axes)
        if taps is not None:
            taps.setdefault("bn_var", []).append(var)
    else:
        mean, var = w["mean"], w["var"]
    return tf.nn.batch_normalization(y, mean, var, w["beta"], w["gamma"], BN_EPSILON)


def _conv(tf: Any, op: Any, args: list, w: dict, ctx: dict) -> Any:
    a = op.attrs
    sh, sw = a["stride"]
    if op.kind == "CONV_2D":
        y = tf.nn.conv2d(args[0], w["kernel"], strides=[1, sh, sw, 1], padding=a["padding"].upper())
    elif sh == sw:
        y = tf.nn.depthwise_conv2d(args[0], w["kernel"], strides=[1, sh, sw, 1], padding=a["padding"].upper())
    else:
        y = _depthwise_unequal_strides(tf, args[0], w["kernel"], (sh, sw), a["padding"])
    if ctx["taps"] is not None:
        ctx["taps"].setdefault("layer_out", []).append(y)
    y = _bn(tf, y, w, ctx) if "gamma" in w else y + w["bias"]
    return _act(tf, y, a.get("activation"), ctx)


def _depthwise_unequal_strides(tf: Any, x: Any, kernel: Any, stride: tuple[int, int], padding: str) -> Any:
    """TF's CPU depthwise kernel refuses unequal strides (1-D nets use (2, 1)): pad as SAME would,
    run at stride 1 VALID and keep every stride-th output, which picks exactly the same windows."""
    kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
    _, h, w, _ = x.shape
    pads = [[0, 0]]
    for size, k, s in ((h, kh, stride[0]), (w, kw, stride[1])):
        out = -(-size // s) if padding == "same" else (size - k) // s + 1
        total = max((out - 1) * s + k - size, 0) if padding == "same" else 0
        pads.append([total // 2, total - total // 2])
    pads.append([0, 0])
    y = tf.nn.depthwise_conv2d(tf.pad(x, pads), kernel, strides=[1, 1, 1, 1], padding="VALID")
    return y[:, :: stride[0], :: stride[1], :]


def _dense(tf: Any, op: Any, args: list, w: dict, ctx: dict) -> Any:
    y = tf.matmul(args[0], w["kernel"])
    if ctx["taps"] is not None:
        ctx["taps"].setdefault("layer_out", []).append(y)
    return _act(tf, y + w["bias"], op.attrs.get("activation"), ctx)


def _pool(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    a = op.attrs
    fn = tf.nn.max_pool2d if op.kind == "MAX_POOL_2D" else tf.nn.avg_pool2d
    return fn(args[0], ksize=list(a["pool"]), strides=list(a["stride"]), padding=a["padding"].upper())


def _mean(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    if ctx["taps"] is not None and not op.attrs.get("keepdims"):  # a pool, not a LayerNorm's statistics
        ctx["taps"].setdefault("features", []).append(args[0])
    return tf.reduce_mean(args[0], axis=list(op.attrs.get("axes", (1, 2))), keepdims=bool(op.attrs.get("keepdims")))


def _reshape(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    if ctx["taps"] is not None and len(args[0].shape) == 4 and len(op.attrs["shape"]) <= 2:  # a flatten
        ctx["taps"].setdefault("features", []).append(args[0])
    return tf.reshape(args[0], (-1, *tuple(op.attrs["shape"])[1:]))


def _add(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    y = args[0]
    for other in args[1:]:
        y = y + other
    return _act(tf, y, op.attrs.get("activation"), ctx)


def _mul(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    if op.attrs.get("norm") == "batch":
        return args[0]  # the scale of a BatchNormalization: all of it is applied at its ADD
    if len(args) == 2:  # two activations (a LayerNorm's scaling), broadcasting
        return args[0] * args[1]
    return args[0] * float(op.attrs["factor"])


def _add_or_constant(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    if _is_norm_shift(op):
        return _norm(tf, op.outputs[0], args[0], ctx)
    if len(args) == 1:  # a constant operand: epsilon, or a learned embedding (zero when fresh)
        return args[0] + float(op.attrs.get("value", 0.0)) if op.attrs.get("constant") == "epsilon" else args[0]
    if len(args[0].shape) != len(args[1].shape):  # the converter's batch-less (T, D) projection output
        args = [tf.reshape(a, (-1, *args[0].shape[1:])) if len(a.shape) < len(args[0].shape) else a for a in args]
        args = [tf.reshape(a, (-1, *args[1].shape[1:])) if len(a.shape) < len(args[1].shape) else a for a in args]
    return _add(tf, op, args, w, ctx)


def _norm_tensors(graph: Graph) -> dict[str, int]:
    """The tensors a stand-alone BatchNormalization normalizes (an input of FULLY_CONNECTED layers with
    ``batch_norm_in``) or produces (the ADD of a MUL/ADD pair), with their channel count."""
    out: dict[str, int] = {}
    for op in graph.ops:
        if op.attrs.get("batch_norm_in"):
            out[op.inputs[0]] = graph.tensors[op.inputs[0]].shape[-1]
        elif _is_norm_shift(op):
            out[op.outputs[0]] = graph.tensors[op.outputs[0]].shape[-1]
    return out


def _is_norm_shift(op: Any) -> bool:
    return op.kind == "ADD" and op.attrs.get("constant") == "batch_norm"


def _norm(tf: Any, name: str, y: Any, ctx: dict) -> Any:
    """The BatchNormalization ``norms[name]`` of ``y``, once per forward pass (Q, K and V share it)."""
    done = ctx["normalized"]
    if name not in done:
        w = {k: tf.cast(v, y.dtype) for k, v in ctx["norms"][name].items()}
        done[name] = _bn(tf, y, w, ctx)
    return done[name]


def _dense_nd(tf: Any, op: Any, args: list, w: dict, ctx: dict) -> Any:
    if op.attrs.get("fixed"):
        return _fixed_dense(tf, op, args, ctx)
    if op.attrs.get("batch_norm_in"):
        args = [_norm(tf, op.inputs[0], args[0], ctx)]
    if len(args[0].shape) <= 2:
        return _dense(tf, op, args, w, ctx)
    y = tf.tensordot(args[0], w["kernel"], axes=1)  # tokens (N, T, D): the same weights per token
    if ctx["taps"] is not None:
        ctx["taps"].setdefault("layer_out", []).append(y)
    return _act(tf, y + w["bias"], op.attrs.get("activation"), ctx)


def _fixed_dense(tf: Any, op: Any, args: list, ctx: dict) -> Any:
    """gcn's fixed FULLY_CONNECTEDs on the (N, nodes, features) layout the Keras model keeps (its
    batch-less TRANSPOSEs are the identity here): A_hat over the node axis, or the marker pick."""
    values = op.attrs.get("values")
    if values is None:
        raise ProxyError(f"op {op.outputs[0]}: gcn's fixed {op.attrs['fixed']} weights are unknown; build the "
                         "space with the dataset's adjacency to score it")
    if op.attrs["fixed"] == "adjacency":
        y = tf.einsum("ij,bjd->bid", tf.constant(values, dtype=args[0].dtype), args[0])
        return _act(tf, y, op.attrs.get("activation"), ctx)
    return tf.tensordot(args[0], tf.constant(np.asarray(values).T, dtype=args[0].dtype), axes=1)


def _transpose_any(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    if op.attrs.get("batch_axis") is False:  # gcn's layout around A_hat: see _fixed_dense
        return args[0]
    return _transpose(tf, op, args, w, ctx)


def _reduce_max(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    if ctx["taps"] is not None:
        ctx["taps"].setdefault("features", []).append(args[0])
    return tf.reduce_max(args[0], axis=list(op.attrs["axes"]))


def _reshape_any(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    if op.attrs.get("batch_axis", True) is False:  # the shape has no batch axis
        return tf.reshape(args[0], (-1, *tuple(op.attrs["shape"])))
    return _reshape(tf, op, args, w, ctx)


def _sub(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    return args[0] - args[1]


def _squared_difference(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    return tf.math.squared_difference(args[0], args[1])


def _rsqrt(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    return tf.math.rsqrt(args[0])


def _hard_swish(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    x = args[0]
    if ctx["linear"]:
        return x
    if ctx["taps"] is not None:  # NASWOT's codes: which units are on, as for a ReLU
        ctx["taps"].setdefault("pre_act", []).append(x)
    return x * tf.nn.relu6(x + 3.0) / 6.0


def _batch_matmul(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    return tf.linalg.matmul(args[0], args[1], transpose_a=bool(op.attrs.get("adj_x")),
                            transpose_b=bool(op.attrs.get("adj_y")))


def _transpose(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    return tf.transpose(args[0], perm=list(op.attrs["perm"]))


def _class_token(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    x = args[0]
    return tf.concat([tf.zeros_like(x[:, :1]), x], axis=int(op.attrs.get("axis", 1)))


def _take_token(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    if ctx["taps"] is not None:
        ctx["taps"].setdefault("features", []).append(args[0])
    return args[0][:, int(op.attrs.get("index", 0)), :]


def _relu(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    return _act(tf, args[0], "relu6" if op.kind == "RELU6" else "relu", ctx)


def _softmax(tf: Any, op: Any, args: list, w: Any, ctx: dict) -> Any:
    return tf.nn.softmax(args[0] * float(op.attrs.get("beta", 1.0)))


_FORWARD: dict[str, Callable[..., Any]] = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _conv,
    "FULLY_CONNECTED": _dense_nd,
    "MAX_POOL_2D": _pool,
    "AVERAGE_POOL_2D": _pool,
    "MEAN": _mean,
    "RESHAPE": _reshape_any,
    "ADD": _add_or_constant,
    "SUB": _sub,
    "SQUARED_DIFFERENCE": _squared_difference,
    "RSQRT": _rsqrt,
    "HARD_SWISH": _hard_swish,
    "BATCH_MATMUL": _batch_matmul,
    "TRANSPOSE": _transpose_any,
    "REDUCE_MAX": _reduce_max,
    "CONCATENATION": _class_token,
    "STRIDED_SLICE": _take_token,
    "MUL": _mul,
    "RELU": _relu,
    "RELU6": _relu,
    "SOFTMAX": _softmax,
}
