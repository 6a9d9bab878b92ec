"""Where a whole model's time goes that its kernels measured alone do not add up to (issue 15, misses (a)).

For held-out models of ``scripts/bench_mobile_latency.py`` (``--seed 1000`` draws, by index), times the
whole model, then each of its kernels alone as calibration does (``time_tflite``: warm, the fastest run,
minus the empty model) and alone with the caches flushed before every run (48 MB touched: L2 and L3
evicted; the fastest run minus the empty model timed the same way), and writes one JSON per model:

    PYTHONPATH=. python benchmarks/mobile_latency/kernels_warm_cold.py 1 15

``warm_cold_heldout1.json`` and ``warm_cold_heldout15.json`` are its output (load average 2.3-3.5, see README).
A diagnostic, not part of tinynas: LiteRT's Python interpreter has no per-op profiler, so this is the
closest per-kernel view of a model it gives.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np


def time_cold(data: bytes, flush: np.ndarray, *, runs: int = 15) -> float:
    """Fastest CPU-time ms of ``data`` over ``runs`` runs, each after touching ``flush`` (caches cold)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data, num_threads=1)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.random.default_rng(0).integers(-128, 127, size=d["shape"]).astype(d["dtype"]))
    for _ in range(3):
        it.invoke()
    times = []
    for _ in range(runs):
        np.add(flush, 1, out=flush)
        start = time.thread_time_ns()
        it.invoke()
        times.append((time.thread_time_ns() - start) / 1e6)
    return min(times)


def main(argv: list[str]) -> int:
    from tinynas.cost.convert import converter_view
    from tinynas.cost.kernel_latency import kernel_kind
    from tinynas.deploy.quantize import quantize_untrained
    from tinynas.measure.kernel_calibrate import SPACE_INPUTS, _overhead_graph, single_kernel_graph, time_tflite
    from tinynas.space import get_space

    idx = [int(a) for a in argv] or [1]
    flush = np.zeros(48 << 20, dtype=np.uint8)
    rng = np.random.default_rng(1000)
    graphs = []
    for _ in range(max(idx) + 1):
        name, shape = SPACE_INPUTS[int(rng.integers(len(SPACE_INPUTS)))]
        space = get_space(name, input_shape=shape, num_classes=10)
        graphs.append((name, shape, space.graph(space.sample(rng))))
    empty = quantize_untrained(_overhead_graph(), seed=0, num_samples=4)
    ov, ov_cold = time_tflite(empty, threads=1, min_total_ms=200.0), time_cold(empty, flush, runs=30)
    for i in idx:
        name, shape, g = graphs[i]
        data = quantize_untrained(g, seed=i)
        whole, whole_cold = time_tflite(data, threads=1, seed=i, min_total_ms=300.0), time_cold(data, flush)
        view = converter_view(g)
        rows = []
        for j, op in enumerate(view.ops):
            if op.kind == "RESHAPE":
                continue
            kernel = quantize_untrained(single_kernel_graph(op, view), seed=j, num_samples=4)
            weights = view.tensors[op.inputs[1]].size if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D",
                                                                      "FULLY_CONNECTED") else 0
            rows.append({"j": j, "kind": kernel_kind(op, view), "warm": time_tflite(kernel, threads=1, seed=j) - ov,
                         "cold": time_cold(kernel, flush) - ov_cold, "wbytes": weights,
                         "in": view.tensors[op.inputs[0]].size, "out": view.tensors[op.outputs[0]].size})
        sys.stdout.write(f"model {i} {name} {shape}: whole {whole:.3f} ms (caches flushed {whole_cold:.3f}), kernels "
                         f"alone: warm {ov + sum(r['warm'] for r in rows):.3f}, cold "
                         f"{ov_cold + sum(r['cold'] for r in rows):.3f}; load {os.getloadavg()[0]:.2f}\n")
        with open(f"warm_cold_heldout{i}.json", "w", encoding="utf-8") as f:
            json.dump({"whole": whole, "whole_cold": whole_cold, "ov": ov, "ov_cold": ov_cold,
                       "load_avg_1m": os.getloadavg()[0], "rows": rows}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
