"""What a phone, a Linux board or a GPU box runs beside the model: a non-MCU deploy writes these, not firmware.

``mobile``: ``run_litert.py`` (a Python runner for Linux boards: one ``.npy``
input in, class and latency out) and ``RUN_ANDROID.md`` (the ``adb push`` and
``benchmark_model`` command line). ``gpu``: ``build_trt_engine.sh`` (the
``trtexec`` command that builds a TensorRT engine from the ONNX model).
"""

from __future__ import annotations

import json
from typing import Sequence

LITERT_RUNNER = "run_litert.py"
ANDROID_README = "RUN_ANDROID.md"
TRTEXEC_SCRIPT = "build_trt_engine.sh"

_RUNNER = '''#!/usr/bin/env python3
"""Run a tinynas model in LiteRT (XNNPACK) on a Linux board: one input in, class and latency out.

Written by `tinynas deploy` for {profile_id}. Needs `pip install ai-edge-litert numpy`.
Usage: python3 run_litert.py MODEL.tflite INPUT.npy [--threads N] [--runs N]
INPUT.npy holds one sample as the model takes it, shape {input_shape} (a leading batch of 1 is fine),
float32, already scaled: {input_scaling}. int8 models are fed through their own input quantization.
"""

import argparse
import json
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter

CLASS_NAMES = {class_names}
MODEL_ID = {model_id!r}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("input")
    parser.add_argument("--threads", type=int, default={threads})
    parser.add_argument("--runs", type=int, default=20, help="timed runs after one warm-up run")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()

    interpreter = Interpreter(model_path=args.model, num_threads=args.threads)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    x = np.load(args.input).astype(np.float32).reshape(inp["shape"])
    if np.issubdtype(inp["dtype"], np.integer):
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.round(x / scale + zero), info.min, info.max)
    interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
    interpreter.invoke()  # warm-up: XNNPACK packs the weights on the first run
    times_ms = []
    for _ in range(max(1, args.runs)):
        start = time.perf_counter()
        interpreter.invoke()
        times_ms.append(1000.0 * (time.perf_counter() - start))
    y = interpreter.get_tensor(out["index"]).reshape(-1).astype(np.float32)
    if np.issubdtype(out["dtype"], np.integer):
        scale, zero = out["quantization"]
        y = (y - zero) * scale
    k = int(np.argmax(y))
    result = {{"class": k, "name": CLASS_NAMES[k] if k < len(CLASS_NAMES) else str(k), "probability": float(y[k]),
              "latency_ms": float(np.median(times_ms)), "runs": len(times_ms), "threads": args.threads}}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"class {{k}} ({{result['name']}}), p={{result['probability']:.4f}}, "
              f"latency {{result['latency_ms']:.3f}} ms (median of {{len(times_ms)}} runs, {{args.threads}} threads)")


if __name__ == "__main__":
    main()
'''

_ANDROID = """# Running {model_id} on {profile_name}

Written by `tinynas deploy` for profile `{profile_id}`.

## Linux board (Raspberry Pi and the like)

    pip install ai-edge-litert numpy
    python3 {runner} model_int8.tflite input.npy --threads {threads}
    python3 {runner} model_fp16.tflite input.npy --threads {threads}

`input.npy`: one sample of shape {input_shape}, float32, scaled as in training ({input_scaling}).

## Android (LiteRT `benchmark_model`, XNNPACK)

Get the `benchmark_model` binary for your phone's ABI (LiteRT releases, or build
`//tflite/tools/benchmark:benchmark_model`), then:

    adb push benchmark_model /data/local/tmp/
    adb shell chmod +x /data/local/tmp/benchmark_model
{push_lines}
{bench_lines}

It prints `Inference timings in us: Init: ..., First inference: ..., Warmup (avg): ..., Inference (avg): ...`.
"""

_TRTEXEC = """#!/bin/sh
# Build a TensorRT engine for {profile_name} from the ONNX model tinynas deployed ({model_id}).
# Run it on the target (trtexec ships with TensorRT / JetPack); the engine is specific to that GPU and
# TensorRT version. It prints "GPU Compute Time: min = ..., mean = ..., median = ..." at the end.
set -e
cd "$(dirname "$0")"
trtexec --onnx=model_fp16.onnx --fp16 --saveEngine=model_fp16.engine --shapes={input_name}:{shape} "$@"
# fp32 engine, for comparison:
# trtexec --onnx=model_fp32.onnx --saveEngine=model_fp32.engine --shapes={input_name}:{shape}
"""


def litert_runner(*, profile_id: str, class_names: Sequence[str], input_shape: Sequence[int], threads: int,
                  model_id: str, input_scaling: str | None) -> str:
    """The text of ``run_litert.py`` for one deploy."""
    return _RUNNER.format(profile_id=profile_id, class_names=json.dumps([str(c) for c in class_names]),
                          input_shape=tuple(int(d) for d in input_shape), threads=int(threads), model_id=model_id,
                          input_scaling=input_scaling or "as the training data")


def android_readme(*, profile_id: str, profile_name: str, model_id: str, models: Sequence[str], threads: int,
                   input_shape: Sequence[int], input_scaling: str | None) -> str:
    """The text of ``RUN_ANDROID.md``: how to run the models with the runner and with ``benchmark_model``."""
    push = "\n".join(f"    adb push {m} /data/local/tmp/" for m in models)
    bench = "\n".join(f"    adb shell /data/local/tmp/benchmark_model --graph=/data/local/tmp/{m} "
                      f"--num_threads={int(threads)} --use_xnnpack=true --num_runs=50 --warmup_runs=5"
                      for m in models)
    return _ANDROID.format(profile_id=profile_id, profile_name=profile_name, model_id=model_id, runner=LITERT_RUNNER,
                           threads=int(threads), input_shape=tuple(int(d) for d in input_shape),
                           input_scaling=input_scaling or "as the training data", push_lines=push, bench_lines=bench)


def trtexec_script(*, profile_name: str, model_id: str, input_name: str, input_shape: Sequence[int]) -> str:
    """The text of ``build_trt_engine.sh`` (batch 1, the ONNX input's own name)."""
    shape = "x".join(str(int(d)) for d in (1, *input_shape))
    return _TRTEXEC.format(profile_name=profile_name, model_id=model_id, input_name=input_name, shape=shape)
