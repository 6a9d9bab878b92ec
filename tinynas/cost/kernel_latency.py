"""A learned latency model for mobile and GPU profiles: per-kernel-kind regression trees, summed.

nn-Meter (Zhang et al., MobiSys 2021): on phone CPUs and GPUs latency is not
linear in MACs, but the latency of a model is close to the sum of the latencies
of its kernels after fusion (conv + BN + activation is one kernel), and each
kernel kind's latency is a smooth function of its configuration (input size,
channels, kernel, stride), which a random forest per kind learns from measured
single kernels. The converter's view of a Graph (``cost.convert``) already has
that fusion, so one op is one kernel here. What calibrate fits now
(``log_ratio_baseline``): per kind a roofline-like baseline linear in the kernel's
size (``baseline_terms``: dispatch, tile-padded MACs, bytes), and a forest for the
ratio of the measured time to it. A forest alone cannot price a kernel larger than
any it saw; the baseline can, and the forest only has to learn the microkernels'
shape effects (``benchmarks/mobile_latency/README.md`` has the comparison).

The fitted forests are plain JSON (sklearn's tree arrays: children, feature,
threshold, value) written beside the profile's latency overlay
(``$TINYNAS_HOME/overlays/<id>.kernels.json``) by ``tinynas calibrate --measure
host`` and evaluated here in numpy: no TensorFlow, no sklearn, no pickle.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from tinynas.errors import CostError
from tinynas.space.graph import Graph, Op

FORMAT = "tinynas-kernel-latency/1"
# Kernel kinds: ops that run as the same kernel family share a regressor.
KINDS = ("conv", "conv1x1", "dwconv", "dwconv_large", "fc", "pool", "avgpool", "add", "mean", "softmax", "other")
# The configuration of a kernel; sizes enter as log2(1 + x) so a tree splits where a size doubles.
FEATURES = ("h_in", "w_in", "c_in", "c_out", "kernel", "stride", "h_out", "w_out", "macs", "in_elems", "out_elems")


def kernel_kind(op: Op, graph: Graph) -> str:
    """The regressor that prices ``op``: its TFLite kind, with the kernels XNNPACK runs differently
    apart, as measured on the host: 1x1 convolutions (a GEMM without im2col); depthwise convolutions
    of more than 25 taps (7x7: multi-pass, about 12x the time per MAC of 3x3 and 5x5, which have
    single-pass microkernels); average pools (about 20x a max pool of the same shape)."""
    kind = op.kind
    if kind == "CONV_2D":
        k = graph.tensors[op.inputs[1]].shape
        return "conv1x1" if k[1] == 1 and k[2] == 1 else "conv"
    if kind == "DEPTHWISE_CONV_2D":
        k = graph.tensors[op.inputs[1]].shape
        return "dwconv_large" if k[1] * k[2] > 25 else "dwconv"
    return {"FULLY_CONNECTED": "fc", "MAX_POOL_2D": "pool", "AVERAGE_POOL_2D": "avgpool", "ADD": "add",
            "MEAN": "mean", "SOFTMAX": "softmax"}.get(kind, "other")


def _hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 4:
        return shape[1], shape[2], shape[3]
    if len(shape) == 3:
        return 1, shape[1], shape[2]
    return 1, 1, int(math.prod(shape[1:])) if len(shape) > 1 else 1


def kernel_features(op: Op, graph: Graph) -> dict[str, float]:
    """The raw configuration of one kernel (``FEATURES``): input and output size, channels, kernel,
    stride, MACs and elements."""
    from tinynas.cost.counts import op_work

    t = graph.tensors
    acts = [t[n] for n in op.inputs if n and not t[n].constant]
    in_shape = acts[0].shape if acts else ()
    out_shape = t[op.outputs[0]].shape
    h, w, c = _hwc(in_shape)
    oh, ow, oc = _hwc(out_shape)
    kernel = op.attrs.get("kernel") or op.attrs.get("pool") or (1, 1)
    stride = op.attrs.get("stride") or (1, 1)
    return {"h_in": h, "w_in": w, "c_in": c, "c_out": oc, "kernel": int(kernel[0]), "stride": int(stride[0]),
            "h_out": oh, "w_out": ow, "macs": op_work(graph, op).macs,
            "in_elems": sum(a.size for a in acts), "out_elems": t[op.outputs[0]].size}


TARGETS = ("log_ms", "log_ms_per_work", "log_ratio_baseline")
# Derived features the ``log_ratio_baseline`` forests see besides ``FEATURES``: kernel taps, weight
# bytes and output pixels (log2(1 + x)), and how full XNNPACK's channel tiles are (channels over
# channels rounded up to 8 or 16: its int8 GEMM and depthwise microkernels step 8 or 16 channels, and a
# 1- to 6-channel layer pays for a whole tile).
EXTRA_FEATURES = ("taps", "weight_bytes", "out_pixels", "c_in_tile8", "c_out_tile8", "c_out_tile16")
# The physical baseline of a kernel (``baseline_terms``): a dispatch (1 us), MACs with the channels
# padded to XNNPACK's tiles (millions), activation elements read and written (millions), weight bytes
# (millions); one non-negative coefficient each per kind, in ms per unit.
BASELINE_TERMS = ("dispatch_us", "tile_macs_m", "act_elems_m", "weight_bytes_m")
_SPLIT_FROM = {"dwconv_large": "dwconv", "avgpool": "pool"}


def kernel_work(config: Mapping[str, float]) -> float:
    """What a kernel's time grows with: its MACs, or for a kernel without (pool, add, mean) the larger
    of its input and output elements. A forest that predicts time per unit of work extrapolates to
    kernels larger than any it was fitted on; one that predicts time cannot."""
    return max(float(config["macs"]), float(config["in_elems"]), float(config["out_elems"]), 1.0)


def feature_vector(config: Mapping[str, float]) -> np.ndarray:
    """``FEATURES`` of a kernel configuration as the regressors see them: log2(1 + x)."""
    return np.log2(1.0 + np.array([float(config[f]) for f in FEATURES], dtype=np.float64))


def _up(x: float, tile: int) -> float:
    return float(tile * math.ceil(max(x, 1.0) / tile))


def weight_bytes(kind: str, config: Mapping[str, float]) -> float:
    """int8 weight bytes of a kernel: what it reads besides activations (0 for kinds without weights)."""
    taps = float(config["kernel"]) ** 2
    if kind in ("conv", "conv1x1", "fc"):
        return float(config["c_in"]) * float(config["c_out"]) * taps
    if kind in ("dwconv", "dwconv_large"):
        return float(config["c_out"]) * taps
    return 0.0


def extended_feature_vector(kind: str, config: Mapping[str, float]) -> np.ndarray:
    """``FEATURES`` then ``EXTRA_FEATURES`` of a kernel: what the ``log_ratio_baseline`` forests see."""
    c_in, c_out = float(config["c_in"]), float(config["c_out"])
    logs = np.log2(1.0 + np.array([float(config["kernel"]) ** 2, weight_bytes(kind, config),
                                   float(config["h_out"]) * float(config["w_out"])]))
    tiles = np.array([max(c_in, 1.0) / _up(c_in, 8), max(c_out, 1.0) / _up(c_out, 8), max(c_out, 1.0) / _up(c_out, 16)])
    return np.concatenate([feature_vector(config), logs, tiles])


def baseline_terms(kind: str, config: Mapping[str, float]) -> np.ndarray:
    """``BASELINE_TERMS`` of a kernel: a roofline-like sum (dispatch + compute + memory) whose coefficients
    are fitted per kind, so that the forest only learns the ratio of the kernel's time to it. The
    baseline is linear in the kernel's size, so it extrapolates past the largest sampled kernel and keeps
    the per-kernel dispatch of small ones (which time per MAC does not). MAC kernels count their MACs
    with output channels padded to 16 and input channels to 8 (XNNPACK's tiles); others their MACs."""
    pixels = float(config["h_out"]) * float(config["w_out"])
    taps = float(config["kernel"]) ** 2
    if kind in ("conv", "conv1x1", "fc"):
        macs = pixels * _up(config["c_out"], 16) * taps * _up(config["c_in"], 8)
    elif kind in ("dwconv", "dwconv_large"):
        macs = pixels * _up(config["c_out"], 16) * taps
    else:
        macs = float(config["macs"])
    acts = float(config["in_elems"]) + float(config["out_elems"])
    return np.array([1e-3, macs * 1e-6, acts * 1e-6, weight_bytes(kind, config) * 1e-6])


def model_features(target: str) -> list[str]:
    """The feature names a model of ``target`` is fitted on (its JSON ``features``)."""
    return list(FEATURES) + (list(EXTRA_FEATURES) if target == "log_ratio_baseline" else [])


@dataclass(frozen=True)
class Tree:
    """One regression tree as sklearn stores it: node arrays, leaves have children -1."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Leaf value of each row of ``x`` (rows, features)."""
        node = np.zeros(len(x), dtype=np.int64)
        rows = np.arange(len(x))
        for _ in range(len(self.left)):  # bounded by the depth; stops when every row is at a leaf
            inner = self.left[node] >= 0
            if not inner.any():
                break
            n = node[inner]
            go_left = x[rows[inner], self.feature[n]] <= self.threshold[n]
            node[inner] = np.where(go_left, self.left[n], self.right[n])
        return self.value[node]

    def to_json(self) -> dict[str, list]:
        return {"left": self.left.tolist(), "right": self.right.tolist(), "feature": self.feature.tolist(),
                "threshold": self.threshold.tolist(), "value": self.value.tolist()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str, n_features: int = len(FEATURES)) -> "Tree":
        try:
            arrays = (np.asarray(data["left"], dtype=np.int64), np.asarray(data["right"], dtype=np.int64),
                      np.asarray(data["feature"], dtype=np.int64), np.asarray(data["threshold"], dtype=np.float64),
                      np.asarray(data["value"], dtype=np.float64))
        except (KeyError, TypeError, ValueError) as exc:
            raise CostError(f"{where}: a tree needs left, right, feature, threshold and value arrays ({exc!r}); "
                            "calibrate again (tinynas calibrate --measure host)") from None
        n = len(arrays[0])
        if n == 0 or any(len(a) != n for a in arrays) or arrays[0].max() >= n or arrays[1].max() >= n \
                or (arrays[2][arrays[0] >= 0] >= n_features).any():
            raise CostError(f"{where}: tree arrays are empty, of different lengths or point outside the tree; "
                            "calibrate again (tinynas calibrate --measure host)")
        return cls(*arrays)


@dataclass(frozen=True)
class KernelLatencyModel:
    """Per-kind forests predicting log(kernel ms) from ``feature_vector``, or with ``target``
    ``log_ms_per_work`` log(kernel ms / ``kernel_work``), or with ``log_ratio_baseline`` (what calibrate
    fits) log(kernel ms / baseline) from ``extended_feature_vector``, where the baseline is
    ``baseline_terms`` times the kind's ``baselines`` coefficients; a model's latency is
    ``invoke_ms`` + ``op_ms`` per kernel + the sum over its kernels, each times its kind's entry of
    ``group_scales`` (else ``kernel_scale``). The scales and ``op_ms`` are fitted on a few
    whole models: a kernel alone runs with other caches and its own dispatch than inside a model, and
    the per-kernel dispatch cost is lost when the empty model's time is subtracted from each kernel.
    A kind without a forest costs ``fallback_ms``."""

    forests: dict[str, tuple[Tree, ...]]
    invoke_ms: float
    threads: int = 1
    kernel_scale: float = 1.0
    fallback_ms: float = 0.0
    target: str = "log_ms"
    group_scales: dict[str, float] = field(default_factory=dict)
    op_ms: float = 0.0
    baselines: dict[str, tuple[float, ...]] = field(default_factory=dict)
    source: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    def kernel_ms(self, kind: str, configs: list[Mapping[str, float]]) -> np.ndarray:
        if not configs:
            return np.zeros(0)
        # a model fitted before dwconv_large and avgpool were kinds of their own priced them as these
        trees = self.forests.get(kind) or self.forests.get(_SPLIT_FROM.get(kind, ""))
        if not trees:
            return np.full(len(configs), self.fallback_ms)
        if self.target == "log_ratio_baseline":
            coef = np.asarray(self.baselines.get(kind) or self.baselines.get(_SPLIT_FROM.get(kind, ""), ()))
            if coef.shape != (len(BASELINE_TERMS),):
                return np.full(len(configs), self.fallback_ms)
            x = np.stack([extended_feature_vector(kind, c) for c in configs])
            base = np.array([max(float(baseline_terms(kind, c) @ coef), 1e-6) for c in configs])
            return np.exp(np.mean([t.predict(x) for t in trees], axis=0)) * base
        x = np.stack([feature_vector(c) for c in configs])
        ms = np.exp(np.mean([t.predict(x) for t in trees], axis=0))
        if self.target == "log_ms_per_work":
            ms = ms * np.array([kernel_work(c) for c in configs])
        return ms

    def group_sums(self, graph: Graph) -> tuple[dict[str, float], int]:
        """Unscaled predicted kernel milliseconds of ``graph`` summed per kernel kind, and its
        number of kernels: what the whole-model correction is fitted on."""
        by_kind: dict[str, list[dict[str, float]]] = {}
        for op in graph.ops:
            if op.kind == "RESHAPE":  # XNNPACK makes it a view of the same buffer
                continue
            by_kind.setdefault(kernel_kind(op, graph), []).append(kernel_features(op, graph))
        sums = {kind: float(self.kernel_ms(kind, configs).sum()) for kind, configs in by_kind.items()}
        return sums, sum(len(c) for c in by_kind.values())

    def predict_ms(self, graph: Graph) -> float:
        """Predicted milliseconds of one inference of ``graph`` (the converter's view: one op, one kernel)."""
        sums, kernels = self.group_sums(graph)
        total = sum(self.group_scales.get(g, self.kernel_scale) * ms for g, ms in sums.items())
        return float(self.invoke_ms + self.op_ms * kernels + total)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "features": model_features(self.target), "invoke_ms": self.invoke_ms,
                "threads": self.threads,
                "kernel_scale": self.kernel_scale, "fallback_ms": self.fallback_ms, "target": self.target,
                "group_scales": self.group_scales,
                "op_ms": self.op_ms, "source": self.source,
                "baselines": {k: list(v) for k, v in self.baselines.items()},
                "stats": self.stats,
                "forests": {k: [t.to_json() for t in trees] for k, trees in self.forests.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "kernel latency model") -> "KernelLatencyModel":
        """Raises CostError naming ``where`` and the field for a file this version cannot read."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise CostError(f"{where}: format must be {FORMAT!r}; calibrate again (tinynas calibrate --measure host)")
        target = str(data.get("target", "log_ms"))
        if target not in TARGETS:
            raise CostError(f"{where}: target must be one of {', '.join(TARGETS)}, got {target!r}; "
                            "calibrate again (tinynas calibrate --measure host)")
        features = model_features(target)
        if list(data.get("features", ())) != features:
            raise CostError(f"{where}: features {data.get('features')} are not this tinynas's {features} "
                            f"for target {target!r}; calibrate again (tinynas calibrate --measure host)")
        forests = data.get("forests")
        if not isinstance(forests, Mapping) or set(forests) - set(KINDS):
            raise CostError(f"{where}: forests must map kernel kinds ({', '.join(KINDS)}) to lists of trees")
        try:
            invoke = float(data["invoke_ms"])
            fallback = float(data.get("fallback_ms", 0.0))
            scale = float(data.get("kernel_scale", 1.0))
            op_ms = float(data.get("op_ms", 0.0))
            groups = {str(k): float(v) for k, v in dict(data.get("group_scales", {})).items()}
        except (KeyError, TypeError, ValueError):
            raise CostError(f"{where}: invoke_ms, op_ms and group_scales must be numbers") from None
        baselines = _baselines_from_json(data.get("baselines", {}), forests, target=target, where=where)
        if not (all(math.isfinite(v) and v >= 0 for v in (invoke, fallback, op_ms))
                and all(math.isfinite(v) and v > 0 for v in (scale, *groups.values()))):
            raise CostError(f"{where}: invoke_ms, op_ms and fallback_ms must be finite and not negative, "
                            "kernel_scale and group_scales positive; "
                            "calibrate again (tinynas calibrate --measure host)")
        return cls(forests={k: tuple(Tree.from_json(t, where=f"{where}: forests.{k}", n_features=len(features))
                                     for t in v)
                            for k, v in forests.items()},
                   invoke_ms=invoke, threads=int(data.get("threads", 1)), kernel_scale=scale, fallback_ms=fallback,
                   group_scales=groups, op_ms=op_ms, target=target, baselines=baselines,
                   source=str(data.get("source", "")), stats=dict(data.get("stats", {})))


def _baselines_from_json(data: Any, forests: Mapping[str, Any], *, target: str,
                         where: str) -> dict[str, tuple[float, ...]]:
    """``baselines`` of a model file, checked: with target ``log_ratio_baseline`` every kind with a forest
    needs ``len(BASELINE_TERMS)`` finite, non-negative coefficients, not all zero."""
    if not isinstance(data, Mapping):
        raise CostError(f"{where}: baselines must map kernel kinds to lists of {len(BASELINE_TERMS)} numbers "
                        f"({', '.join(BASELINE_TERMS)}); calibrate again (tinynas calibrate --measure host)")
    out: dict[str, tuple[float, ...]] = {}
    for kind, coef in data.items():
        try:
            values = tuple(float(v) for v in coef)
        except (TypeError, ValueError):
            values = ()
        if len(values) != len(BASELINE_TERMS) or not all(math.isfinite(v) and v >= 0 for v in values) \
                or not any(v > 0 for v in values):
            raise CostError(f"{where}: baselines.{kind} must be {len(BASELINE_TERMS)} finite, non-negative "
                            f"numbers, not all zero ({', '.join(BASELINE_TERMS)}), got {coef!r}; "
                            "calibrate again (tinynas calibrate --measure host)")
        out[str(kind)] = values
    if target == "log_ratio_baseline" and (missing := sorted(set(forests) - set(out))):
        raise CostError(f"{where}: target 'log_ratio_baseline' needs baselines for every forest; "
                        f"missing {', '.join(missing)}; calibrate again (tinynas calibrate --measure host)")
    return out


def kernel_model_path(profile_id: str, *, home: Path | None = None) -> Path:
    """Where ``tinynas calibrate --measure host`` writes ``profile_id``'s kernel model (beside its overlay)."""
    from tinynas.hardware.loader import overlay_path

    return overlay_path(profile_id, home=home).with_name(f"{profile_id}.kernels.json")


_CACHE: dict[str, tuple[tuple[int, int], KernelLatencyModel]] = {}


def load_kernel_model(profile_id: str, *, home: Path | None = None) -> KernelLatencyModel | None:
    """The profile's kernel model, or None when it has none (the cycles-per-MAC model then prices it).
    Cached by file size and mtime; raises CostError for a file that is there but unreadable."""
    path = kernel_model_path(profile_id, home=home)
    try:
        st = os.stat(path)
    except OSError:
        return None
    stamp = (st.st_size, st.st_mtime_ns)
    cached = _CACHE.get(str(path))
    if cached and cached[0] == stamp:
        return cached[1]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CostError(f"{path}: not a readable JSON kernel latency model ({exc}); delete it or calibrate again "
                        "(tinynas calibrate --measure host)") from None
    model = KernelLatencyModel.from_json(data, where=str(path))
    _CACHE[str(path)] = (stamp, model)
    return model


def save_kernel_model(profile_id: str, model: KernelLatencyModel, *, home: Path | None = None) -> Path:
    """Write the model atomically beside the profile's overlay and return its path."""
    path = kernel_model_path(profile_id, home=home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(model.to_json()) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    _CACHE.pop(str(path), None)
    return path
