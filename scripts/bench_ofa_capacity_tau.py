"""Does a subnet's size rank the 32 tau subnets of benchmarks/ofa (h)-(v) as their stand-alone training does?

A baseline for the supernet's ranking (issue 12): Kendall tau against the stored two-seed stand-alone reference
of MACs, parameters, and the rank sums of inherited accuracy with each, for every ``--tau-json`` file given.
The 32 subnets are drawn again exactly as ``bench_ofa_supernet.py --tau 32 --tau-sampler native`` draws them
(they depend on the plans of an untrained supernet, not on its weights), so no training runs: a minute.

    PYTHONPATH=. .venv/bin/python scripts/bench_ofa_capacity_tau.py benchmarks/ofa/tau_glyphs12k_native_e15_s2*.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def tau_archs(*, samples: int, max_width: float, count: int) -> list:
    """The subnets of ``--tau-sampler native`` (bench_ofa_supernet.py), in its order, without the largest."""
    import numpy as np

    from tinynas.data.base import load_dataset
    from tinynas.ofa.plan import largest_archs, stride_pattern
    from tinynas.ofa.shrinking import PHASES, _sample
    from tinynas.ofa.supernet import ElasticMCUNet
    from tinynas.space.base import get_space

    ds = load_dataset("glyphs", seed=0, num_samples=samples)
    space = get_space("mcunet", input_shape=ds.input_shape, num_classes=ds.num_classes)
    net = ElasticMCUNet(space=space, max_width=max_width, seed=0, predecessor_inputs=True)
    rng = np.random.default_rng(0)
    native = int(ds.input_shape[0])
    archs = [largest_archs(space, max_width=max_width)[0].replace(resolution=native)]
    full = stride_pattern(net.plan(archs[0]))
    for i in range(count):
        while True:
            arch = _sample(space, rng, PHASES[1 + i % 4], max_width=max_width, resolution=native)
            if stride_pattern(net.plan(arch)) == full and arch.id not in {a.id for a in archs}:
                break
        archs.append(arch)
    return [(space, a) for a in archs[1:]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("tau_json", nargs="+", help="--tau-json files of bench_ofa_supernet.py (the glyphs 12k set)")
    p.add_argument("--samples", type=int, default=12000)
    p.add_argument("--max-width", type=float, default=0.35)
    args = p.parse_args()
    import numpy as np
    from scipy.stats import kendalltau, rankdata

    from tinynas.cost import estimate

    size = {a.id: estimate(space.graph(a)) for space, a in tau_archs(samples=args.samples,
                                                                     max_width=args.max_width, count=32)}
    print("| file | n | inherited | MACs | params | inherited + MACs (rank sum) | inherited + params |")
    print("|---|---|---|---|---|---|---|")
    for path in args.tau_json:
        rows = [r for r in json.loads(Path(path).read_text())["rows"]
                if r["id"] in size and r.get("standalone") is not None]
        inherited = np.array([r["inherited"] for r in rows])
        reference = np.array([r["standalone"] for r in rows])
        macs = np.array([size[r["id"]].macs for r in rows])
        params = np.array([size[r["id"]].params for r in rows])
        taus = [kendalltau(x, reference)[0] for x in (inherited, macs, params, rankdata(inherited) + rankdata(macs),
                                                      rankdata(inherited) + rankdata(params))]
        print(f"| {Path(path).name} | {len(rows)} | " + " | ".join(f"{t:.3f}" for t in taus) + " |")


if __name__ == "__main__":
    main()
