"""Measure single kernels with LiteRT on this machine and fit a mobile/GPU profile's kernel latency model.

``tinynas calibrate --profile rpi4 --measure host --n 300``: the nn-Meter recipe
(Zhang et al., MobiSys 2021) on the host. Kernels are drawn from the converted
graphs of random architectures of the spaces (so their configurations cover what
searches produce, with larger inputs than MCUs take), each rebuilt as a one-kernel
model, quantized to int8 like the deploy path and timed with LiteRT
(``time_tflite``: the fastest run's CPU time). A kernel's latency is the model's time minus
the time of an almost empty model (one 1x1 average pool on a 1x1x1 input): the
per-invoke overhead, which the model adds back once. One random forest per kernel
kind is fitted on the log ratio of its time to a per-kind roofline baseline (``kernel_fit``) and
stored as JSON (``tinynas.cost.kernel_latency``). ``refit_calibration`` fits again from a stored
calibration (``--out``) without measuring.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tinynas.cost.convert import converter_view
from tinynas.cost.kernel_latency import KernelLatencyModel, kernel_features, kernel_kind, save_kernel_model
from tinynas.errors import MeasureError
from tinynas.measure.kernel_fit import (Correction, fit_correction, fit_forests,  # noqa: F401 (re-exported)
                                        fit_kernel_model)
from tinynas.space.graph import Graph, GraphBuilder, Op

log = logging.getLogger(__name__)

MEASURE_TARGETS = ("host",)
# Input shapes per space for mobile targets: the spaces' defaults and larger images.
SPACE_INPUTS = (("mcunet", (96, 96, 3)), ("mcunet", (160, 160, 3)), ("dscnn", (49, 10, 1)),
                ("nanonas", (64, 64, 3)), ("nanonas", (128, 128, 3)), ("mcunet", (224, 224, 3)))
MEASURED_KINDS = ("conv", "conv1x1", "dwconv", "dwconv_large", "fc", "pool", "avgpool", "add", "mean", "softmax")
# Kinds that cost about one dispatch whatever their configuration: a few samples each, the rest of
# the budget goes to the kinds whose time varies over orders of magnitude.
LIGHT_KINDS = ("add", "fc", "mean", "softmax")


def sample_kernels(*, n: int, seed: int = 0, space_inputs: Sequence[tuple[str, tuple[int, ...]]] = SPACE_INPUTS,
                   archs_per_space: int = 12, by_source: bool = True) -> list[tuple[str, dict[str, Any], Op, Graph]]:
    """``n`` kernels (kind, configuration, op, its graph) from random archs of the spaces, drawn
    round-robin over the kinds so that rare kinds (softmax, mean) are measured too; the
    ``LIGHT_KINDS`` stop at n / 30 (at least 2) kernels each.

    With ``by_source`` (the default) each kind's kernels are drawn round-robin over the (space, input)
    pairs that have that kind, so every pair gets an equal share. Drawn uniformly over distinct kernels
    instead (``by_source=False``, the draw of calibrations before it), an mcunet arch's ~45 kernels
    outnumbered a nanonas arch's 4-16: 3 of 51 sampled ``conv`` kernels were 5x5 stride-1 convolutions,
    and the held-out nanonas models built of them were 15-19 % under-predicted
    (``benchmarks/mobile_latency/README.md``)."""
    from tinynas.space import get_space

    rng = np.random.default_rng(seed)
    pool: dict[str, list[list[tuple[str, dict[str, Any], Op, Graph]]]] = {}
    seen: set[tuple] = set()
    for source, (name, shape) in enumerate(space_inputs):
        space = get_space(name, input_shape=shape, num_classes=10)
        for _ in range(archs_per_space):
            g = converter_view(space.graph(space.sample(rng)))
            for op in g.ops:
                kind = kernel_kind(op, g)
                if kind not in MEASURED_KINDS:
                    continue
                cfg = kernel_features(op, g)
                key = (kind, op.kind, op.attrs.get("activation"), *cfg.values())
                if key not in seen:
                    seen.add(key)
                    lists = pool.setdefault(kind, [[] for _ in space_inputs])
                    lists[source if by_source else 0].append((kind, cfg, op, g))
    for lists in pool.values():
        for items in lists:
            rng.shuffle(items)  # type: ignore[arg-type]
    out: list[tuple[str, dict[str, Any], Op, Graph]] = []
    kinds = sorted(pool)
    light_cap = max(2, n // 30)
    taken = dict.fromkeys(kinds, 0)

    def open_(kind: str) -> bool:
        return any(pool[kind]) and (kind not in LIGHT_KINDS or taken[kind] < light_cap)

    while len(out) < n and any(open_(k) for k in kinds):
        for kind in kinds:
            if open_(kind) and len(out) < n:
                lists = [items for items in pool[kind] if items]
                out.append(lists[taken[kind] % len(lists)].pop())
                taken[kind] += 1
    return out


def single_kernel_graph(op: Op, graph: Graph) -> Graph:
    """A graph whose one kernel is ``op`` with its configuration (an ADD adds its input to itself)."""
    t = graph.tensors
    x = [t[n] for n in op.inputs if n and not t[n].constant][0]
    a = op.attrs
    b = GraphBuilder(input_shape=x.shape[1:], name=f"kernel_{op.kind.lower()}")
    if op.kind == "CONV_2D":
        y = b.conv2d(b.input, filters=a["filters"], kernel=a["kernel"], stride=a["stride"], padding=a["padding"],
                     activation=a.get("activation"), batch_norm=False)
    elif op.kind == "DEPTHWISE_CONV_2D":
        y = b.depthwise_conv2d(b.input, kernel=a["kernel"], stride=a["stride"], padding=a["padding"],
                               depth_multiplier=a.get("depth_multiplier", 1), activation=a.get("activation"),
                               batch_norm=False)
    elif op.kind == "FULLY_CONNECTED":
        y = b.fully_connected(b.input, units=a["units"], activation=a.get("activation"))
    elif op.kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        y = b.pool2d(b.input, kind="max" if op.kind == "MAX_POOL_2D" else "avg", pool=a["pool"], stride=a["stride"],
                     padding=a["padding"])
    elif op.kind == "ADD":
        y = b.add(b.input, b.input, activation=a.get("activation"))
    elif op.kind == "MEAN":
        y = b.global_avg_pool(b.input)
    elif op.kind == "SOFTMAX":
        y = b.softmax(b.input)
    else:
        raise MeasureError(f"no single-kernel model for op {op.kind}")
    return b.build(outputs=[y])


def _overhead_graph() -> Graph:
    b = GraphBuilder(input_shape=(1, 1, 1), name="empty")
    return b.build(outputs=[b.pool2d(b.input, kind="avg", pool=1, stride=1)])


def time_tflite(data: bytes, *, threads: int, seed: int = 0, min_total_ms: float = 60.0) -> float:
    """Fastest ms of an int8 ``.tflite`` in LiteRT: enough runs to last ``min_total_ms`` (15 to 400),
    after warm-up of at least 5 runs or 20 ms. With one thread each run is timed by the thread's CPU
    time (``measure.host.time_litert_cpu``): on a shared machine wall time of long runs grows with the
    load and short ones' does not, and kernels would no longer add up to models.

    The minimum, not the median: on this shared 2-core machine other processes' TensorFlow jobs evict
    the caches and take memory bandwidth, so the CPU-time median of one model moved by up to 27 % from one
    measurement to the next while its minimum stayed within 2 % (``benchmarks/mobile_latency``).
    The minimum is what the model costs a core that has its caches to itself."""
    from tinynas.measure.host import time_litert, time_litert_cpu

    def timed(runs: int, warmup: int) -> float:
        if threads == 1:
            return time_litert_cpu(data, runs=runs, warmup=warmup, seed=seed).min_ms
        return time_litert(data, threads=threads, runs=runs, warmup=warmup, seed=seed).min_ms

    probe = timed(3, 2)
    warmup = int(min(50, max(5, 20.0 / max(probe, 1e-3))))
    return timed(int(min(400, max(15, min_total_ms / max(probe, 1e-3)))), warmup)


def _int8(graph: Graph, *, seed: int) -> bytes:
    """``graph`` quantized to int8 with random weights (as the deploy path converts), ready to time."""
    from tinynas.deploy.quantize import quantize_untrained

    return quantize_untrained(graph, seed=seed, num_samples=4)


def host_profile(profile: Any) -> Any:
    """``profile`` (an id, path or HardwareProfile) loaded, if it is one ``--measure host`` can fit:
    raises MeasureError for a microcontroller, whose latency is measured on the board, and for a GPU,
    whose kernels LiteRT on this machine would time on the CPU."""
    if isinstance(profile, (str, Path)):
        from tinynas.hardware import load_profile

        profile = load_profile(str(profile))
    if profile.kind not in ("mobile", "gpu"):
        raise MeasureError(f"{profile.id} is a {profile.kind} profile: --measure host fits mobile profiles "
                           "(LiteRT on the board itself); measure a microcontroller on the board (tinynas measure "
                           f"--run DIR) and run tinynas calibrate --profile {profile.id} DIR/measure/latency.json")
    if profile.kind == "gpu":
        raise MeasureError(f"{profile.id} is a gpu profile: --measure host times kernels in LiteRT on this "
                           "machine's CPU, not on its GPU; measure the ONNX models runs deployed on the GPU "
                           f"(tinynas measure --on trtexec, or --on ssh:USER@HOST, --model RUN/deploy/model_fp16.onnx "
                           f"--profile {profile.id}) and run tinynas calibrate --profile {profile.id} with their "
                           "latency.json files")
    return profile


@dataclass(frozen=True)
class KernelCalibration:
    """What ``calibrate_host`` measured and fitted: kernels per kind, the in-sample and 5-fold
    held-out median relative error of single-kernel predictions, the whole-model correction
    (``fit_correction``) and the whole models it was fitted on, where it was written."""

    profile_id: str
    kernels: int
    invoke_ms: float
    threads: int
    kernel_scale: float
    per_kind: dict[str, dict[str, float]]
    model_path: str | None
    samples: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    group_scales: dict[str, float] = field(default_factory=dict)
    op_ms: float = 0.0
    whole_model_error_pct: float = -1.0
    whole_models: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    seed: int = 0
    rounds: int = 1

    def to_json(self) -> dict[str, Any]:
        return {"profile_id": self.profile_id, "seed": self.seed, "rounds": self.rounds, "kernels": self.kernels,
                "invoke_ms": self.invoke_ms,
                "threads": self.threads, "kernel_scale": self.kernel_scale, "group_scales": self.group_scales,
                "op_ms": self.op_ms, "whole_model_error_pct": self.whole_model_error_pct,
                "whole_models": list(self.whole_models), "per_kind": self.per_kind,
                "model_path": self.model_path,
                "samples": list(self.samples)}


def calibrate_host(*, profile: Any, n: int = 900, seed: int = 0, threads: int | None = None, save: bool = True,
                   home: Path | None = None, whole_models: int | None = None, rounds: int = 3,
                   on_kernel: Callable[[int, int], None] | None = None) -> KernelCalibration:
    """Measure ``n`` kernels with LiteRT on this machine, fit ``profile``'s kernel latency model and
    (with ``save``) write it beside its overlay, where ``tinynas.cost`` picks it up.

    ``whole_models`` (default n / 12, at least 2, at most 50) whole random models are timed too, and fit the
    correction of the kernel sum (``fit_correction``: a scale per kernel kind, a per-kernel cost).
    ``threads`` defaults to the profile's ``[extra] threads``, else 1. Every kernel and model is converted
    once, then timed in ``rounds`` rounds, one after the other in each, and keeps its fastest round: a
    burst of other processes' load then does not hit all rounds of one kernel (conversion, ~1.5 s a
    kernel, is most of the time; a round of 900 kernels takes about half a minute). ``on_kernel`` is
    told of each converted kernel. Raises MeasureError for an MCU profile (its latency is
    measured on the board: tinynas measure + calibrate FILES), ``n < 2`` or ``rounds < 1``.
    """
    profile = host_profile(profile)
    if n < 2:
        raise MeasureError(f"--n must be at least 2 kernels, got {n}")
    threads = int(threads if threads is not None else profile.extra.get("threads", 1))
    if threads < 1:
        raise MeasureError(f"{profile.source_path or profile.id}: extra.threads must be at least 1, got {threads}")
    if rounds < 1:
        raise MeasureError(f"--rounds must be at least 1, got {rounds}")
    cpus = os.cpu_count() or 1
    if threads > cpus:
        log.warning("%s: timing %d LiteRT threads on a machine with %d CPUs measures threads waiting for each "
                    "other, not the target; calibrate with --threads %d or fewer (the model is then for that many "
                    "threads), or on a machine with %d cores", profile.id, threads, cpus, cpus, threads)
    # enough archs that every (space, input) pair still has kernels of each kind to give at large n
    kernels = sample_kernels(n=n, seed=seed, archs_per_space=max(12, n // 25))
    overhead_data = _int8(_overhead_graph(), seed=seed)
    kernel_data = []
    for i, (_, _, op, g) in enumerate(kernels):
        kernel_data.append(_int8(single_kernel_graph(op, g), seed=seed + i))
        if on_kernel is not None:
            on_kernel(i + 1, len(kernels))
    n_whole = whole_models if whole_models is not None else min(50, max(2, n // 12))
    graphs = whole_model_graphs(seed=seed, n=n_whole)
    whole_data = [_int8(g, seed=seed + j) for j, (_, _, g) in enumerate(graphs)]
    overhead_times: list[float] = []
    kernel_times: list[list[float]] = [[] for _ in kernel_data]
    whole_times: list[list[float]] = [[] for _ in whole_data]
    for _ in range(rounds):
        overhead_times.append(time_tflite(overhead_data, threads=threads, seed=seed, min_total_ms=200.0))
        for i, data in enumerate(kernel_data):
            kernel_times[i].append(time_tflite(data, threads=threads, seed=seed + i))
        for j, data in enumerate(whole_data):
            whole_times[j].append(time_tflite(data, threads=threads, seed=seed + j, min_total_ms=300.0))
    overhead = min(overhead_times)
    samples = []
    for (kind, cfg, op, _), times in zip(kernels, kernel_times):
        # log(ms) needs a positive kernel time: a floor of 0.1 us, below what a kernel costs inside a
        # model (a floor of 1 us made a 20-kernel model of 11 us cost 20 us before the correction).
        samples.append({"kind": kind, "op": op.kind, "config": cfg, "measured_ms": min(times),
                        "kernel_ms": max(min(times) - overhead, 1e-4),
                        **({"measured_rounds_ms": times} if rounds > 1 else {})})
    whole = [({"space": name, "input": "x".join(map(str, shape)), "measured_ms": min(times),
               **({"measured_rounds_ms": times} if rounds > 1 else {})}, converter_view(g))
             for (name, shape, g), times in zip(graphs, whole_times)]
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    # A kernel alone runs with other caches and its own dispatch than inside a model, and subtracting the
    # empty model's time from each kernel loses the per-kernel dispatch: a few whole models (from the
    # calibration seed, not the benchmark's) fit a scale per kernel group and a per-kernel cost.
    model, correction, rows = fit_kernel_model(
        samples=samples, whole_models=whole, invoke_ms=overhead, threads=threads, seed=seed,
        source=f"LiteRT on the host, {len(samples)} kernels, {len(whole)} whole models, {threads} thread(s), "
               f"fastest of {rounds} round(s), {stamp}",
        extra_stats={"date": stamp})
    stats = model.stats["per_kind"]
    path = save_kernel_model(profile.id, model, home=home) if save else None
    if path is not None:
        log.info("%s: kernel latency model written to %s", profile.id, path)
    return KernelCalibration(profile_id=profile.id, kernels=len(samples), invoke_ms=overhead, threads=threads,
                             kernel_scale=correction.kernel_scale, per_kind=stats,
                             model_path=str(path) if path else None, samples=tuple(samples),
                             group_scales=correction.group_scales, op_ms=correction.op_ms,
                             whole_model_error_pct=correction.median_error_pct, whole_models=tuple(rows),
                             seed=seed, rounds=rounds)


def whole_model_graphs(*, seed: int, n: int) -> list[tuple[str, tuple[int, ...], Graph]]:
    """The ``n`` whole models ``calibrate_host`` times with ``seed`` (space, input shape, graph): drawn
    with seed + 1 over ``SPACE_INPUTS``, so a stored calibration's whole models can be rebuilt."""
    from tinynas.space import get_space

    rng = np.random.default_rng(seed + 1)
    out = []
    for _ in range(n):
        name, shape = SPACE_INPUTS[int(rng.integers(len(SPACE_INPUTS)))]
        space = get_space(name, input_shape=shape, num_classes=10)
        out.append((name, shape, space.graph(space.sample(rng))))
    return out


