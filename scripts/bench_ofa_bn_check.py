"""Is it the BatchNorm or the convolutions? Train only BN gamma/beta (or everything) of one stride-shifted subnet.

Loads a trained digits supernet (``--weights``: a supernet.npz or phase_*.npz), takes
subnets whose stride-2 positions differ from the full network's (the full net at 16
and 24 px, stage 1 left out at 8 px), and for each trains, from the same weights,
either only the BatchNorm affine parameters (``bn``) or every weight (``all``) of that
one subnet for ``--steps`` Adam steps (3e-3, batch 64, cross-entropy), printing its
recalibrated validation accuracy before and after, and the full network's after. If
``bn`` alone lifts a subnet from chance, per-pattern BatchNorm is the fix; if only
``all`` does, the shared convolutions are the problem.

    PYTHONPATH=. nice -n 10 .venv/bin/python scripts/bench_ofa_bn_check.py --weights DIR/supernet.npz --modes bn,all
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def fine_tune(forward, arch, variables, ds, *, steps: int) -> float:
    """Train only ``variables`` of the supernet through ``arch`` for ``steps`` Adam steps (batch 64,
    lr 3e-3, cross-entropy on the training split); returns the seconds it took."""
    import numpy as np
    import tensorflow as tf

    from tinynas.ofa.shrinking import _Adam

    adam, rng, began = _Adam(tf, variables), np.random.default_rng(0), time.time()
    for _ in range(steps):
        idx = rng.choice(len(ds.y_train), 64, replace=False)
        with tf.GradientTape() as tape:
            logits = forward.logits(arch, ds.x_train[idx])
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                ds.y_train[idx].astype(np.int32), logits))
        adam.apply(tape.gradient(loss, variables), 3e-3)
    return time.time() - began


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--max-width", type=float, default=0.35)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--modes", default="bn,all")
    args = p.parse_args()
    import numpy as np

    from tinynas.data.base import load_dataset
    from tinynas.ofa.compiled import CompiledForward
    from tinynas.ofa.plan import largest_archs, stride_pattern
    from tinynas.ofa.supernet import ElasticMCUNet, load_weights
    from tinynas.space.base import get_space

    ds = load_dataset("digits", seed=0)
    space = get_space("mcunet", input_shape=ds.input_shape, num_classes=ds.num_classes)
    state = load_weights(Path(args.weights))
    # supernets before README (f) have no predecessor reader slots
    net = ElasticMCUNet(space=space, max_width=args.max_width, seed=0,
                        predecessor_inputs=any("_from_s" in name for name in state))
    forward = CompiledForward(net)
    full = largest_archs(space, max_width=args.max_width)[0].replace(resolution=int(ds.input_shape[0]))
    cases = {"r16": full.replace(resolution=16), "s1_off": space.canonical(full.replace(s1_depth=0)),
             "r24": full.replace(resolution=24)}

    def acc(arch) -> float:
        stats = net.recalibrate(arch, ds.x_train)
        return float(np.mean(net.predict(arch, ds.x_val, stats).argmax(1) == ds.y_val))

    for mode in args.modes.split(","):
        for name, arch in cases.items():
            net.load_state(state, source=args.weights)
            before = acc(arch)
            names = [k for k in net.variables if k.split("@")[0].endswith(("/gamma", "/beta"))] \
                if mode == "bn" else list(net.variables)
            variables = [net.variables[k] for k in names]
            seconds = fine_tune(forward, arch, variables, ds, steps=args.steps)
            print(f"{mode}-only {args.steps} steps ({seconds:.0f} s): {name} strides "
                  f"{stride_pattern(net.plan(arch))} {before:.3f} -> {acc(arch):.3f}; full network now {acc(full):.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
