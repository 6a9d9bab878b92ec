"""Training-mode forward passes of the elastic supernet through a few traced ``tf.function``s.

Progressive shrinking runs a new random subnet every step, so one trace per subnet
would retrace every step. Instead the network is cut into units whose structure
repeats across subnets: one inverted-residual block (expand, depthwise, project,
optional residual) and one single conv/depthwise op. Each unit is traced once per
(kernel size, stride, activations, residual) and takes the channel counts as int32
tensors and the weights as shape-relaxed tensors, so a handful of traces serve
every subnet and every resolution. The maths is ``ElasticMCUNet.logits`` with batch
statistics, op for op (``tests/ofa/test_compiled.py`` checks equal losses and
gradients); recalibration and prediction stay eager, where the per-op overhead is
paid once per subnet, not per training step.
"""

from __future__ import annotations

from typing import Any

from tinynas.ofa.plan import Step
from tinynas.ofa.supernet import BN_EPSILON, ElasticMCUNet, shrink_depthwise
from tinynas.space.arch import Arch


class CompiledForward:
    """``logits(arch, x)`` of ``net`` with BatchNorm on batch statistics, as traced units.

    ``traces`` counts how often a unit was traced (it grows only with new unit
    signatures, never with new subnets of a known structure).
    """

    def __init__(self, net: ElasticMCUNet) -> None:
        tf = net.tf
        self.net = net
        self.tf = tf
        self.traces = 0
        self._ints: dict[int, Any] = {}
        self._functions: dict[tuple, Any] = {}

    def _function(self, body: Any, static: tuple, tensors: list[Any]) -> Any:
        """The traced ``body`` for the Python arguments ``static``: channel and batch dimensions relaxed,
        kernel sizes kept, so exactly one trace per ``static``."""
        key = (body.__name__,) + static + tuple(tuple(t.shape[:2]) for t in tensors[1:] if len(t.shape) == 4)
        fn = self._functions.get(key)
        if fn is None:
            tf = self.tf

            def spec(t: Any) -> Any:
                shape = list(t.shape)
                if len(shape) == 4:  # a kernel (kh, kw, cin, cout): channels relaxed, size kept
                    shape = shape[:2] + [None, None]
                elif len(shape) == 1:  # gamma, beta
                    shape = [None]
                return tf.TensorSpec(shape, t.dtype)  # scalars and transformation matrices as they are

            specs = [tf.TensorSpec([None, None, None, None], tf.float32)] + [spec(t) for t in tensors[1:]]
            fn = tf.function(lambda *args: body(*args, *static), input_signature=specs, autograph=False)
            self._functions[key] = fn
        return fn

    # -- traced bodies ------------------------------------------------------------
    def _conv_bn(self, x: Any, full: Any, gamma: Any, beta: Any, cin: Any, cout: Any, *, kind: str, kernel: int,
                 stride: int, activation: str | None, t75: Any = None, t53: Any = None) -> Any:
        tf = self.tf
        strides = [1, stride, stride, 1]
        if kind == "DEPTHWISE_CONV_2D":
            w = shrink_depthwise(tf, full[:, :, :cin, :], kernel, t75=t75, t53=t53)
            x = tf.nn.depthwise_conv2d(x, w, strides=strides, padding="SAME")
            c = cin
        else:
            size = full.shape[0] if full.shape[0] is not None else tf.shape(full)[0]
            off = (size - kernel) // 2
            w = full[off:off + kernel, off:off + kernel, :cin, :cout]
            x = tf.nn.conv2d(x, w, strides=strides, padding="SAME")
            c = cout
        mean, var = tf.nn.moments(x, axes=[0, 1, 2])
        x = tf.nn.batch_normalization(x, mean, var, beta[:c], gamma[:c], BN_EPSILON)
        if activation == "relu6":
            x = tf.nn.relu6(x)
        elif activation == "relu":
            x = tf.nn.relu(x)
        return x

    def _op_body(self, x: Any, full: Any, gamma: Any, beta: Any, cin: Any, cout: Any, kind: str, kernel: int,
                 stride: int, activation: str | None) -> Any:
        self.traces += 1  # Python side effect: runs at trace time only
        return self._conv_bn(x, full, gamma, beta, cin, cout, kind=kind, kernel=kernel, stride=stride,
                             activation=activation)

    def _block_body(self, x: Any, ek: Any, eg: Any, eb: Any, dk: Any, dg: Any, db: Any, t75: Any, t53: Any, pk: Any,
                    pg: Any, pb: Any, cin: Any, cexp: Any, cout: Any, kernel: int, stride: int, activations: tuple,
                    residual: bool) -> Any:
        self.traces += 1
        act_e, act_d, act_p = activations
        y = self._conv_bn(x, ek, eg, eb, cin, cexp, kind="CONV_2D", kernel=1, stride=1, activation=act_e)
        y = self._conv_bn(y, dk, dg, db, cexp, cexp, kind="DEPTHWISE_CONV_2D", kernel=kernel, stride=stride,
                          activation=act_d, t75=t75, t53=t53)
        y = self._conv_bn(y, pk, pg, pb, cexp, cout, kind="CONV_2D", kernel=1, stride=1, activation=act_p)
        return x + y if residual else y

    # -- driver ---------------------------------------------------------------------
    def _int(self, n: int) -> Any:
        t = self._ints.get(n)
        if t is None:
            t = self._ints[n] = self.tf.constant(n, self.tf.int32)
        return t

    def _read(self, v: dict[str, Any], name: str) -> Any:
        return self.tf.convert_to_tensor(v[name])

    def logits(self, arch: Arch, x: Any, *, variables: dict[str, Any] | None = None) -> Any:
        """Pre-softmax outputs of ``arch`` on ``x`` (resized here), BatchNorm on the batch's statistics."""
        tf = self.tf
        net = self.net
        v = net.variables if variables is None else variables
        steps = net.plan(arch).steps
        x = net.prepare_inputs(x, int(arch["resolution"]))
        i = 0
        while i < len(steps):
            step = steps[i]
            if step.kind == "MEAN":
                x = tf.reduce_mean(x, axis=[1, 2])
            elif step.kind == "FULLY_CONNECTED":
                x = tf.matmul(x, v[f"{step.slot}/kernel"][:step.in_channels, :step.out_channels]) \
                    + v[f"{step.slot}/bias"][:step.out_channels]
            elif step.kind in ("SOFTMAX", "ADD"):  # an ADD is consumed by its block below
                pass
            elif step.block_start:
                x, i = self._run_block(x, steps, i, v)
                continue
            else:
                args = [x, self._read(v, f"{step.slot}/kernel"), self._read(v, f"{step.slot}/gamma"),
                        self._read(v, f"{step.slot}/beta"), self._int(step.in_channels), self._int(step.out_channels)]
                static = (step.kind, step.kernel, step.stride, step.activation)
                x = self._function(self._op_body, static, args)(*args)
            i += 1
        return x

    def _run_block(self, x: Any, steps: tuple[Step, ...], i: int, v: dict[str, Any]) -> tuple[Any, int]:
        expand, dw, project = steps[i:i + 3]
        residual = i + 3 < len(steps) and steps[i + 3].kind == "ADD"
        names = [f"{expand.slot}/kernel", f"{expand.slot}/gamma", f"{expand.slot}/beta",
                 f"{dw.slot}/kernel", f"{dw.slot}/gamma", f"{dw.slot}/beta", f"{dw.slot}/t75", f"{dw.slot}/t53",
                 f"{project.slot}/kernel", f"{project.slot}/gamma", f"{project.slot}/beta"]
        args = [x, *(self._read(v, n) for n in names), self._int(expand.in_channels),
                self._int(expand.out_channels), self._int(project.out_channels)]
        static = (dw.kernel, dw.stride, (expand.activation, dw.activation, project.activation), residual)
        y = self._function(self._block_body, static, args)(*args)
        return y, i + 3 + (1 if residual else 0)
