"""Built-in latency coefficients against the published MLPerf Tiny figures (REFERENCE.md section 6).

Estimates the four MLPerf Tiny reference models with the cost model on several
built-in profiles (no calibration overlay) and prints latency and the implied
cycles per MAC next to the published cycles per MAC, where REFERENCE.md gives one.

    .venv/bin/python scripts/bench_profile_latency.py
"""

from __future__ import annotations

import argparse
from tinynas.cost import estimate
from tinynas.hardware import load_profile
from tinynas.resources import data_dir
from tinynas.space.tflite_reader import read_tflite

MODELS = {"kws": "kws_ref_model.tflite", "vww": "vww_96_int8.tflite", "ic": "pretrainedResnet_quant.tflite",
          "ad": "ad01_int8.tflite"}
# cycles/MAC = latency x clock / MACs of published MLPerf Tiny results (REFERENCE.md s6)
PUBLISHED = {
    "ek-ra6m4": {"kws": 3.8, "vww": 4.3, "ic": 3.9, "ad": 3.5},  # RA6M4, TFLM
    "nrf5340dk": {"kws": 3.7, "vww": 4.0, "ic": 3.2, "ad": 3.0},  # microTVM + CMSIS-NN
    "nucleo-g0b1re": {"kws": 11.4, "vww": 12.1, "ic": 7.8, "ad": 9.9},  # Bosch engine
    "nano33ble": {"vww": 5.4},  # person detection on an M4 with CMSIS-NN (F413ZH)
    "esp32s3-devkitc": {"vww": 1.7},  # person detection with ESP-NN, 1.6-1.8
    "pico": {"vww": 14.0},  # person detection on RP2040, about 14
}
PROFILES = ["ek-ra6m4", "nrf5340dk", "nucleo-g0b1re", "nano33ble", "stm32f746g-disco", "esp32s3-devkitc", "pico"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    base = data_dir("benchmarks") / "mlperf_tiny"
    graphs = {name: read_tflite(base / file) for name, file in MODELS.items()}
    print("latency ms / implied cycles per MAC (published cycles per MAC)")
    print(f"{'profile':<17}" + "".join(f"{name:>25}" for name in MODELS))
    for pid in PROFILES:
        profile = load_profile(pid, overlays=False)
        cells = []
        for name, graph in graphs.items():
            cost = estimate(graph, profile=profile)
            cpm = cost.latency_ms * 1e-3 * profile.clock_hz / cost.macs
            ref = PUBLISHED.get(pid, {}).get(name)
            cells.append(f"{cost.latency_ms:8.1f} / {cpm:5.2f}" + (f" ({ref:>4})" if ref else " " * 7))
        print(f"{pid:<17}" + "".join(f"{c:>25}" for c in cells))


if __name__ == "__main__":
    main()
