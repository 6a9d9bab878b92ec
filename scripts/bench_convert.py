"""How long an int8 conversion takes, and that ``quantize_int8`` writes the network ``from_keras_model`` writes.

Every deployed candidate, QAT retry and sweep board pays one conversion.
``tinynas.deploy.quantize.keras_converter`` converts the traced inference call
(``from_concrete_functions``) instead of going through Keras's ExportArchive and a
SavedModel; this prints, per random arch of each image space, both times and
whether the two files hold the same network: the same ops and their tensors,
shapes, types, quantization, weights, interface and signature, tensor names and
the conversion metadata aside (anything else would change the flash cost model's
ground truth). TensorFlow runs on one thread, as in the test suite. Usage:

    .venv/bin/python scripts/bench_convert.py [--archs 2] [--seed 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

SPACES = {"mcunet": (28, 28, 1), "dscnn": (49, 10, 1), "nanonas": (28, 28, 1), "nasbench201": (28, 28, 1),
          "tinyformer": (28, 28, 1)}


def keras_export_int8(model, representative) -> bytes:
    """The int8 file as ``TFLiteConverter.from_keras_model`` converts it (the path before keras_converter)."""
    import keras
    import tensorflow as tf

    from tinynas.deploy.quantize import _batch_one, _quiet_fds

    with _quiet_fds():
        conv = tf.lite.TFLiteConverter.from_keras_model(_batch_one(keras, model, representative.shape[1:]))
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([representative[i:i + 1]] for i in range(len(representative)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
        return bytes(conv.convert())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=2, help="random archs per space")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import numpy as np

    from tinynas.deploy.flatbuffer import network_of
    from tinynas.deploy.quantize import _trained_like_statistics, quantize_int8
    from tinynas.space import get_space
    from tinynas.space.keras_builder import build_keras_model

    rng = np.random.default_rng(args.seed)
    rows = []
    for name, shape in SPACES.items():
        space = get_space(name, input_shape=shape, num_classes=10)
        for k in range(args.archs):
            arch = space.sample(rng)
            model = build_keras_model(space.graph(arch), seed=k)
            _trained_like_statistics(model, rng)
            rep = rng.normal(size=(16, *model.input_shape[1:])).astype("float32")
            start = time.perf_counter()
            before = keras_export_int8(model, rep)
            mid = time.perf_counter()
            after = quantize_int8(model, representative=rep)
            end = time.perf_counter()
            rows.append({"space": name, "arch": arch.id, "bytes": len(after), "bytes_before": len(before),
                         "same_network": network_of(before) == network_of(after),
                         "from_keras_model_s": mid - start, "tinynas_s": end - mid})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'space':<12} {'arch':<13} {'file B':>10} {'before B':>10} {'same network':>12} "
          f"{'from_keras_model s':>19} {'tinynas s':>10}")
    for r in rows:
        same = "yes" if r["same_network"] else "NO"
        print(f"{r['space']:<12} {r['arch']:<13} {r['bytes']:>10,} {r['bytes_before']:>10,} {same:>12} "
              f"{r['from_keras_model_s']:>19.2f} {r['tinynas_s']:>10.2f}")
    before, after = sum(r["from_keras_model_s"] for r in rows), sum(r["tinynas_s"] for r in rows)
    print(f"total {before:.1f} s -> {after:.1f} s ({1 - after / before:.0%} less)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
