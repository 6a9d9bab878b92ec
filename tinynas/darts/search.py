"""Differentiable search on the NAS-Bench-201 cell: DARTS (first and second order), DrNAS, RobustDARTS.

- DARTS (Liu et al., ICLR 2019): mixing weights ``softmax(alpha)`` per edge, alpha
  initialised at 1e-3 * N(0, 1). The training split is halved: weights step on
  the first half (SGD 0.025 cosine to 0.001, momentum 0.9, weight decay 3e-4,
  gradient norm clipped at 5), alpha on the second (Adam 3e-4, betas (0.5, 0.999),
  weight decay 1e-3), alternating. Second order replaces alpha's gradient by the
  unrolled one, ``dL_val(w', a)/da - xi * (d2 L_train / da dw) dL_val(w')/dw'`` with
  ``w' = w - xi dL_train/dw``, the mixed term by central finite differences
  (``eps = 0.01 / |dL_val/dw'|``), as in the paper.
- DrNAS (Chen et al., ICLR 2021): concentration ``beta = ELU(alpha) + 1``; every
  forward pass mixes with a sample of Dirichlet(beta), drawn as normalised Gamma
  samples (``tf.random.gamma`` is differentiable in its concentration, by
  implicit reparameterisation); a regulariser pulls beta towards the uniform
  prior: ``l2`` (scale * |beta|^2, the reference code's default) or ``kl``
  (scale * KL(Dir(beta) || Dir(1))). The arch is read from the mean beta / sum(beta).
- RobustDARTS (Zela et al., ICLR 2020): the dominant eigenvalue of the Hessian of
  the validation loss with respect to alpha (exact: alpha has 30 entries), every
  ``hessian_every`` epochs; with ``early_stop`` the search stops at the first epoch
  ``t >= min_epoch`` whose local mean eigenvalue (window 5) exceeds 1.3 times the
  one 4 entries earlier, and returns the arch of that earlier epoch (the paper's
  DARTS-ES). The paper's regularised variants: ``regularize`` scales the network's weight decay (R-DARTS(L2):
  3e-4 x 3^k), ``drop_path`` is the DropPath probability on every op but the skip, ramped linearly from 0 at
  the first epoch to that value at the last (R-DARTS(DP): 0.2-0.6). The paper reads both as keeping the
  eigenvalue low. DropPath is off while the eigenvalue is computed, so it is the same quantity with and
  without it.
- Warm-up (PC-DARTS, Xu et al., ICLR 2020: 15 of 50 epochs): the first
  ``warmup_epochs`` epochs train only the network weights, alpha stays at its initialisation, so untrained
  convolutions do not lose to parameter-free ops before they learn anything. The default 0 searches from the
  first step. No eigenvalue is computed in warm-up epochs and the early-stop rule (``min_epoch`` included)
  counts epochs from the first alpha update.

The derived arch is the argmax op of every edge, ``none`` excluded, an arch of
the ``nasbench201`` space: its id, cost and published NAS-Bench-201 accuracy
apply as to any other arch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tinynas.errors import SearchError
from tinynas.space.arch import Arch
from tinynas.space.nasbench201 import EDGE_NAMES, OPS

log = logging.getLogger(__name__)

METHODS = ("darts", "drnas")


@dataclass(frozen=True)
class DartsConfig:
    """Hyperparameters; the defaults are the papers' (only the network is smaller: CPU-sized)."""

    method: str = "darts"
    order: int = 1
    epochs: int = 10
    #: the first warmup_epochs of the epochs update only the weights (0: alpha from the first step)
    warmup_epochs: int = 0
    batch_size: int = 64
    #: passes over the weights' half per epoch: a small training set passes several times, so an epoch takes
    #: the steps it would take on a large one (the pipeline sets it as training does, ``passes_to_draw``)
    epoch_passes: int = 1
    cells_per_stage: int = 1
    base_channels: int = 8
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    alpha_lr: float = 3e-4
    alpha_beta1: float = 0.5
    alpha_beta2: float = 0.999
    alpha_weight_decay: float = 1e-3
    drnas_regularizer: str = "l2"
    drnas_scale: float = 1e-3
    hessian_every: int = 1
    #: "exact" (the full Hessian of alpha, one Hessian-vector product per entry: fine for the cell's 30) or
    #: "power" (power iteration with Hessian-vector products: the layer-wise supernets have blocks x 9 entries)
    hessian: str = "exact"
    power_iterations: int = 20
    hessian_samples: int = 256
    early_stop: bool = False
    min_epoch: int = 10
    window: int = 5
    lookback: int = 4
    growth: float = 1.3
    regularize: float = 1.0
    #: RobustDARTS's DP variant: the last epoch's DropPath probability (0: off; the cell supernet only)
    drop_path: float = 0.0
    #: BatchNorm with scale and shift in the cell's candidate convolutions. DARTS's search ops have none (the
    #: default); True is a diagnostic: without them a convolution's output does not depend on its weights'
    #: scale, so weight decay only speeds up its effective learning rate (tested: it does not explain the L2 collapse,
    #: benchmarks/differentiable/nb201_collapse_deep_affine.txt)
    affine_ops: bool = False
    #: hardware-aware loss (tinynas.darts.hardware), used when search_cell gets a profile
    hw_form: str = "hinge"
    hw_lambda: float = 1.0
    fbnet_a: float = 0.2
    fbnet_b: float = 0.6
    seed: int = 0

    @property
    def weight_decay(self) -> float:
        """The network's weight decay, RobustDARTS's L2 factor included."""
        return self.w_weight_decay * self.regularize

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SearchError(f"unknown differentiable method {self.method!r}; use one of {', '.join(METHODS)}")
        if self.order not in (1, 2) or (self.order == 2 and self.method != "darts"):
            raise SearchError(f"order must be 1 or 2 (2 only for darts), got order {self.order} for {self.method}")
        if self.drnas_regularizer not in ("l2", "kl"):
            raise SearchError(f"drnas_regularizer must be 'l2' or 'kl', got {self.drnas_regularizer!r}")
        if self.hessian not in ("exact", "power"):
            raise SearchError(f"hessian must be 'exact' or 'power', got {self.hessian!r}")
        if self.hw_form not in ("hinge", "fbnet"):
            raise SearchError(f"hw_form must be 'hinge' or 'fbnet', got {self.hw_form!r}")
        if not self.regularize > 0.0 or not 0.0 <= self.drop_path < 1.0:
            raise SearchError(f"regularize must be > 0 and drop_path in [0, 1); got {self.regularize} and "
                              f"{self.drop_path}")
        if self.epochs < 1 or self.batch_size < 1 or self.epoch_passes < 1 or self.hessian_every < 0:
            raise SearchError("epochs, batch_size and epoch_passes must be at least 1 and hessian_every at least 0")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise SearchError(f"warmup_epochs must be in [0, epochs): got {self.warmup_epochs} warm-up epochs of "
                              f"{self.epochs}; alpha would never be updated")


