"""Time and peak memory of the exact 30x30 Hessian of the validation loss in alpha (RobustDARTS's eigenvalue)
on the NB201 cell supernet: the shipped way (``_State.hessian``: one Hessian-vector product per entry of
alpha) against ``tape.jacobian`` of the alpha gradient, vectorised (pfor, TensorFlow's default) and as a
loop. Each way runs in a process of its own so that its peak RSS is its own. Prints a table; usage:

    PYTHONPATH=. .venv/bin/python scripts/bench_darts_hessian.py [--cells-per-stage 5] [--samples 256]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

WAYS = ("hvp-columns", "jacobian-pfor", "jacobian-loop")


def measure(way: str, *, cells_per_stage: int, channels: int, samples: int, calls: int) -> dict:
    import numpy as np
    import tensorflow as tf

    from tinynas.darts import DartsConfig
    from tinynas.darts.cell import build_cell_supernet
    from tinynas.darts.search import _State
    from tinynas.data import load_dataset

    digits = load_dataset("digits")
    model = build_cell_supernet(input_shape=(8, 8, 1), num_classes=10, cells_per_stage=cells_per_stage,
                                base_channels=channels)
    state = _State(model, DartsConfig(), shape=(6, 5))
    state.alpha.assign(np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32))
    x = digits.x_train[:samples].astype(np.float32)
    y = digits.y_train[:samples].astype(np.int32)

    @tf.function
    def jacobian(x, y, *, pfor: bool):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                loss = state._loss(x, y, state.mixing_mean_tensor())
            grad = inner.gradient(loss, state.alpha)
        return tf.reshape(outer.jacobian(grad, state.alpha, experimental_use_pfor=pfor), (30, 30))

    if way == "hvp-columns":
        def hessian():
            return state.hessian(x, y)
    else:
        pfor = way == "jacobian-pfor"

        def hessian():
            return jacobian(tf.constant(x), tf.constant(y), pfor=pfor).numpy()

    seconds = []
    for _ in range(calls):
        t0 = time.perf_counter()
        h = hessian()
        seconds.append(time.perf_counter() - t0)
    eig = float(np.linalg.eigvalsh(0.5 * (h + h.T))[-1])
    return {"way": way, "first_s": seconds[0], "next_s": min(seconds[1:]) if calls > 1 else None, "eigenvalue": eig,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells-per-stage", type=int, default=5)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--samples", type=int, default=256, help="validation samples (DartsConfig.hessian_samples)")
    parser.add_argument("--calls", type=int, default=2, help="Hessians per way; the first includes tracing")
    parser.add_argument("--ways", default=",".join(WAYS))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: measure one way, print JSON
    args = parser.parse_args()
    sizes = dict(cells_per_stage=args.cells_per_stage, channels=args.channels, samples=args.samples,
                 calls=args.calls)
    if args.one:
        print(json.dumps(measure(args.one, **sizes)))
        return
    print(f"NB201 cell supernet: {args.cells_per_stage} cells per stage, C={args.channels}, "
          f"{args.samples} digits samples; {args.calls} Hessians per way, each in its own process")
    print(f"{'way':15} {'first s':>8} {'next s':>7} {'peak RSS GB':>12} {'eigenvalue':>11}")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for way in args.ways.split(","):
        # the child parses this command line's own sizes, then measures the one way
        proc = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--one", way], env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{way:15} failed (exit {proc.returncode}): {proc.stderr.strip()[-200:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        nxt = "-" if r["next_s"] is None else f"{r['next_s']:.1f}"
        print(f"{way:15} {r['first_s']:8.1f} {nxt:>7} {r['peak_rss_gb']:12.2f} {r['eigenvalue']:11.5f}")


if __name__ == "__main__":
    main()
