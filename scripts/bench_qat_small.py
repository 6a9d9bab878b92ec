"""QAT on small training sets: one pass per epoch against epochs of at least 1,000 samples, and the rate.

Since ``TrainBudget.on_train_set``, a model trained on UCR GunPoint's 42 training series passes over them 24
times per epoch, but QAT's 20 epochs stayed single passes (40 steps of 1e-4 at 32 per batch), and int8 fell
further below float than post-training quantization alone on some winners. This retrains the winners of
``benchmarks/sequence_spaces/small_sets/results_passes_tiebreak.json`` (``--space``; each training seed plus
each of ``--seed-offsets``) at the final training's budget (30 epochs, passes), then quantizes each four
ways and prints int8 test accuracy in TFLite Micro:

- ``ptq``: post-training quantization alone;
- ``1pass_1e-4``: QAT as it was (``QATSettings(learning_rate=1e-4, min_epoch_samples=1)``);
- ``passes_1e-4``: QAT epochs of at least 1,000 samples at the old rate;
- ``passes_3e-5``: the default now (``QATSettings()``).

Deploy's choice between PTQ and QAT on the validation split is left out: every variant is measured.
TensorFlow runs on one thread.

    .venv/bin/python scripts/bench_qat_small.py [--space tinyformer] [--seed-offsets 0,10,20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WINNERS = ROOT / "benchmarks" / "sequence_spaces" / "small_sets" / "results_passes_tiebreak.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="tinyformer", help="whose winners are retrained (tinyformer or dscnn)")
    p.add_argument("--seed-offsets", default="0,10,20", help="added to each winner's seed: one training each")
    p.add_argument("--epochs", type=int, default=30, help="the float training's epochs (the benchmark's final)")
    args = p.parse_args()

    import numpy as np

    from tinynas.data import load_dataset
    from tinynas.deploy.interpreter import int8_accuracy
    from tinynas.deploy.qat import QATSettings, qat_finetune
    from tinynas.deploy.quantize import quantize_int8
    from tinynas.space import Arch, get_space
    from tinynas.train import TrainBudget, train_graph

    variants = {"1pass_1e-4": QATSettings(learning_rate=1e-4, min_epoch_samples=1),
                "passes_1e-4": QATSettings(learning_rate=1e-4), "passes_3e-5": QATSettings()}
    columns = ["float", "ptq", *variants]
    winners, seen = [], set()
    for run in json.loads(WINNERS.read_text())["runs"]:
        key = (run["dataset"], json.dumps(run["arch"], sort_keys=True), run["seed"])
        if run["space"] == args.space and key not in seen:  # boards share some winners
            seen.add(key)
            winners.append(run)
    print(f"{'dataset':<13} {'seed':>4}  " + "  ".join(f"{c:>11}" for c in columns) + "  seconds")
    rows = []
    for offset in (int(o) for o in args.seed_offsets.split(",")):
        for run in winners:
            started = time.perf_counter()
            ds = load_dataset(run["dataset"])
            space = get_space(args.space, input_shape=ds.input_shape, num_classes=ds.num_classes)
            budget = TrainBudget(epochs=args.epochs).on_train_set(len(ds.y_train))
            seed = run["seed"] + offset
            model = train_graph(space.graph(Arch.from_dict(args.space, run["arch"])), ds, budget=budget, seed=seed,
                                return_model=True).model
            rep = np.concatenate([ds.x_train, ds.x_val])[:200].astype(np.float32)  # as deploy tops it up
            x, y = ds.x_test.astype(np.float32), ds.y_test
            row = {"float": float(np.mean(model.predict(x, verbose=0).argmax(axis=1) == y)),
                   "ptq": int8_accuracy(quantize_int8(model, representative=rep), x=x, y=y)}
            for name, settings in variants.items():
                tuned = qat_finetune(model, x_train=ds.x_train, y_train=ds.y_train, settings=settings)
                row[name] = int8_accuracy(quantize_int8(tuned, representative=rep), x=x, y=y)
            rows.append(row)
            print(f"{run['dataset']:<13} {seed:>4}  " + "  ".join(f"{row[c]:>11.3f}" for c in columns)
                  + f"  {time.perf_counter() - started:7.0f}", flush=True)
    print(f"\nmean over {len(rows)} models (%): " + ", ".join(
        f"{c} {100 * statistics.mean(r[c] for r in rows):.2f}" for c in columns))
    for name in variants:
        better = sum(r[name] > r["ptq"] for r in rows)
        worse = sum(r[name] < r["ptq"] for r in rows)
        print(f"{name}: better than ptq on {better}, worse on {worse}")


if __name__ == "__main__":
    main()
