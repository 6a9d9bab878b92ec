"""How long a low-fidelity candidate training takes: the figure a search pays thousands of times.

Goal (issue: datasets and the trainer): 2 epochs on 2,000 samples of a small
mcunet arch at 32x32 takes seconds, not minutes. Prints wall and CPU seconds per
candidate (CPU seconds of this process are what other jobs on a shared machine
cannot inflate), the validation accuracy, and the same candidate trained with
``keras.Model.fit`` for comparison (``--compare-fit``). TensorFlow runs on one
thread, as in the test suite. Usage:

    .venv/bin/python scripts/bench_train.py [--repeats 3] [--compare-fit] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")


def small_mcunet(space, *, width: float = 0.25, depth: int = 1):
    """The first option of every decision, with a chosen width and per-stage depth."""
    arch = space.decode([0] * len(space.decisions()))
    changes = {"width": width}
    changes.update({f"s{i}_depth": depth for i in range(1, 6)})
    return space.canonical(arch.replace(**changes)) if hasattr(space, "canonical") else arch.replace(**changes)


def keras_fit_seconds(graph, ds, *, epochs: int, samples: int, seed: int) -> tuple[float, float]:
    """Wall and CPU seconds of the same training done by ``model.fit`` (Adam, batch 64)."""
    from tinynas.space.keras_builder import build_keras_model

    wall, cpu = time.perf_counter(), time.process_time()
    model = build_keras_model(graph, seed=seed)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(ds.x_train[:samples], ds.y_train[:samples], batch_size=64, epochs=epochs,
              validation_data=(ds.x_val, ds.y_val), verbose=0)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="candidates (seeds) per case")
    parser.add_argument("--compare-fit", action="store_true", help="also time keras.Model.fit on the first case")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    os.environ.setdefault("TINYNAS_HOME", tempfile.mkdtemp(prefix="tinynas_bench_"))
    from tinynas.data import load_dataset
    from tinynas.space import get_space
    from tinynas.train import TrainBudget, TrainCache, train_graph

    t0 = time.perf_counter()
    import tensorflow  # noqa: F401  (import time is reported apart from training)

    tf_import_s = time.perf_counter() - t0
    synthetic = load_dataset("synthetic-image", num_samples=3000, image_size=32, channels=3, num_classes=10,
                             noise=2.0)
    digits = load_dataset("digits")
    mnist1d = load_dataset("mnist1d")
    low = TrainBudget.low_fidelity(epochs=2, max_train_samples=2000)
    cases = []
    for label, ds, width, depth in (
        ("mcunet w0.25 d1 @32x32x3", synthetic, 0.25, 1),
        ("mcunet w0.5 d2 @32x32x3", synthetic, 0.5, 2),
        ("mcunet w0.25 d1 digits 8x8x1", digits, 0.25, 1),
        ("mcunet w0.25 d1 mnist1d 40x1", mnist1d, 0.25, 1),
    ):
        space = get_space("mcunet", input_shape=ds.input_shape, num_classes=ds.num_classes)
        arch = small_mcunet(space, width=width, depth=depth)
        cases.append((label, ds, space.graph(arch), arch.id))

    rows = []
    cache = TrainCache(tempfile.mkdtemp(prefix="tinynas_bench_cache_"))
    for label, ds, graph, arch_id in cases:
        walls, cpus, accs = [], [], []
        for seed in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            r = train_graph(graph, ds, budget=low, seed=seed, cache=cache, arch_id=arch_id)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            accs.append(r.val_accuracy)
        wall, cpu = time.perf_counter(), time.process_time()
        hit = train_graph(graph, ds, budget=low, seed=0, cache=cache, arch_id=arch_id)
        hit_ms = (time.perf_counter() - wall) * 1000
        assert hit.cached
        rows.append({"case": label, "train_samples": r.train_samples, "epochs": low.epochs, "params": r.params,
                     "wall_s_median": statistics.median(walls), "cpu_s_median": statistics.median(cpus),
                     "wall_s_first": walls[0], "val_accuracy_mean": statistics.mean(accs),
                     "cache_hit_ms": hit_ms})
    fit = None
    if args.compare_fit:
        label, ds, graph, _ = cases[0]
        fit = keras_fit_seconds(graph, ds, epochs=low.epochs, samples=2000, seed=0)

    if args.json:
        print(json.dumps({"tf_import_s": tf_import_s, "rows": rows,
                          "keras_fit": None if fit is None else {"wall_s": fit[0], "cpu_s": fit[1]}}, indent=2))
        return
    print(f"TensorFlow import: {tf_import_s:.1f} s (once per process, not counted below)")
    print(f"budget: {low.epochs} epochs on up to {low.max_train_samples} samples, batch {low.batch_size}, "
          f"{args.repeats} candidates (seeds) per case; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    head = f"{'case':<30} {'samples':>7} {'params':>7} {'wall s':>7} {'cpu s':>6} {'1st wall':>8} {'val acc':>7} {'hit ms':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['case']:<30} {r['train_samples']:>7} {r['params']:>7} {r['wall_s_median']:>7.2f} "
              f"{r['cpu_s_median']:>6.2f} {r['wall_s_first']:>8.2f} {r['val_accuracy_mean']:>7.3f} "
              f"{r['cache_hit_ms']:>7.1f}")
    if fit is not None:
        print(f"same first case with keras.Model.fit: {fit[0]:.2f} s wall, {fit[1]:.2f} s CPU")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
