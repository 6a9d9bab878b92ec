"""Per-kernel dispatch inside a model, measured directly (issue 15, misses (b): models of 10-230 us).

Chains of N = 1, 8 and 16 identical small kernels (1x1 convolution, 3x3 depthwise, add; on 1x1x8 and
4x4x16 maps), each converted to int8 and timed like calibration (``time_tflite``, fastest of 3); the
cost of one more kernel in a model is (t16 - t8) / 8, against the kernel alone (t1 minus the empty
model). Writes ``dispatch_chain_loaded.json`` (measured under load 6-7, so about +-0.5 us noisy):

    PYTHONPATH=. python benchmarks/mobile_latency/dispatch_chain.py dispatch_chain_loaded.json
"""

from __future__ import annotations

import json
import os
import sys


def chain(kind: str, n: int, hw: int, c: int):  # noqa: ANN201 (a tinynas Graph)
    from tinynas.space.graph import GraphBuilder

    b = GraphBuilder(input_shape=(hw, hw, c), name=f"chain_{kind}_{n}")
    x = b.input
    for _ in range(n):  # no ReLU: a ReLU chain of random weights collapses to zeros, which XNNPACK refuses
        if kind == "conv1x1":
            x = b.conv2d(x, filters=c, kernel=(1, 1), stride=(1, 1), padding="same", activation=None, batch_norm=False)
        elif kind == "dwconv":
            x = b.depthwise_conv2d(x, kernel=(3, 3), stride=(1, 1), padding="same", activation=None, batch_norm=False)
        else:
            x = b.add(x, x, activation=None)
    return b.build(outputs=[x])


def main(out: str) -> int:
    from tinynas.deploy.quantize import quantize_untrained
    from tinynas.measure.kernel_calibrate import _overhead_graph, time_tflite

    def fastest(data: bytes) -> float:
        return min(time_tflite(data, threads=1, min_total_ms=200.0) for _ in range(3))

    empty = fastest(quantize_untrained(_overhead_graph(), seed=0, num_samples=4))
    res: dict = {"overhead_ms": empty, "load_avg_1m": os.getloadavg()[0]}
    for kind in ("conv1x1", "dwconv", "add"):
        for hw, c in ((1, 8), (4, 16)):
            t = {n: fastest(quantize_untrained(chain(kind, n, hw, c), seed=0, num_samples=4)) for n in (1, 8, 16)}
            res[f"{kind}_{hw}x{hw}x{c}"] = {"t_ms": t, "per_kernel_in_chain_ms": (t[16] - t[8]) / 8,
                                           "alone_kernel_ms": t[1] - empty, "load_avg_1m": os.getloadavg()[0]}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "dispatch_chain_loaded.json"))
