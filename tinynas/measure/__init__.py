"""Measurement on real boards: the serial protocol, port discovery, the latency runner, a board
emulator, flashing, and calibration of a board's latency model from what was measured.

The pipeline's last stage: after ``tinynas.deploy`` writes a firmware project,
``flash_project`` puts it on the board, ``measure_latency`` measures it over
serial (docs/protocol.md), and ``calibrate`` feeds the figures back into the
profile's latency model that the cost model uses. Phones, Linux boards and
GPUs are measured by ``measure_on_target`` (LiteRT, ONNX Runtime, adb, ssh,
trtexec) into the same ``LatencyReport``.
"""

from tinynas.measure.calibrate import CalibrationResult, calibrate, graph_features, model_features
from tinynas.measure.emulator import BoardEmulator, Fault
from tinynas.measure.flash import FlashResult, flash_project
from tinynas.measure.ports import find_port, open_port
from tinynas.measure.protocol import DeviceClient, DeviceInfo, InferResult
from tinynas.measure.runner import LatencyReport, MeasurementFailed, WindowResult, measure_latency
from tinynas.measure.target import TargetSpec, measure_on_target, parse_target

__all__ = [
    "BoardEmulator",
    "CalibrationResult",
    "DeviceClient",
    "DeviceInfo",
    "Fault",
    "FlashResult",
    "InferResult",
    "LatencyReport",
    "MeasurementFailed",
    "TargetSpec",
    "WindowResult",
    "calibrate",
    "find_port",
    "flash_project",
    "graph_features",
    "measure_latency",
    "measure_on_target",
    "model_features",
    "open_port",
    "parse_target",
]
