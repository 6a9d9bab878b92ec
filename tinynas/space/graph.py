"""The framework-free graph IR shared by spaces, the cost model, the Keras builder
and the ``.tflite`` reader.

A ``Graph`` mirrors one TFLite subgraph after conversion: tensors with shapes and
dtypes (batch dimension included, always 1), and operators named by their TFLite
builtin name (``CONV_2D``, ``DEPTHWISE_CONV_2D``, ...). Constant tensors
(weights, biases, shape and axis operands) live in flash; the rest are
activations that TFLite Micro plans into its arena. Because the IR is what the
converter produces, the cost model can count exactly what TFLM allocates, and a
``.tflite`` file read back gives the same kind of Graph.

Op attributes (``Op.attrs``), by kind:
  CONV_2D / DEPTHWISE_CONV_2D: filters (CONV_2D only), kernel (kh, kw), stride (sh, sw), padding
    ("same"|"valid"), activation (None|"relu"|"relu6"), batch_norm (bool: the
    Keras model has a BatchNormalization that the converter folds);
    DEPTHWISE_CONV_2D also depth_multiplier.
  FULLY_CONNECTED: units, activation; ``batch_norm_in`` (bool: the Keras model normalizes the input
    with a BatchNormalization, one per input tensor, that the converter folds into the weights).
  MAX_POOL_2D / AVERAGE_POOL_2D: pool (ph, pw), stride, padding.
  MEAN: axes, keepdims.   RESHAPE: shape.   SOFTMAX: beta.
  ADD: activation; with a constant operand also ``constant``: "epsilon" (a fixed scalar,
    ``value``), "learned" (a trained tensor, e.g. a learned positional embedding) or "batch_norm"
    (the shift of an inference BatchNormalization, whose scale is the MUL before it).
  RELU / RELU6 / HARD_SWISH / RSQRT: nothing.
  MUL: factor (a constant scalar operand; NAS-Bench-201 uses factor 0 for a cell whose
    output node receives no edge, the 'none' op of the paper); or, between two
    activations with broadcasting, ``affine`` (bool: the Keras layer also applies a
    LayerNorm's gamma and beta, which the converter folds into the FULLY_CONNECTED after it); or, by a
    per-channel constant, ``norm`` "batch" (an inference BatchNormalization's scale; its shift is the
    ADD after it, where the Keras builder puts the one BatchNormalization layer).
  SUB / SQUARED_DIFFERENCE: nothing (two activations, numpy broadcasting).
  BATCH_MATMUL: adj_x, adj_y (TFLite's flags: the operand is given transposed in its last
    two axes; TFLM copies a RHS without adj_y into a persistent buffer, so spaces use adj_y).
  TRANSPOSE: perm (``batch_axis=False``: a batch-less tensor, every axis may move).
  FULLY_CONNECTED with ``fixed``: weights that are not trained and no bias (gcn: "adjacency" for
    A_hat, "select_last" for the node marker); ``values`` holds them (None when only costing).
  REDUCE_MAX: axes, keepdims (False).   CONCATENATION: axis (a space's learned class token is the constant
    first operand).   STRIDED_SLICE: index (the token kept along axis 1; the axis is dropped).

Ops work on any rank: FULLY_CONNECTED on (1, T, D) tokens keeps the token axis, as the
converter's FULLY_CONNECTED with keep_num_dims does. A RESHAPE may drop the batch axis
(``batch_axis=False``): the converter writes a FULLY_CONNECTED after a reshape that way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from tinynas.errors import SpaceError

DTYPE_BYTES: dict[str, int] = {
    "int8": 1,
    "uint8": 1,
    "bool": 1,
    "int16": 2,
    "float16": 2,
    "int32": 4,
    "float32": 4,
    "int64": 8,
    "float64": 8,
}

ACTIVATIONS = (None, "relu", "relu6")


@dataclass(slots=True)
class Tensor:
    """One tensor: ``constant`` ones are stored in the model (flash), others planned in the arena.

    ``quant_channels`` is how many (scale, zero point) pairs its quantization
    carries: 1 per tensor, the channel count for per-channel conv weights and
    biases, 0 for unquantized tensors (int32 shape operands).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "int8"
    constant: bool = False
    quant_channels: int = 1

    @property
    def size(self) -> int:
        return math.prod(self.shape) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * DTYPE_BYTES[self.dtype]


