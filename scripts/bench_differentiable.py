"""Hardware-aware layer-wise differentiable search on mcunet or dscnn: how far is the expected latency of the final
mixing weights from the cost model's latency of the derived arch, and does the derived arch fit the board?

For each board, method and seed: a DARTS / DrNAS search over the layer-wise choices of a small base arch
(mcunet: kernel x expand of every active block, and skip; dscnn: the stem kernel, and skip of every block after
the first; sklearn digits, a few epochs), with the hinge latency/arena loss from the board's cost
tables. Prints E[LAT] of the final weights, the derived arch's cost-model latency and their relative error,
whether the derived arch fitted before repair (``changed``: blocks changed to fit), the supernet's val
accuracy and wall time. (The issue's parts (a) NB201 collapse over epochs and (b) staged with vs without
refinement are not here yet; scripts/bench_darts.py covers NB201 collapse.) Usage:

    .venv/bin/python scripts/bench_differentiable.py [--epochs 3] [--seeds 0] [--boards nucleo-l010rb,nucleo-h743zi]
        [--space mcunet|dscnn]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--methods", default="darts,drnas")
    parser.add_argument("--boards", default="nucleo-l010rb,nucleo-h743zi")
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--space", default="mcunet", choices=("mcunet", "dscnn"))
    args = parser.parse_args()

    import numpy as np

    from tinynas.cost import estimate
    from tinynas.darts import DartsConfig, relax, search_layerwise
    from tinynas.data import load_dataset
    from tinynas.hardware import load_profile
    from tinynas.space import Arch
    from tinynas.space.base import get_space
    from tinynas.tf_runtime import quiet_import

    quiet_import()
    d = load_dataset("digits")
    d = replace(d, x_train=d.x_train[:args.samples], y_train=d.y_train[:args.samples])
    space = get_space(args.space, input_shape=d.input_shape, num_classes=d.num_classes)
    if args.space == "mcunet":
        values = dict(space.sample(np.random.default_rng(0)).decisions)
        values.update(width=0.25, resolution=16, head=False, s1_depth=2, s2_depth=2, s3_depth=1, s4_depth=0,
                      s5_depth=0)
    else:  # the largest stem and depth at a width the tight boards hold
        values = {"blocks": 6, "channels": 24, "stem_kernel": "7x7", "stem_stride": "1x1"}
    base = space.canonical(Arch.from_dict(args.space, values))
    plan = relax(space, base)
    print(f"base {base.id} ({space.summary(base)}), {plan.shape[0]} mixed blocks x {plan.shape[1]} options, "
          f"digits {args.samples} train samples, {args.epochs} epochs")
    print(f"{'board':14} {'method':6} {'seed':>4} {'E[LAT] ms':>10} {'LAT ms':>9} {'err %':>7} {'budget ms':>9} "
          f"{'fits':>5} {'changed':>7} {'val acc':>7} {'s':>6}")
    for board in args.boards.split(","):
        profile = load_profile(board)
        for method in args.methods.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                cfg = DartsConfig(method=method, epochs=args.epochs, batch_size=32, hessian_every=0, seed=seed,
                                  alpha_lr=0.01)
                t0 = time.perf_counter()
                r = search_layerwise(d, plan=plan, config=cfg, profile=profile)
                derived = plan.derive(r.weights[-1])
                lat = estimate(space.graph(derived), profile=profile).latency_ms
                exp = r.expected_latency_ms[-1]
                print(f"{board:14} {method:6} {seed:>4} {exp:>10.3f} {lat:>9.3f} {100 * (exp - lat) / lat:>7.2f} "
                      f"{profile.latency_target_ms or float('nan'):>9.1f} {str(r.cost['fits']):>5} "
                      f"{r.changed_to_fit:>7} {r.val_accuracy[-1]:>7.3f} {time.perf_counter() - t0:>6.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
