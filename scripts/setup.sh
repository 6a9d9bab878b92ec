#!/usr/bin/env bash
# Sets up everything tinynas needs on a fresh Debian machine with Python 3.10+:
# a virtual environment in .venv with tinynas, its test tools and Ray (for --backend ray), and (as root)
# the Arm GCC and QEMU packages that tests use to compile generated C for Cortex-M.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.tinynas-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test,ray]"
  # UCR/UEA datasets: tinynas reads the .ts files in aeon's wheel and never imports aeon, so its
  # dependencies (numba, pandas) are not needed
  .venv/bin/python -m pip install -q --no-deps "aeon>=1.0,<2"
  touch "$stamp"
fi
if ! command -v arm-none-eabi-g++ >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -q && apt-get install -y -q gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm) >/dev/null 2>&1 \
    || echo "note: could not install gcc-arm-none-eabi; Cortex-M compile tests will be skipped" >&2
fi