def refit_calibration(data: Mapping[str, Any], *, where: str = "calibration", target: str | None = None,
                      ) -> KernelLatencyModel:
    """The kernel latency model of a stored calibration (``tinynas calibrate --measure host --out FILE``:
    its ``samples``, ``invoke_ms``, ``threads``, ``seed`` (0 when absent, calibrate's default) and
    ``whole_models``), fitted again without measuring: the whole models are rebuilt from the seed.
    Raises MeasureError naming ``where`` and the field when the file lacks them or its whole models are
    not the ones this tinynas draws for that seed (the spaces changed since)."""
    from tinynas.measure.kernel_fit import DEFAULT_TARGET

    try:
        samples = [{"kind": str(s["kind"]), "config": dict(s["config"]), "kernel_ms": float(s["kernel_ms"])}
                   for s in data["samples"]]
        invoke_ms, threads, seed = float(data["invoke_ms"]), int(data.get("threads", 1)), int(data.get("seed", 0))
        stored = [{"space": str(r["space"]), "input": str(r["input"]), "measured_ms": float(r["measured_ms"])}
                  for r in data.get("whole_models", [])]
    except (KeyError, TypeError, ValueError) as exc:
        raise MeasureError(f"{where}: needs samples (kind, config, kernel_ms), invoke_ms and whole_models "
                           f"(space, input, measured_ms) as tinynas calibrate --measure host --out writes them "
                           f"({exc!r})") from None
    if not samples:
        raise MeasureError(f"{where}: samples is empty; calibrate with --out to keep the measured kernels")
    whole = []
    for i, (row, (name, shape, g)) in enumerate(zip(stored, whole_model_graphs(seed=seed, n=len(stored)))):
        if (row["space"], row["input"]) != (name, "x".join(map(str, shape))):
            raise MeasureError(f"{where}: whole_models[{i}] is {row['space']} {row['input']}, but seed {seed} draws "
                               f"{name} {'x'.join(map(str, shape))} now (the spaces changed?); calibrate again")
        whole.append((row, converter_view(g)))
    model, _, _ = fit_kernel_model(samples=samples, whole_models=whole, invoke_ms=invoke_ms, threads=threads,
                                   seed=seed, target=target or DEFAULT_TARGET,
                                   source=f"refitted offline from {where}: {len(samples)} kernels, "
                                          f"{len(whole)} whole models, {threads} thread(s)")
    return model


