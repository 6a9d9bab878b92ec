#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the whole test suite, slow tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
# Tests run TensorFlow on one thread each, so two pytest workers use two cores; a file's tests stay
# on one worker (module fixtures such as the Ray instance are started once). TINYNAS_TEST_WORKERS=0: serial.
workers=${TINYNAS_TEST_WORKERS:-2}
if [ "$workers" = 0 ]; then
  exec .venv/bin/python -m pytest -q "$@"
fi
exec .venv/bin/python -m pytest -q -n "$workers" --dist loadfile "$@"