@dataclass
class DartsResult:
    """The derived arch and how the search got there (one entry per epoch in each list)."""

    arch: Arch
    config: DartsConfig
    epochs_run: int
    stopped_early: bool
    stop_epoch: int | None
    #: per epoch: the mixing weights of each edge (6 x 5), as the derived arch reads them
    weights: list[list[list[float]]] = field(default_factory=list)
    eigenvalues: list[float | None] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    #: with a profile: expected latency (ms) and arena (bytes) per epoch, the derived arch's cost, and how
    #: many decisions were changed to make it fit (0: it fitted as derived)
    expected_latency_ms: list[float] = field(default_factory=list)
    expected_arena_bytes: list[float] = field(default_factory=list)
    cost: dict[str, Any] | None = None
    changed_to_fit: int | None = None
    seconds: float = 0.0
    #: the epoch (0-based) whose arch was taken; True when the search stopped on a NaN loss or alpha; the id of
    #: the derived arch when it did not fit and was repaired
    arch_epoch: int | None = None
    nan_stop: bool = False
    derived_infeasible: str | None = None

    def op_counts(self) -> dict[str, int]:
        if self.arch.space != "nasbench201":
            return {}
        counts = {op: 0 for op in OPS}
        for _, op in self.arch.decisions:
            counts[str(op)] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {"arch": self.arch.to_json(), "id": self.arch.id, "config": asdict(self.config),
                "epochs_run": self.epochs_run, "stopped_early": self.stopped_early, "stop_epoch": self.stop_epoch,
                "weights": self.weights, "eigenvalues": self.eigenvalues, "val_accuracy": self.val_accuracy,
                "op_counts": self.op_counts(), "expected_latency_ms": self.expected_latency_ms,
                "expected_arena_bytes": self.expected_arena_bytes, "cost": self.cost,
                "changed_to_fit": self.changed_to_fit, "seconds": round(self.seconds, 3),
                "arch_epoch": self.arch_epoch, "nan_stop": self.nan_stop,
                "derived_infeasible": self.derived_infeasible}


