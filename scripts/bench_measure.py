"""How long a full latency measurement takes against the board emulator on a pseudo-terminal,
with the test settings, for each fault the emulator can inject.

The goal (issue: on-device latency): a full measurement of a small model in a few
seconds with test settings; uploads that survive garbled or dropped bytes (with
the retry count reported); hangs and disconnects that end within the timeout.
Wall-clock seconds, so a busy machine shows in them. Usage:

    .venv/bin/python scripts/bench_measure.py [--model PATH] [--profile nano33ble] [--windows 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tinynas.deploy.arena import measure_arena_bytes
from tinynas.errors import MeasureError
from tinynas.hardware import load_profile
from tinynas.measure.emulator import BoardEmulator
from tinynas.measure.runner import MeasurementFailed, measure_latency
from tinynas.resources import data_dir

DEFAULT_MODEL = data_dir("benchmarks") / "mlperf_tiny" / "kws_ref_model.tflite"
SCENARIOS = [
    ("predicted", "predicted", []),
    ("predicted again", "predicted", []),
    ("host time", "host", []),
    ("garble x3", "predicted", ["garble"]),
    ("drop x3", "predicted", ["drop"]),
    ("slow 2000 B/s", "predicted", ["slow"]),
    ("hang", "predicted", ["hang"]),
    ("disconnect", "predicted", ["disconnect"]),
    ("reboot", "predicted", ["reboot"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--profile", default="nano33ble")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--min-window-s", type=float, default=0.05)
    parser.add_argument("--timeout-s", type=float, default=1.0)
    args = parser.parse_args()

    data = args.model.read_bytes()
    profile = load_profile(args.profile)
    arena = measure_arena_bytes(data)
    print(f"model {args.model.name}, profile {profile.id}, {args.windows} windows >= {args.min_window_s} s, "
          f"timeout {args.timeout_s} s")
    print(f"{'scenario':<18} {'wall s':>7} {'result':<9} {'median ms':>10} {'windows':>8} {'retries':>8}  note")
    for label, mode, faults in SCENARIOS:
        emu = BoardEmulator(data, profile=profile, latency=mode, faults=faults, arena_used_bytes=arena)
        emu.start()
        start = time.perf_counter()
        try:
            report = measure_latency(port=emu.port, model=args.model, profile=profile, windows=args.windows,
                                     min_window_s=args.min_window_s, timeout_s=args.timeout_s)
            outcome, note = "ok", f"diff {report.output_max_diff_int8} int8 steps"
        except MeasurementFailed as exc:
            report, outcome, note = exc.report, "failed", str(exc).split(";")[0][:60]
        except MeasureError as exc:
            report, outcome, note = None, "error", str(exc)[:60]
        wall = time.perf_counter() - start
        emu.stop()
        median = f"{report.latency_ms:.3f}" if report and report.latency_ms else "-"
        windows = len(report.windows) if report else 0
        retries = report.upload_retries if report else "-"
        print(f"{label:<18} {wall:>7.2f} {outcome:<9} {median:>10} {windows:>8} {retries!s:>8}  {note}")


if __name__ == "__main__":
    main()