@dataclass(slots=True)
class Op:
    """One operator, named by its TFLite builtin name; inputs/outputs are tensor names."""

    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Graph:
    """Tensors by name, operators in execution order, and the graph's input/output tensors."""

    tensors: dict[str, Tensor]
    ops: list[Op]
    inputs: list[str]
    outputs: list[str]
    name: str = "model"
    # True when a space already emits its ops in the converter's order (gcn: checked op by op
    # against the converter), so the cost model must not re-derive that order
    converter_ordered: bool = False

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def activation_inputs(self, op: Op) -> list[Tensor]:
        return [self.tensors[n] for n in op.inputs if n and not self.tensors[n].constant]

    def constant_inputs(self, op: Op) -> list[Tensor]:
        return [self.tensors[n] for n in op.inputs if n and self.tensors[n].constant]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.tensors[self.inputs[0]].shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.tensors[self.outputs[0]].shape

    def op_kinds(self) -> list[str]:
        """Distinct builtin op kinds in first-use order (what an op resolver must register)."""
        seen: dict[str, None] = {}
        for op in self.ops:
            seen.setdefault(op.kind, None)
        return list(seen)


def conv_output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """TFLite's output size rule for SAME and VALID padding."""
    if padding == "same":
        return -(-size // stride)
    if padding == "valid":
        out = (size - kernel) // stride + 1
        if out < 1:
            raise SpaceError(f"kernel {kernel} with VALID padding does not fit an input of size {size}")
        return out
    raise SpaceError(f"padding must be 'same' or 'valid', got {padding!r}")


class GraphBuilder:
    """Builds a Graph the way the TFLite converter would lay out a Keras model.

    Spaces call these methods on an input tensor name and get the output tensor
    name back; each call adds the operator and its constant operands (int8
    weights with per-channel quantization, int32 biases) as the converter does.
    """

    def __init__(self, *, input_shape: Sequence[int], name: str = "model") -> None:
        if any(int(d) < 1 for d in input_shape):
            raise SpaceError(f"input shape must be positive, got {tuple(input_shape)}")
        self.name = name
        self.tensors: dict[str, Tensor] = {}
        self.ops: list[Op] = []
        self._count = 0
        self._shared: dict[tuple, str] = {}
        self.input = self._tensor("input", (1, *(int(d) for d in input_shape)))

    # -- plumbing -------------------------------------------------------------
    def _tensor(self, stem: str, shape: tuple[int, ...], **kw: Any) -> str:
        name = f"{stem}_{self._count}" if stem != "input" else "input"
        self._count += 1
        self.tensors[name] = Tensor(name=name, shape=tuple(int(d) for d in shape), **kw)
        return name

    def _shared_constant(self, key: tuple, stem: str, shape: tuple[int, ...], **kw: Any) -> str:
        """One constant tensor per value: the converter stores identical constants (shape, axis
        and perm operands, a LayerNorm's epsilon) once and lets every op read that tensor."""
        name = self._shared.get(key)
        if name is None:
            name = self._shared[key] = self._tensor(stem, shape, constant=True, **kw)
        return name

    def _op(self, kind: str, inputs: Iterable[str], out_shape: tuple[int, ...], **attrs: Any) -> str:
        out = self._tensor(kind.lower(), out_shape)
        self.ops.append(Op(kind=kind, inputs=tuple(inputs), outputs=(out,), attrs=attrs))
        return out

    def shape(self, name: str) -> tuple[int, ...]:
        return self.tensors[name].shape

    @staticmethod
    def _check_activation(activation: str | None) -> None:
        if activation not in ACTIVATIONS:
            raise SpaceError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")

    # -- layers ---------------------------------------------------------------
    def conv2d(
        self,
        x: str,
        *,
        filters: int,
        kernel: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: str = "same",
        activation: str | None = "relu6",
        batch_norm: bool = True,
    ) -> str:
        self._check_activation(activation)
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
        _, h, w, c = self.shape(x)
        oh, ow = conv_output_size(h, kh, sh, padding), conv_output_size(w, kw, sw, padding)
        wt = self._tensor("conv_w", (filters, kh, kw, c), constant=True, quant_channels=filters)
        b = self._tensor("conv_b", (filters,), dtype="int32", constant=True, quant_channels=filters)
        return self._op(
            "CONV_2D", (x, wt, b), (1, oh, ow, filters),
            filters=filters, kernel=(kh, kw), stride=(sh, sw), padding=padding, activation=activation,
            batch_norm=batch_norm,
        )

    def depthwise_conv2d(
        self,
        x: str,
        *,
        kernel: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: str = "same",
        depth_multiplier: int = 1,
        activation: str | None = "relu6",
        batch_norm: bool = True,
    ) -> str:
        self._check_activation(activation)
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
        _, h, w, c = self.shape(x)
        oc = c * depth_multiplier
        oh, ow = conv_output_size(h, kh, sh, padding), conv_output_size(w, kw, sw, padding)
        wt = self._tensor("dw_w", (1, kh, kw, oc), constant=True, quant_channels=oc)
        b = self._tensor("dw_b", (oc,), dtype="int32", constant=True, quant_channels=oc)
        return self._op(
            "DEPTHWISE_CONV_2D", (x, wt, b), (1, oh, ow, oc),
            kernel=(kh, kw), stride=(sh, sw), padding=padding, depth_multiplier=depth_multiplier,
            activation=activation, batch_norm=batch_norm,
        )

    def pool2d(
        self, x: str, *, kind: str = "max", pool: int | tuple[int, int] = 2,
        stride: int | tuple[int, int] | None = None, padding: str = "valid",
    ) -> str:
        ph, pw = (pool, pool) if isinstance(pool, int) else pool
        stride = (ph, pw) if stride is None else stride
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
        _, h, w, c = self.shape(x)
        oh, ow = conv_output_size(h, ph, sh, padding), conv_output_size(w, pw, sw, padding)
        op_kind = {"max": "MAX_POOL_2D", "avg": "AVERAGE_POOL_2D"}.get(kind)
        if op_kind is None:
            raise SpaceError(f"pool kind must be 'max' or 'avg', got {kind!r}")
        return self._op(op_kind, (x,), (1, oh, ow, c), pool=(ph, pw), stride=(sh, sw), padding=padding)

    def global_avg_pool(self, x: str) -> str:
        """Keras GlobalAveragePooling2D: the converter emits MEAN over axes (1, 2)."""
        _, _, _, c = self.shape(x)
        axes = self._tensor("axes", (2,), dtype="int32", constant=True, quant_channels=0)
        return self._op("MEAN", (x, axes), (1, c), axes=(1, 2), keepdims=False)

    def reshape(self, x: str, shape: Sequence[int], *, batch_axis: bool = True) -> str:
        """RESHAPE to ``shape``; ``batch_axis=False`` when the converter writes it without the
        batch axis (before a FULLY_CONNECTED, see the module docstring)."""
        shape = tuple(int(d) for d in shape)
        if math.prod(shape) != self.tensors[x].size:
            raise SpaceError(f"cannot reshape {self.shape(x)} to {shape}")
        target = self._shared_constant(("shape", shape), "shape", (len(shape),), dtype="int32", quant_channels=0)
        if batch_axis:
            return self._op("RESHAPE", (x, target), shape, shape=shape)
        return self._op("RESHAPE", (x, target), shape, shape=shape, batch_axis=False)

    def flatten(self, x: str) -> str:
        return self.reshape(x, (1, self.tensors[x].size))

    def fully_connected(self, x: str, *, units: int, activation: str | None = None,
                        batch_norm_in: bool = False) -> str:
        """``batch_norm_in``: a BatchNormalization of ``x`` in front (shared by every FULLY_CONNECTED that
        reads ``x`` with it); the converter folds it into the weights and bias, so it adds no op."""
        self._check_activation(activation)
        n_in = self.shape(x)[-1]
        # The TF 2.21 converter quantizes FULLY_CONNECTED weights per output channel.
        wt = self._tensor("fc_w", (units, n_in), constant=True, quant_channels=units)
        b = self._tensor("fc_b", (units,), dtype="int32", constant=True, quant_channels=units)
        # on tokens (1, T, D) the converter keeps the leading axes (keep_num_dims)
        out = (*self.shape(x)[:-1], units)
        attrs: dict[str, Any] = {"batch_norm_in": True} if batch_norm_in else {}
        return self._op("FULLY_CONNECTED", (x, wt, b), out, units=units, activation=activation, **attrs)

    def add(self, a: str, b: str, *, activation: str | None = None) -> str:
        """ADD of two activations: equal shapes, or shapes that broadcast to the larger one (a
        token map (1, T, D) and the converter's batch-less (T, D) output of a projection)."""
        self._check_activation(activation)
        out = self._broadcast("ADD", a, b)
        if out != self.shape(a) and out != self.shape(b):
            raise SpaceError(f"ADD needs shapes of which one broadcasts to the other, got "
                             f"{self.shape(a)} and {self.shape(b)}")
        return self._op("ADD", (a, b), out, activation=activation)

    def _broadcast(self, kind: str, a: str, b: str) -> tuple[int, ...]:
        """numpy's broadcast of the two operands' shapes; SpaceError naming ``kind`` if they do not."""
        sa, sb = self.shape(a), self.shape(b)
        rank = max(len(sa), len(sb))
        pa, pb = (1,) * (rank - len(sa)) + sa, (1,) * (rank - len(sb)) + sb
        out = []
        for da, db in zip(pa, pb):
            if da != db and 1 not in (da, db):
                raise SpaceError(f"{kind} operands {sa} and {sb} do not broadcast")
            out.append(max(da, db))
        return tuple(out)

    def add_constant(self, x: str, *, shape: Sequence[int], constant: str, value: float | None = None) -> str:
        """ADD of a constant operand of ``shape``: a fixed scalar (``constant="epsilon"``, ``value``)
        or a trained tensor (``constant="learned"``: a learned positional embedding)."""
        if constant not in ("epsilon", "learned"):
            raise SpaceError(f"add_constant: constant must be 'epsilon' or 'learned', got {constant!r}")
        if constant == "epsilon":
            k = self._shared_constant(("epsilon", value, tuple(shape)), "add_k", tuple(shape), quant_channels=1)
        else:
            k = self._tensor("add_k", tuple(shape), constant=True, quant_channels=1)
        self._broadcast("ADD", x, k)
        attrs: dict[str, Any] = {"activation": None, "constant": constant}
        if value is not None:
            attrs["value"] = float(value)
        return self._op("ADD", (x, k), self.shape(x), **attrs)

    def sub(self, a: str, b: str) -> str:
        return self._op("SUB", (a, b), self._broadcast("SUB", a, b), activation=None)

    def squared_difference(self, a: str, b: str) -> str:
        return self._op("SQUARED_DIFFERENCE", (a, b), self._broadcast("SQUARED_DIFFERENCE", a, b))

    def mul(self, a: str, b: str, *, affine: bool = False) -> str:
        """MUL of two activations with broadcasting; ``affine`` as in the module docstring."""
        return self._op("MUL", (a, b), self._broadcast("MUL", a, b), activation=None, affine=bool(affine))

    def rsqrt(self, x: str) -> str:
        return self._op("RSQRT", (x,), self.shape(x))

    def hard_swish(self, x: str) -> str:
        return self._op("HARD_SWISH", (x,), self.shape(x))

    def mean(self, x: str, *, axes: Sequence[int], keepdims: bool) -> str:
        """MEAN over ``axes`` (numbered with the batch axis as 0, which is never reduced). The converter
        writes the axis operand of a kept-dims mean over one axis as a scalar, otherwise as a vector."""
        shape = self.shape(x)
        axes = tuple(sorted(int(a) % len(shape) for a in axes))
        if not axes or 0 in axes:
            raise SpaceError(f"MEAN must reduce axes other than the batch axis, got {axes}")
        out = tuple(1 if i in axes else d for i, d in enumerate(shape)) if keepdims else tuple(
            d for i, d in enumerate(shape) if i not in axes)
        axes_shape = () if keepdims and len(axes) == 1 else (len(axes),)
        ax = self._shared_constant(("axes", axes, axes_shape), "axes", axes_shape, dtype="int32", quant_channels=0)
        return self._op("MEAN", (x, ax), out, axes=axes, keepdims=bool(keepdims))

    def transpose(self, x: str, *, perm: Sequence[int], batch_axis: bool = True) -> str:
        """TRANSPOSE by ``perm``; ``batch_axis=False`` for a batch-less tensor (the converter's layout
        around a gcn propagation), whose perm then moves every axis."""
        shape = self.shape(x)
        perm = tuple(int(p) for p in perm)
        if sorted(perm) != list(range(len(shape))) or (batch_axis and perm[0] != 0):
            raise SpaceError(f"TRANSPOSE perm must permute the axes of {shape} and keep the batch axis first, "
                             f"got {perm}")
        p = self._shared_constant(("perm", perm), "perm", (len(perm),), dtype="int32", quant_channels=0)
        if batch_axis:
            return self._op("TRANSPOSE", (x, p), tuple(shape[i] for i in perm), perm=perm)
        return self._op("TRANSPOSE", (x, p), tuple(shape[i] for i in perm), perm=perm, batch_axis=False)

    def fixed_fully_connected(self, x: str, *, units: int, role: str, values: Any = None,
                              activation: str | None = None) -> str:
        """FULLY_CONNECTED with fixed, untrained weights of shape (units, in) and no bias: a gcn's
        normalized adjacency (``role="adjacency"``) or its node-marker pick (``role="select_last"``).
        ``values`` is the float weight matrix the Keras builder bakes in (None when only costing)."""
        self._check_activation(activation)
        n_in = self.shape(x)[-1]
        # the converter stores equal weights once: every layer's A_hat is one tensor
        wt = self._shared_constant(("fixed", role, units, n_in), "fc_fixed_w", (units, n_in), quant_channels=units)
        out = (*self.shape(x)[:-1], units)
        return self._op("FULLY_CONNECTED", (x, wt), out, units=units, activation=activation, fixed=role,
                        values=values)

    def reduce_max(self, x: str, *, axes: Sequence[int]) -> str:
        """REDUCE_MAX over ``axes`` (batch axis 0 never reduced), keepdims off: a gcn's max readout."""
        shape = self.shape(x)
        axes = tuple(sorted(int(a) % len(shape) for a in axes))
        if not axes or 0 in axes:
            raise SpaceError(f"REDUCE_MAX must reduce axes other than the batch axis, got {axes}")
        ax = self._shared_constant(("axes", axes, (len(axes),)), "axes", (len(axes),), dtype="int32",
                                   quant_channels=0)
        out = tuple(d for i, d in enumerate(shape) if i not in axes)
        return self._op("REDUCE_MAX", (x, ax), out, axes=axes, keepdims=False)

    def batch_matmul(self, a: str, b: str, *, adj_x: bool = False, adj_y: bool = False) -> str:
        """BATCH_MATMUL of two activations of equal rank and batch axes: (..., M, K) x (..., K, N)
        -> (..., M, N), with ``adj_x``/``adj_y`` saying an operand is stored transposed."""
        sa, sb = self.shape(a), self.shape(b)
        if len(sa) != len(sb) or len(sa) < 3 or sa[:-2] != sb[:-2]:
            raise SpaceError(f"BATCH_MATMUL needs operands of equal rank (>= 3) and batch axes, got {sa} and {sb}")
        m, k = (sa[-1], sa[-2]) if adj_x else (sa[-2], sa[-1])
        k2, n = (sb[-1], sb[-2]) if adj_y else (sb[-2], sb[-1])
        if k != k2:
            raise SpaceError(f"BATCH_MATMUL inner sizes differ: {sa} (adj_x={adj_x}) x {sb} (adj_y={adj_y})")
        return self._op("BATCH_MATMUL", (a, b), (*sa[:-2], m, n), adj_x=bool(adj_x), adj_y=bool(adj_y))

    def concat_constant(self, x: str, *, length: int = 1, axis: int = 1) -> str:
        """CONCATENATION of a learned constant (``length`` tokens) in front of ``x`` along ``axis``:
        a class token."""
        shape = self.shape(x)
        const_shape = tuple(length if i == axis else d for i, d in enumerate(shape))
        k = self._tensor("concat_k", const_shape, constant=True, quant_channels=1)
        out = tuple(d + length if i == axis else d for i, d in enumerate(shape))
        return self._op("CONCATENATION", (k, x), out, axis=axis, activation=None)

    def take_token(self, x: str, *, index: int = 0) -> str:
        """STRIDED_SLICE keeping token ``index`` of a (1, T, D) map and dropping the token axis."""
        one, length, dim = self.shape(x)
        if not 0 <= index < length:
            raise SpaceError(f"take_token: index {index} outside {length} tokens")
        consts = [self._tensor(stem, (3,), dtype="int32", constant=True, quant_channels=0)
                  for stem in ("begin", "end", "strides")]
        return self._op("STRIDED_SLICE", (x, *consts), (one, dim), index=int(index))

    def scale(self, x: str, *, factor: float) -> str:
        """Multiply by a constant scalar: TFLite MUL with a one-element constant operand."""
        k = self._tensor("mul_k", (1,), constant=True, quant_channels=1)
        return self._op("MUL", (x, k), self.shape(x), factor=float(factor))

    def batch_norm(self, x: str) -> str:
        """BatchNormalization over the last axis at inference: what the converter writes for one that
        no convolution absorbs, a MUL and an ADD by per-channel constants (both int8 in TFLM)."""
        dim = self.shape(x)[-1]
        scale = self._tensor("bn_scale", (dim,), constant=True, quant_channels=1)
        y = self._op("MUL", (x, scale), self.shape(x), norm="batch")
        shift = self._tensor("bn_shift", (dim,), constant=True, quant_channels=1)
        return self._op("ADD", (y, shift), self.shape(x), activation=None, constant="batch_norm")

    def relu(self, x: str, *, max_value: float | None = None) -> str:
        return self._op("RELU6" if max_value == 6 else "RELU", (x,), self.shape(x))

    def softmax(self, x: str, *, beta: float = 1.0) -> str:
        return self._op("SOFTMAX", (x,), self.shape(x), beta=beta)

    def build(self, *, outputs: Sequence[str], converter_ordered: bool = False) -> Graph:
        return Graph(tensors=self.tensors, ops=self.ops, inputs=[self.input], outputs=list(outputs), name=self.name,
                     converter_ordered=converter_ordered)