def derive_arch(weights: np.ndarray) -> Arch:
    """The argmax op of every edge, ``none`` excluded (DARTS's discretisation)."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(EDGE_NAMES), len(OPS)):
        raise SearchError(f"mixing weights must be {len(EDGE_NAMES)}x{len(OPS)}, got {weights.shape}")
    masked = weights.copy()
    masked[:, OPS.index("none")] = -np.inf
    return Arch.from_dict("nasbench201", {name: OPS[int(np.argmax(row))] for name, row in zip(EDGE_NAMES, masked)})


def early_stop_epoch(eigenvalues: list[float], *, min_epoch: int, window: int = 5, lookback: int = 4,
                     growth: float = 1.3) -> int | None:
    """RobustDARTS's rule: the first epoch (0-based index) ``t >= min_epoch`` whose mean eigenvalue over the
    last ``window`` epochs exceeds ``growth`` times that mean ``lookback`` epochs earlier; None if none."""
    means = [float(np.mean(eigenvalues[max(0, i - window + 1):i + 1])) for i in range(len(eigenvalues))]
    for t in range(max(min_epoch, lookback), len(means)):
        if means[t - lookback] > 0 and means[t] / means[t - lookback] > growth:
            return t
    return None


def search_cell(dataset: Any, *, config: DartsConfig = DartsConfig(), profile: Any = None,
                progress: Any = None) -> DartsResult:
    """Run ``config.method`` on ``dataset`` (an image ``Dataset``); returns the derived nasbench201 arch.

    With a hardware ``profile`` the architecture loss carries the expected latency and arena penalties
    (``config.hw_form``), and the derived arch is checked with the cost model: one that does not fit is
    replaced by the nearest one that does (``result.changed_to_fit`` says how many edges changed)."""
    from tinynas.darts.cell import build_cell_supernet
    from tinynas.tf_runtime import quiet_import

    quiet_import()
    if len(dataset.input_shape) != 3:
        raise SearchError(f"the nasbench201 cell needs image inputs H,W,C; dataset {dataset.name!r} has "
                          f"{dataset.input_shape}")
    cfg = config
    started = time.perf_counter()
    model = build_cell_supernet(input_shape=dataset.input_shape, num_classes=dataset.num_classes,
                                cells_per_stage=cfg.cells_per_stage, base_channels=cfg.base_channels, seed=cfg.seed,
                                drop_path=cfg.drop_path > 0, affine_ops=cfg.affine_ops)
    tables = space = None
    if profile is not None:
        from tinynas.darts.hardware import cost_tables
        from tinynas.space.nasbench201 import NasBench201Space

        space = NasBench201Space(input_shape=dataset.input_shape, num_classes=dataset.num_classes,
                                 cells_per_stage=cfg.cells_per_stage, base_channels=cfg.base_channels)
        tables = cost_tables(space, profile)
    result = _search_loop(dataset, model=model, shape=(len(EDGE_NAMES), len(OPS)), derive=derive_arch, cfg=cfg,
                          tables=tables, progress=progress)
    if space is not None:
        from tinynas.darts.hardware import nearest_feasible

        _repair(result, space, profile, lambda arch, w: nearest_feasible(arch, w, _check(space, profile)))
    result.seconds = time.perf_counter() - started
    return result


def _check(space: Any, profile: Any) -> Any:
    from tinynas.pipeline.constraints import CostCheck

    return CostCheck(space=space, profile=profile)


def _repair(result: DartsResult, space: Any, profile: Any, nearest: Any) -> None:
    """Check the derived arch against the board's hard budgets; replace an infeasible one by ``nearest``."""
    check = _check(space, profile)
    derived = result.arch
    chosen = result.weights[result.arch_epoch] if result.arch_epoch is not None else result.weights[-1]
    result.arch, result.changed_to_fit = nearest(derived, np.asarray(chosen))
    if result.changed_to_fit:
        result.derived_infeasible = derived.id
        # info, not warning: the result carries it, and the pipeline's stage warns once with the run's context
        log.info("the derived arch %s does not fit %s; took %s, %d decision(s) changed", derived.id, profile.id,
                 result.arch.id, result.changed_to_fit)
    c = check.cost(result.arch)
    result.cost = {"latency_ms": c.latency_ms, "arena_bytes": int(c.arena_bytes),
                   "flash_bytes": int(c.flash_bytes), "macs": int(c.macs), "fits": bool(c.fits)}


