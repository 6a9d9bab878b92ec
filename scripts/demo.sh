#!/usr/bin/env bash
# Sets everything up and runs tinynas's main job on a default that needs no download.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
# Until `tinynas run` lands: the cost of the four MLPerf Tiny models on a few boards
# (MACs, flash = file size, TFLM arena, predicted latency, and what does not fit).
M=../shared/benchmarks/mlperf_tiny
exec .venv/bin/tinynas estimate $M/kws_ref_model.tflite $M/vww_96_int8.tflite $M/pretrainedResnet_quant.tflite \
  $M/ad01_int8.tflite --profile nano33ble --profile nucleo-l4r5zi --profile esp32s3-devkitc "$@"
