"""Latency on this machine: LiteRT (with XNNPACK) for ``.tflite``, ONNX Runtime (CPU) for ``.onnx``.

What ``measure --on host`` reports and what the mobile latency model is fitted
to. Every run feeds the same random input (of the model's dtype and shape) after
``warmup`` untimed runs; the median is the figure, as in LiteRT's
``benchmark_model``. ONNX Runtime is imported here only, LiteRT through ``tinynas.deploy.litert``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinynas.errors import MeasureError


@dataclass(frozen=True)
class HostTiming:
    """Per-run wall times of one model in one runtime, in milliseconds."""

    runtime: str  # "litert" | "onnxruntime"
    threads: int
    warmup: int
    times_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return float(np.median(self.times_ms))

    @property
    def min_ms(self) -> float:
        return float(np.min(self.times_ms))

    @property
    def p90_ms(self) -> float:
        return float(np.percentile(self.times_ms, 90))

    def to_json(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "threads": self.threads, "warmup": self.warmup, "runs": len(self.times_ms),
                "median_ms": self.median_ms, "min_ms": self.min_ms, "p90_ms": self.p90_ms,
                "times_ms": [round(t, 5) for t in self.times_ms]}


def _model_bytes(model: bytes | str | Path) -> tuple[bytes, str]:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model), "<bytes>"
    path = Path(model)
    try:
        return path.read_bytes(), str(path)
    except OSError as exc:
        raise MeasureError(f"{path}: cannot read the model ({exc.strerror or exc})") from None


def _random_input(shape: Any, dtype: Any, rng: np.random.Generator) -> np.ndarray:
    shape = [int(d) if d is not None and int(d) > 0 else 1 for d in shape]
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _timed(invoke: Any, *, runs: int, warmup: int) -> tuple[float, ...]:
    if runs < 1 or warmup < 0:
        raise MeasureError(f"need at least 1 timed run and no negative warm-up, got runs={runs}, warmup={warmup}")
    for _ in range(warmup):
        invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        invoke()
        times.append(1000.0 * (time.perf_counter() - start))
    return tuple(times)


def time_litert(model: bytes | str | Path, *, threads: int = 1, runs: int = 50, warmup: int = 5,
                seed: int = 0) -> HostTiming:
    """Time ``Invoke()`` of a ``.tflite`` in LiteRT on this machine with ``threads`` CPU threads.

    Raises MeasureError when LiteRT cannot load or run the model (the message is LiteRT's)."""
    from tinynas.deploy.litert import open_interpreter

    data, name = _model_bytes(model)
    try:
        interpreter = open_interpreter(data, threads=threads)
    except Exception as exc:  # LiteRT raises ValueError/RuntimeError with its own text
        raise MeasureError(f"{name}: LiteRT cannot load this model ({str(exc).strip().splitlines()[-1]})") from None
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], _random_input(detail["shape"], detail["dtype"], rng))
    try:
        times = _timed(interpreter.invoke, runs=runs, warmup=warmup)
    except MeasureError:
        raise
    except Exception as exc:
        raise MeasureError(f"{name}: LiteRT failed to run the model ({str(exc).strip().splitlines()[-1]})") from None
    return HostTiming(runtime="litert", threads=int(threads), warmup=int(warmup), times_ms=times)


def time_onnx(model: bytes | str | Path, *, threads: int = 1, runs: int = 50, warmup: int = 5,
              seed: int = 0) -> HostTiming:
    """Time one inference of an ``.onnx`` in ONNX Runtime's CPU provider with ``threads`` intra-op threads."""
    import onnxruntime as ort

    data, name = _model_bytes(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise MeasureError(f"{name}: ONNX Runtime cannot load this model ({str(exc).strip().splitlines()[0]})") from None
    rng = np.random.default_rng(seed)
    types = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int8)": np.int8,
             "tensor(uint8)": np.uint8, "tensor(int64)": np.int64, "tensor(int32)": np.int32}
    feeds = {}
    for node in session.get_inputs():
        if node.type not in types:
            raise MeasureError(f"{name}: input {node.name!r} has type {node.type}, which tinynas cannot feed")
        shape = [d if isinstance(d, int) else 1 for d in node.shape]
        feeds[node.name] = _random_input(shape, types[node.type], rng)
    try:
        times = _timed(lambda: session.run(None, feeds), runs=runs, warmup=warmup)
    except MeasureError:
        raise
    except Exception as exc:
        raise MeasureError(f"{name}: ONNX Runtime failed to run the model ({str(exc).strip().splitlines()[0]})") from None
    return HostTiming(runtime="onnxruntime", threads=int(threads), warmup=int(warmup), times_ms=times)


def time_litert_cpu(model: bytes | str | Path, *, runs: int = 50, warmup: int = 5, seed: int = 0) -> HostTiming:
    """Like ``time_litert`` with one thread, but each run timed by the CPU time of the calling thread
    (``time.thread_time``), where LiteRT with one thread does all its work.

    On a shared machine, wall time of a run that lasts longer than a scheduler time slice grows with
    the load while a short run's median does not, so wall times of single kernels and whole models
    stop adding up; CPU time is what the run costs an otherwise idle core. Raises MeasureError like
    ``time_litert``."""
    from tinynas.deploy.litert import open_interpreter

    data, name = _model_bytes(model)
    try:
        interpreter = open_interpreter(data, threads=1)
    except Exception as exc:
        raise MeasureError(f"{name}: LiteRT cannot load this model ({str(exc).strip().splitlines()[-1]})") from None
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], _random_input(detail["shape"], detail["dtype"], rng))
    if runs < 1 or warmup < 0:
        raise MeasureError(f"need at least 1 timed run and no negative warm-up, got runs={runs}, warmup={warmup}")
    try:
        for _ in range(warmup):
            interpreter.invoke()
        times = []
        for _ in range(runs):
            start = time.thread_time_ns()
            interpreter.invoke()
            times.append((time.thread_time_ns() - start) / 1e6)
    except Exception as exc:
        raise MeasureError(f"{name}: LiteRT failed to run the model ({str(exc).strip().splitlines()[-1]})") from None
    return HostTiming(runtime="litert-cpu-time", threads=1, warmup=int(warmup), times_ms=tuple(times))
