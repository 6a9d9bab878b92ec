"""Pilot for the mcunet misses: the calibration kernels of the kinds that carry mcunet models' time
(conv1x1, dwconv, dwconv_large) timed warm, as calibration does, and with the caches flushed before
every run (``kernels_warm_cold.time_cold``), back to back so that both see the same load.

    PYTHONPATH=. python benchmarks/mobile_latency/calibration_kernels_cold.py calibration_kernels_cold_loaded.json

Kernels are ``sample_kernels(n=300, seed=0, by_source=False)``, the draw of ``rpi4.calibration.host.json``, in its order.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(out: str) -> int:
    from kernels_warm_cold import time_cold

    from tinynas.deploy.quantize import quantize_untrained
    from tinynas.measure.kernel_calibrate import _overhead_graph, sample_kernels, single_kernel_graph, time_tflite

    flush = np.zeros(48 << 20, dtype=np.uint8)
    empty = quantize_untrained(_overhead_graph(), seed=0, num_samples=4)
    ov, ov_cold = time_tflite(empty, threads=1, min_total_ms=200.0), time_cold(empty, flush, runs=30)
    rows = []
    for i, (kind, cfg, op, g) in enumerate(sample_kernels(n=300, seed=0, by_source=False)):
        if kind not in ("conv1x1", "dwconv", "dwconv_large"):
            continue
        data = quantize_untrained(single_kernel_graph(op, g), seed=i, num_samples=4)
        rows.append({"index": i, "kind": kind, "config": cfg, "warm_ms": time_tflite(data, threads=1, seed=i),
                     "cold_ms": time_cold(data, flush), "load_avg_1m": os.getloadavg()[0]})
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"overhead_ms": ov, "overhead_cold_ms": ov_cold, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "calibration_kernels_cold_loaded.json"))
