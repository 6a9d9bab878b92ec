#!/usr/bin/env bash
# Sets everything up and runs tinynas's main job on a default that needs no download.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/tinynas estimate ../shared/benchmarks/mlperf_tiny/kws_ref_model.tflite --profile nano33ble "$@"