def merge_calibrations(datas: Sequence[Mapping[str, Any]], *, where: Sequence[str]) -> dict[str, Any]:
    """One calibration from several stored runs of the same draw (``tinynas calibrate --measure host
    --out``, same seed and ``--n``): each kernel's, each whole model's and the empty model's fastest time
    over the runs, the kernel's time being its fastest model time minus the fastest empty model.

    Why: on a shared machine the fastest run of one session still moves with the other processes' load
    (the same 0.1-0.3 ms model measured 16-26 % apart in two sessions under load 4.5,
    ``benchmarks/mobile_latency/README.md``); the fastest over sessions is closer to what the kernel
    costs an idle core, which is what ``time_tflite`` aims at. Merge runs of a quiet machine only: under
    load 5-7 the fastest run of models of 5-20 us also read far too low (a 12 us model at 5.3 us), and
    a quiet run merged with a loaded one scored worse than the quiet run alone (README). Raises
    MeasureError naming the file and the row when the runs did not measure the same kernels or whole
    models."""
    if not datas or len(datas) != len(where):
        raise MeasureError("merge_calibrations needs one name in where per calibration, and at least one")
    first, name0 = datas[0], where[0]
    try:
        out = {**first, "samples": [dict(s) for s in first["samples"]],
               "whole_models": [dict(r) for r in first.get("whole_models", [])]}
        for data, name in zip(datas[1:], where[1:]):
            if int(data.get("seed", 0)) != int(first.get("seed", 0)) or len(data["samples"]) != len(out["samples"]) \
                    or len(data.get("whole_models", [])) != len(out["whole_models"]):
                raise MeasureError(f"{name}: seed, samples or whole_models differ in number from {name0}; merge only "
                                   "runs of tinynas calibrate --measure host with the same --seed, --n and "
                                   "--whole-models")
            out["invoke_ms"] = min(float(out["invoke_ms"]), float(data["invoke_ms"]))
            for i, (mine, theirs) in enumerate(zip(out["samples"], data["samples"])):
                if (mine["kind"], dict(mine["config"])) != (theirs["kind"], dict(theirs["config"])):
                    raise MeasureError(f"{name}: samples[{i}] is {theirs['kind']} {theirs['config']}, not the "
                                       f"{mine['kind']} {mine['config']} of {name0}; merge only runs with the same "
                                       "--seed and --n of the same tinynas")
                key = "measured_ms" if "measured_ms" in mine and "measured_ms" in theirs else "kernel_ms"
                mine[key] = min(float(mine[key]), float(theirs[key]))
                if key == "kernel_ms":
                    mine.pop("measured_ms", None)
            for i, (mine, theirs) in enumerate(zip(out["whole_models"], data.get("whole_models", []))):
                if (mine["space"], mine["input"]) != (theirs["space"], theirs["input"]):
                    raise MeasureError(f"{name}: whole_models[{i}] is {theirs['space']} {theirs['input']}, not the "
                                       f"{mine['space']} {mine['input']} of {name0}")
                mine["measured_ms"] = min(float(mine["measured_ms"]), float(theirs["measured_ms"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise MeasureError(f"{', '.join(where)}: needs samples (kind, config, kernel_ms), invoke_ms and whole_models "
                           f"as tinynas calibrate --measure host --out writes them ({exc!r})") from None
    for s in out["samples"]:
        if "measured_ms" in s:  # the same floor as calibrate_host
            s["kernel_ms"] = max(float(s["measured_ms"]) - float(out["invoke_ms"]), 1e-4)
    return out