def _search_loop(dataset: Any, *, model: Any, shape: tuple[int, int], derive: Any, cfg: DartsConfig,
                 tables: Any = None, progress: Any = None, state_dir: Any = None, mask: Any = None) -> DartsResult:
    """The alternating search shared by the cell and the layer-wise supernets.

    ``model(x, mixing)`` with mixing of ``shape``; ``derive(mixing) -> Arch``; ``mask`` (0/1 of ``shape``, None:
    all 1) the options each row may weight (``_State.mixing``). Stops early on RobustDARTS's
    eigenvalue rule or when the loss or alpha turns NaN (the arch of the last finite epoch is kept). With
    ``state_dir`` the supernet, alpha and optimiser state are checkpointed there after every epoch and a
    search with the same config resumes from the last one."""
    rng = np.random.default_rng(cfg.seed)
    x = dataset.x_train.astype(np.float32)
    y = dataset.y_train.astype(np.int32)
    order = rng.permutation(len(y))
    half = len(y) // 2
    if half < cfg.batch_size:
        raise SearchError(f"dataset {dataset.name!r} has {len(y)} training samples; a search with batch "
                          f"{cfg.batch_size} needs at least {2 * cfg.batch_size} (two halves)")
    xw, yw, xa, ya = x[order[:half]], y[order[:half]], x[order[half:]], y[order[half:]]
    if cfg.drop_path and not hasattr(model, "set_drop_prob"):
        raise SearchError(f"drop_path={cfg.drop_path}: this supernet has no DropPath; only the nasbench201 cell "
                          "supernet does. Use drop_path=0 here")
    state = _State(model, cfg, shape=shape, tables=tables, mask=mask)
    per_pass = half // cfg.batch_size
    steps = per_pass * cfg.epoch_passes
    total = cfg.epochs * steps
    result = DartsResult(arch=derive(state.mixing_mean()), config=cfg, epochs_run=0, stopped_early=False,
                         stop_epoch=None)
    eig_batch = (xa[:cfg.hessian_samples], ya[:cfg.hessian_samples])
    archs: list[Any] = []
    start_epoch = 0
    if state_dir is not None:
        from tinynas.darts.checkpoint import load_checkpoint

        start_epoch = load_checkpoint(state_dir, state, result, archs, derive=derive)
    for epoch in range(cfg.epochs):
        # drawn every epoch so a resume sees the same; a pass's batches never straddle the next pass
        orders = [(rng.permutation(half), rng.permutation(len(ya))) for _ in range(cfg.epoch_passes)]
        if epoch < start_epoch:
            continue
        if cfg.drop_path:
            model.set_drop_prob(cfg.drop_path * epoch / cfg.epochs)
        losses = []
        for s in range(steps):
            step = epoch * steps + s
            lr = cfg.w_lr_min + 0.5 * (cfg.w_lr - cfg.w_lr_min) * (1 + math.cos(math.pi * step / total))
            state.hw_strength.assign(cfg.hw_lambda * min(1.0, step / max(1.0, total / 2)))  # ramp over the first half
            (pw, pa), at = orders[s // per_pass], (s % per_pass) * cfg.batch_size
            bw, ba = pw[at:at + cfg.batch_size], pa[at:at + cfg.batch_size]
            if epoch >= cfg.warmup_epochs and cfg.order == 2:
                state.alpha_step_second_order(xw[bw], yw[bw], xa[ba], ya[ba], lr)
            elif epoch >= cfg.warmup_epochs:
                state.alpha_step(xa[ba], ya[ba])
            losses.append(state.weight_step(xw[bw], yw[bw], lr))
        mixing = state.mixing_mean()
        if not (np.isfinite(losses).all() and np.isfinite(mixing).all()):
            result.stopped_early, result.stop_epoch, result.nan_stop = True, epoch, True
            log.info("%s epoch %d: the loss or alpha is NaN; stopping with the arch of epoch %d", cfg.method,
                     epoch + 1, epoch)
            break
        archs.append(derive(mixing))
        result.weights.append(np.round(mixing, 5).tolist())
        result.val_accuracy.append(state.accuracy(dataset.x_val.astype(np.float32), dataset.y_val))
        if tables is not None:
            result.expected_latency_ms.append(round(tables.expected_latency(mixing), 4))
            result.expected_arena_bytes.append(round(tables.expected_arena(mixing), 1))
        searched = epoch + 1 - cfg.warmup_epochs  # epochs with alpha updates so far
        eig = state.hessian_eigenvalue(*eig_batch) \
            if cfg.hessian_every and searched > 0 and searched % cfg.hessian_every == 0 else None
        result.eigenvalues.append(eig)
        result.epochs_run = epoch + 1
        log.info("%s epoch %d: supernet val acc %.4f, eigenvalue %s, arch %s%s", cfg.method, epoch + 1,
                 result.val_accuracy[-1], "-" if eig is None else f"{eig:.4f}", archs[-1].id,
                 f", E[LAT] {result.expected_latency_ms[-1]:.3f} ms" if tables is not None else "")
        if state_dir is not None:
            from tinynas.darts.checkpoint import save_checkpoint

            save_checkpoint(state_dir, state, result)
        if progress is not None:
            progress(epoch, result)
        searching = result.eigenvalues[cfg.warmup_epochs:]
        known = [e for e in searching if e is not None]
        if cfg.early_stop and known and len(known) == len(searching):
            t = early_stop_epoch(known, min_epoch=cfg.min_epoch, window=cfg.window, lookback=cfg.lookback,
                                 growth=cfg.growth)
            if t is not None:
                t += cfg.warmup_epochs
                result.stopped_early, result.stop_epoch = True, t
                result.arch, result.arch_epoch = archs[t - cfg.lookback], t - cfg.lookback
                break
    if result.arch_epoch is None and archs:
        result.arch, result.arch_epoch = archs[-1], len(archs) - 1
    if state_dir is not None:
        from tinynas.darts.checkpoint import mark_finished

        mark_finished(state_dir, result)
    return result


class _State:
    """The variables of one search and its traced steps."""

    def __init__(self, model: Any, cfg: DartsConfig, *, shape: tuple[int, int], tables: Any = None,
                 mask: Any = None) -> None:
        from tinynas.tf_runtime import quiet_import

        tf = quiet_import()
        self.tf, self.model, self.cfg, self.shape, self.tables = tf, model, cfg, tuple(shape), tables
        self.mask = None if mask is None or np.all(mask) else tf.constant(np.asarray(mask), tf.float32)
        self.hw_strength = tf.Variable(0.0, trainable=False)
        g = tf.random.Generator.from_seed(cfg.seed)
        self.alpha = tf.Variable(1e-3 * g.normal(self.shape), name="alpha")
        self.weights = list(model.trainable_variables)
        self.momentum = [tf.Variable(tf.zeros_like(v)) for v in self.weights]
        self.m = tf.Variable(tf.zeros_like(self.alpha))
        self.v = tf.Variable(tf.zeros_like(self.alpha))
        self.t = tf.Variable(0.0)
        self.rng = tf.random.Generator.from_seed(cfg.seed + 1)
        self._alpha_grad = tf.function(self._alpha_grad_impl, reduce_retracing=True)
        self._weight_step = tf.function(self._weight_step_impl, reduce_retracing=True)
        self._predict = tf.function(lambda x, w: model(x, w, training=False), reduce_retracing=True)
        self._hvp = tf.function(self._hvp_impl, reduce_retracing=True)
        self._second_order = tf.function(self._second_order_impl, reduce_retracing=True)

    # -- mixing weights --------------------------------------------------------
    def mixing(self) -> Any:
        """The weights of one forward pass: softmax(alpha), or a Dirichlet(ELU(alpha) + 1) sample."""
        tf = self.tf
        if self.cfg.method == "darts":
            return self._masked(tf.nn.softmax(self.alpha, axis=-1))
        beta = tf.nn.elu(self.alpha) + 1.0
        gammas = tf.random.stateless_gamma(tf.shape(beta), seed=self.rng.make_seeds(1)[:, 0], alpha=beta)
        return self._masked(gammas / tf.reduce_sum(gammas, axis=-1, keepdims=True))

    def _masked(self, weights: Any) -> Any:
        """``weights`` with the masked options zeroed and each row renormalised: for softmax the same as
        leaving those entries of alpha out (their exponentials cancel), for a Dirichlet sample the same as
        leaving out their Gammas; either way the masked alpha gets no gradient from the loss."""
        if self.mask is None:
            return weights
        kept = weights * self.mask
        return kept / self.tf.reduce_sum(kept, axis=-1, keepdims=True)

    def mixing_mean(self) -> np.ndarray:
        return self.mixing_mean_tensor().numpy()

    def _loss(self, x: Any, y: Any, mixing: Any) -> Any:
        tf = self.tf
        probs = self.model(x, mixing, training=True)
        return -tf.reduce_mean(tf.math.log(tf.clip_by_value(tf.gather(probs, y, batch_dims=1), 1e-7, 1.0)))

    def _regularizer(self) -> Any:
        tf, cfg = self.tf, self.cfg
        if cfg.method != "drnas":
            return 0.0
        beta = tf.nn.elu(self.alpha) + 1.0
        if cfg.drnas_regularizer == "l2":
            return cfg.drnas_scale * tf.reduce_sum(beta ** 2)
        # KL(Dir(beta) || Dir(1)) per edge, summed
        b0 = tf.reduce_sum(beta, axis=-1)
        k = float(self.shape[1])
        kl = (tf.math.lgamma(b0) - tf.reduce_sum(tf.math.lgamma(beta), axis=-1) - tf.math.lgamma(k)
              + tf.reduce_sum((beta - 1.0) * (tf.math.digamma(beta) - tf.math.digamma(b0)[:, None]), axis=-1))
        return cfg.drnas_scale * tf.reduce_sum(kl)

    # -- architecture step -----------------------------------------------------
    def _alpha_grad_impl(self, x: Any, y: Any) -> Any:
        tf = self.tf
        with tf.GradientTape() as tape:
            loss = self._hardware(self._loss(x, y, self.mixing())) + self._regularizer()
        return tape.gradient(loss, self.alpha)

    def _hardware(self, loss: Any) -> Any:
        """The architecture loss with the board's expected-cost penalty (unchanged without a profile)."""
        if self.tables is None:
            return loss
        from tinynas.darts.hardware import hardware_penalty

        tf, cfg = self.tf, self.cfg
        p = self.mixing_mean_tensor()
        extra, factor = hardware_penalty(self.tables, p, tf, strength=self.hw_strength, form=cfg.hw_form,
                                         fbnet_a=cfg.fbnet_a, fbnet_b=cfg.fbnet_b)
        return loss * factor + extra

    def mixing_mean_tensor(self) -> Any:
        tf = self.tf
        if self.cfg.method == "darts":
            return self._masked(tf.nn.softmax(self.alpha, axis=-1))
        beta = tf.nn.elu(self.alpha) + 1.0
        return self._masked(beta / tf.reduce_sum(beta, axis=-1, keepdims=True))

    def _adam(self, grad: Any) -> None:
        tf, cfg = self.tf, self.cfg
        grad = grad + cfg.alpha_weight_decay * self.alpha
        self.t.assign_add(1.0)
        self.m.assign(cfg.alpha_beta1 * self.m + (1 - cfg.alpha_beta1) * grad)
        self.v.assign(cfg.alpha_beta2 * self.v + (1 - cfg.alpha_beta2) * grad * grad)
        m_hat = self.m / (1 - cfg.alpha_beta1 ** self.t)
        v_hat = self.v / (1 - cfg.alpha_beta2 ** self.t)
        self.alpha.assign_sub(cfg.alpha_lr * m_hat / (tf.sqrt(v_hat) + 1e-8))

    def alpha_step(self, x: np.ndarray, y: np.ndarray) -> None:
        self._adam(self._alpha_grad(self.tf.constant(x), self.tf.constant(y)))

    def alpha_step_second_order(self, xw: np.ndarray, yw: np.ndarray, xa: np.ndarray, ya: np.ndarray,
                                lr: float) -> None:
        """DARTS's unrolled gradient (one virtual SGD step, finite-difference Hessian-vector product)."""
        tf = self.tf
        self._adam(self._second_order(*(tf.constant(a) for a in (xw, yw, xa, ya)), tf.constant(lr, tf.float32)))

    def _second_order_impl(self, xw: Any, yw: Any, xa: Any, ya: Any, lr: Any) -> Any:
        tf, cfg = self.tf, self.cfg
        saved = [tf.identity(v) for v in self.weights]
        with tf.GradientTape() as tape:
            loss = self._loss(xw, yw, self.mixing())
        grads = tape.gradient(loss, self.weights)
        for v, g in zip(self.weights, grads):  # w' = w - xi (dL_train/dw + wd w)
            v.assign_sub(lr * (g + cfg.weight_decay * v))
        with tf.GradientTape() as tape:
            loss = self._hardware(self._loss(xa, ya, self.mixing()))
        d_alpha, *d_w = tape.gradient(loss, [self.alpha, *self.weights])
        norm = tf.linalg.global_norm(d_w)
        eps = 0.01 / (norm + 1e-12)
        sides = []
        for sign in (1.0, -1.0):
            for v, s, d in zip(self.weights, saved, d_w):
                v.assign(s + sign * eps * d)
            with tf.GradientTape() as tape:
                loss = self._loss(xw, yw, self.mixing())
            sides.append(tape.gradient(loss, self.alpha))
        for v, s in zip(self.weights, saved):
            v.assign(s)
        return d_alpha - lr * (sides[0] - sides[1]) / (2.0 * eps)

    # -- weight step -------------------------------------------------------------
    def _weight_step_impl(self, x: Any, y: Any, lr: Any) -> Any:
        tf, cfg = self.tf, self.cfg
        mixing = tf.stop_gradient(self.mixing())
        with tf.GradientTape() as tape:
            loss = self._loss(x, y, mixing)
        grads = tape.gradient(loss, self.weights)
        grads = [g + cfg.weight_decay * v for g, v in zip(grads, self.weights)]
        grads, _ = tf.clip_by_global_norm(grads, cfg.grad_clip)
        for v, m, g in zip(self.weights, self.momentum, grads):
            m.assign(cfg.w_momentum * m + g)
            v.assign_sub(lr * m)
        return loss

    def weight_step(self, x: np.ndarray, y: np.ndarray, lr: float) -> float:
        tf = self.tf
        return float(self._weight_step(tf.constant(x), tf.constant(y), tf.constant(lr, tf.float32)))

    # -- measurements --------------------------------------------------------------
    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        mixing = self.tf.constant(self.mixing_mean(), self.tf.float32)
        correct = 0
        for i in range(0, len(y), 256):
            probs = self._predict(self.tf.constant(x[i:i + 256]), mixing).numpy()
            correct += int((probs.argmax(axis=-1) == y[i:i + 256]).sum())
        return correct / max(1, len(y))

    def hessian_eigenvalue(self, x: np.ndarray, y: np.ndarray) -> float:
        """The largest eigenvalue of d2 L_val / d alpha2 (exact: 30 x 30), with the mean mixing (DrNAS: its mean)."""
        with self.model.without_drop_path() if self.cfg.drop_path else contextlib.nullcontext():
            if self.cfg.hessian == "power":
                return self.power_eigenvalue(x, y)
            hessian = self.hessian(x, y)
        hessian = 0.5 * (hessian + hessian.T)
        return float(np.linalg.eigvalsh(hessian)[-1])

    def hessian(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The full Hessian of the validation loss in alpha, column by column: one Hessian-vector product per
        entry of alpha. Why not ``tape.jacobian``: its vectorised form holds every column's backward pass at
        once, 11 GB for the 5-cell-per-stage NB201 supernet on 256 samples against 2.4 GB here, for 21 s per
        Hessian instead of 10 s on 2 cores (benchmarks/differentiable/hessian_memory.txt)."""
        tf = self.tf
        xt, yt = tf.constant(x), tf.constant(y)
        n = self.shape[0] * self.shape[1]
        columns = [self._hvp(xt, yt, tf.constant(e.reshape(self.shape))).numpy().reshape(n)
                   for e in np.eye(n, dtype=np.float32)]
        return np.stack(columns, axis=1)

    def _hvp_impl(self, x: Any, y: Any, v: Any) -> Any:
        tf = self.tf
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                loss = self._loss(x, y, self.mixing_mean_tensor())
            grad = inner.gradient(loss, self.alpha)
            dot = tf.reduce_sum(grad * v)
        return outer.gradient(dot, self.alpha)

    def power_eigenvalue(self, x: np.ndarray, y: np.ndarray) -> float:
        """The dominant eigenvalue of d2 L_val / d alpha2 by power iteration on Hessian-vector products (the
        largest in magnitude; for the positive-dominated Hessians of DARTS that is the largest)."""
        tf = self.tf
        xt, yt = tf.constant(x), tf.constant(y)
        v = np.random.default_rng(self.cfg.seed).normal(size=self.shape).astype(np.float32)
        v /= np.linalg.norm(v)
        eig = 0.0
        for _ in range(max(1, self.cfg.power_iterations)):
            hv = self._hvp(xt, yt, tf.constant(v)).numpy()
            eig = float(np.sum(v * hv))
            norm = float(np.linalg.norm(hv))
            if norm == 0 or not np.isfinite(norm):
                break
            v = hv / norm
        return eig
