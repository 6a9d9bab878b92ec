#!/usr/bin/env bash
# Sets everything up and runs tinynas's main job on a default that needs no download:
# `tinynas run` on the built-in digits dataset for the Arduino Nano 33 BLE (nano33ble):
# staged search (zero-cost prefilter -> evolution on 3-epoch trainings -> full training
# of the top 3), int8 quantization checked in the TFLite Micro interpreter, C arrays, an
# Arduino project, and a report (runs/demo-digits-nano33ble/report.md, pareto.png).
# About 5-8 minutes on 2 cores. Running it again resumes or, when finished, just reports;
# extra arguments go to `tinynas run` (e.g. --budget-candidates 48 --out runs/other).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/tinynas run --profile nano33ble --dataset digits --budget-candidates 24 --workers 2 \
  --out runs/demo-digits-nano33ble "$@"
