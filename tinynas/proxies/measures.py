"""The zero-cost proxies that look at an untrained network: SynFlow, NASWOT, jacob_cov,
grad_norm, SNIP, GraSP, Fisher and Zen-NAS.

Each is a function of a ``ProxyInput`` (Graph, its untrained ``GraphNet``, a
batch, a seed) that returns one float; the net's weights are copied into fresh
TF tensors and never modified. Definitions follow Abdelfattah et al., "Zero-Cost
Proxies for Lightweight NAS" (ICLR 2021) and the papers cited per function.
BatchNorm runs in training mode (batch statistics) for the data-dependent
proxies, which therefore need at least two examples; SynFlow bypasses it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinynas.errors import ProxyError
from tinynas.proxies.registry import ProxyInput, register_proxy

ZEN_BATCH = 16
ZEN_ALPHA = 0.01


def _batch(inp: ProxyInput, name: str) -> tuple[Any, Any]:
    import tensorflow as tf

    if inp.batch is None:
        raise ProxyError(f"proxy {name!r} needs a batch of data: pass --dataset (or batch=Batch(x, y))")
    x, y = np.asarray(inp.batch.x, np.float32), np.asarray(inp.batch.y)
    if x.shape[0] < 2:
        # BatchNorm in training mode on a batch of one normalises everything to beta (REFERENCE.md s.7).
        raise ProxyError(f"proxy {name!r} needs a batch of at least 2 examples, got {x.shape[0]}")
    want = tuple(inp.graph.input_shape[1:])
    if tuple(x.shape[1:]) != want:
        if len(want) == 3 and x.ndim == 4 and x.shape[-1] == want[-1]:
            x = tf.image.resize(x, want[:2]).numpy()  # e.g. mcunet's resolution decision
        else:
            raise ProxyError(f"proxy {name!r}: batch shape {x.shape[1:]} does not match the graph input {want}")
    return tf.constant(x), tf.constant(y.astype(np.int64))


def _kernels(params: dict) -> list[Any]:
    return [w["kernel"] for w in params.values()]


def _ce(tf: Any, logits: Any, y: Any) -> Any:
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))


def _loss_grads(inp: ProxyInput, name: str) -> tuple[list[Any], list[Any]]:
    import tensorflow as tf

    x, y = _batch(inp, name)
    params = inp.net.params(tf.float32)
    kernels = _kernels(params)
    with tf.GradientTape() as tape:
        tape.watch(kernels)
        loss = _ce(tf, inp.net.forward(x, params, bn="batch"), y)
    grads = tape.gradient(loss, kernels, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return kernels, grads


@register_proxy("synflow", higher_is_better=True, description="SynFlow: sum |w * dR/dw| of the linearised net")
def synflow(inp: ProxyInput) -> float:
    """SynFlow (Tanaka et al. 2020, eq. 5; as a proxy: Abdelfattah et al. 2021).

    |w| everywhere, all-ones input of batch 1, R = sum of the logits, score =
    sum over conv/dense kernels of |w * dR/dw|. BatchNorm is bypassed and every
    ReLU is the identity (all values are positive), and the pass runs in float64
    so deep nets do not overflow.
    """
    from tinynas.proxies import synflow_fast

    if synflow_fast.supports(inp.net):
        return synflow_fast.synflow_linear(inp.net)
    return synflow_tape(inp)


def synflow_tape(inp: ProxyInput) -> float:
    """SynFlow by automatic differentiation: the reference the hand-written pass is tested against."""
    import tensorflow as tf

    net = inp.net
    params = net.params(tf.float64, transform=np.abs)
    kernels = _kernels(params)
    x = tf.ones((1, *net.graph.input_shape[1:]), tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(kernels)
        r = tf.reduce_sum(net.forward(x, params, bn="off", linear=True))
    grads = tape.gradient(r, kernels, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return float(tf.add_n([tf.reduce_sum(tf.abs(k * g)) for k, g in zip(kernels, grads)]).numpy()) if kernels else 0.0


@register_proxy("naswot", higher_is_better=True, needs_data=True,
                description="NASWOT: log|K| of the Hamming kernel of ReLU codes over a batch")
def naswot(inp: ProxyInput) -> float:
    """NASWOT (Mellor et al., ICML 2021): K[i,j] = number of ReLUs where examples i and j agree; score log|K|."""
    import tensorflow as tf

    x, _ = _batch(inp, "naswot")
    taps: dict[str, list[Any]] = {}
    inp.net.forward(x, inp.net.params(tf.float32), bn="batch", taps=taps)
    n = int(x.shape[0])
    k = np.zeros((n, n), np.float64)
    for t in taps.get("pre_act", []):
        c = (t.numpy().reshape(n, -1) > 0).astype(np.float64)
        k += c @ c.T + (1.0 - c) @ (1.0 - c).T
    sign, logdet = np.linalg.slogdet(k)
    return float(logdet) if sign > 0 else float("-inf")


@register_proxy("jacob_cov", higher_is_better=True, needs_data=True,
                description="jacob_cov: eigen-spectrum score of the input-Jacobian correlations")
def jacob_cov(inp: ProxyInput) -> float:
    """jacob_cov (Mellor et al. 2020 v1, as in Abdelfattah et al. 2021): -sum(log(v+k) + 1/(v+k)), k=1e-5,
    v the eigenvalues of the correlation matrix of per-example Jacobians d(sum logits)/dx."""
    import tensorflow as tf

    x, _ = _batch(inp, "jacob_cov")
    params = inp.net.params(tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reduce_sum(inp.net.forward(x, params, bn="batch"))
    jac = tape.gradient(out, x).numpy().reshape(int(x.shape[0]), -1).astype(np.float64)
    if np.any(jac.std(axis=1) == 0):
        return float("-inf")  # an example whose Jacobian is constant: the net ignores its input
    v = np.linalg.eigvalsh(np.corrcoef(jac))
    k = 1e-5
    return float(-np.sum(np.log(np.maximum(v, 0.0) + k) + 1.0 / (np.maximum(v, 0.0) + k)))


@register_proxy("grad_norm", higher_is_better=True, needs_data=True,
                description="grad_norm: sum of per-layer L2 norms of the loss gradient")
def grad_norm(inp: ProxyInput) -> float:
    """grad_norm (Abdelfattah et al. 2021): sum over conv/dense kernels of ||dL/dw||_2, cross-entropy L."""
    import tensorflow as tf

    _, grads = _loss_grads(inp, "grad_norm")
    return float(sum(float(tf.norm(g).numpy()) for g in grads))


@register_proxy("snip", higher_is_better=True, needs_data=True, description="SNIP: sum |w * dL/dw|")
def snip(inp: ProxyInput) -> float:
    """SNIP (Lee et al., ICLR 2019), summed over weights as in Abdelfattah et al. 2021."""
    import tensorflow as tf

    kernels, grads = _loss_grads(inp, "snip")
    return float(sum(float(tf.reduce_sum(tf.abs(k * g)).numpy()) for k, g in zip(kernels, grads)))


@register_proxy("grasp", higher_is_better=True, needs_data=True, description="GraSP: -sum(w * Hg)")
def grasp(inp: ProxyInput) -> float:
    """GraSP (Wang et al., ICLR 2020): -sum(w * H g) with H the Hessian and g the gradient of the loss.

    Hg is the gradient of z = g_const . g (a Hessian-vector product by double
    back-propagation), as in Abdelfattah et al.'s implementation.
    """
    import tensorflow as tf

    x, y = _batch(inp, "grasp")
    params = inp.net.params(tf.float32)
    kernels = _kernels(params)
    with tf.GradientTape() as outer:
        outer.watch(kernels)
        with tf.GradientTape() as inner:
            inner.watch(kernels)
            loss = _ce(tf, inp.net.forward(x, params, bn="batch"), y)
        g = inner.gradient(loss, kernels, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        z = tf.add_n([tf.reduce_sum(gi * tf.stop_gradient(gi)) for gi in g])
    hg = outer.gradient(z, kernels, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return float(-sum(float(tf.reduce_sum(k * h).numpy()) for k, h in zip(kernels, hg)))


@register_proxy("fisher", higher_is_better=True, needs_data=True,
                description="Fisher: sum over channels of 0.5 * E[(sum act * dL/dact)^2]")
def fisher(inp: ProxyInput) -> float:
    """Fisher (Theis et al. 2018; Turner et al. 2020), on every conv/dense output as Abdelfattah et al. do."""
    import tensorflow as tf

    x, y = _batch(inp, "fisher")
    params = inp.net.params(tf.float32)
    taps: dict[str, list[Any]] = {}
    with tf.GradientTape() as tape:
        tape.watch(x)
        tape.watch(_kernels(params))
        loss = _ce(tf, inp.net.forward(x, params, bn="batch", taps=taps), y)
    acts = taps.get("layer_out", [])
    grads = tape.gradient(loss, acts, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    total = 0.0
    for a, g in zip(acts, grads):
        prod = a * g
        per_channel = tf.reduce_sum(prod, axis=list(range(1, len(prod.shape) - 1))) if len(prod.shape) > 2 else prod
        total += float(tf.reduce_sum(0.5 * tf.reduce_mean(tf.square(per_channel), axis=0)).numpy())
    return total


@register_proxy("zen", higher_is_better=True, description="Zen-NAS: log E|f(x) - f(x + a e)| + sum log BN std")
def zen(inp: ProxyInput) -> float:
    """Zen-score (Lin et al., ICCV 2021): Gaussian inputs, a perturbation of size alpha=0.01, the change
    of the pre-pooling feature map, plus the log batch standard deviation of every BatchNorm. Data-free."""
    import tensorflow as tf

    rng = inp.rng()
    shape = (ZEN_BATCH, *inp.graph.input_shape[1:])
    x = rng.standard_normal(shape).astype(np.float32)
    x2 = x + ZEN_ALPHA * rng.standard_normal(shape).astype(np.float32)
    # Zen-NAS initialises every kernel from N(0, 1); the score is defined for that init.
    params = inp.net.params(tf.float32, transform=lambda w: rng.standard_normal(w.shape).astype(np.float32))
    taps: dict[str, list[Any]] = {}
    out = inp.net.forward(tf.constant(x), params, bn="batch", taps=taps)
    feats = taps["features"][0] if taps.get("features") else out
    out2 = inp.net.forward(tf.constant(x2), params, bn="batch", taps=(taps2 := {}))
    feats2 = taps2["features"][0] if taps2.get("features") else out2
    delta = float(tf.reduce_mean(tf.reduce_sum(tf.abs(tf.reshape(feats - feats2, (ZEN_BATCH, -1))), axis=1)).numpy())
    if delta <= 0:
        return float("-inf")
    bn_term = sum(0.5 * float(np.log(max(float(tf.reduce_mean(v).numpy()), 1e-30))) for v in taps.get("bn_var", []))
    return float(np.log(delta) + bn_term)
