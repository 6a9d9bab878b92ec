"""Fixtures for the measurement tests: the KWS reference model, its arena, a test board profile,
and a board emulator serving on a real pseudo-terminal in a background thread."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX only")

# A small Cortex-M4F-like board; the latency numbers are in the range REFERENCE.md section 6 gives.
PROFILE_TOML = """
id = "{id}"
name = "Test board (Cortex-M4F, 80 MHz)"
kind = "mcu"
core = "cortex-m4f"
clock_hz = 80000000
fpu = true

[memory]
sram_bytes = 262144
flash_bytes = 1048576
reserved_sram_bytes = 16384
runtime_flash_bytes = 131072

[runtime]
name = "tflm"
kernel_library = "cmsis-nn"

[latency]
source = "tests/measure: made-up coefficients"
op_overhead_cycles = 3000.0
invoke_overhead_cycles = 10000.0

[latency.cycles_per_mac]
default = 4.0
CONV_2D = 3.0
DEPTHWISE_CONV_2D = 5.0
FULLY_CONNECTED = 4.5

[latency.cycles_per_element]
default = 2.0
MEAN = 3.0
SOFTMAX = 20.0

[serial]
baud = 115200
usb_ids = ["2341:805a"]
reset = "none"
boot_wait_s = 0.5

[ecosystem]
default_template = "cmake-cortexm"
cmake_cpu = "cortex-m4"
"""


@pytest.fixture(scope="session")
def kws_path(mlperf_models: dict[str, Path]) -> Path:
    return mlperf_models["kws"]


@pytest.fixture(scope="session")
def kws_bytes(kws_path: Path) -> bytes:
    return kws_path.read_bytes()


@pytest.fixture(scope="session")
def kws_arena(kws_bytes: bytes) -> int:
    from tinynas.deploy.arena import measure_arena_bytes

    return measure_arena_bytes(kws_bytes)


@pytest.fixture
def profile_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A user profile folder with 'testboard' and a private TINYNAS_HOME (overlays go there)."""
    from tinynas.hardware import clear_cache

    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "testboard.toml").write_text(PROFILE_TOML.format(id="testboard"))
    home = tmp_path / "home"
    monkeypatch.setenv("TINYNAS_PROFILE_PATH", str(folder))
    monkeypatch.setenv("TINYNAS_HOME", str(home))
    clear_cache()
    yield {"profiles": folder, "home": home}
    clear_cache()


@pytest.fixture
def profile(profile_env: dict[str, Path]):
    from tinynas.hardware import load_profile

    return load_profile("testboard")


@pytest.fixture
def emulator(kws_bytes: bytes, kws_arena: int) -> Iterator[Callable[..., object]]:
    """``emulator(**kwargs)`` starts a BoardEmulator for the KWS model; all are stopped afterwards."""
    from tinynas.measure.emulator import BoardEmulator

    started: list[BoardEmulator] = []

    def start(**kwargs: object) -> BoardEmulator:
        kwargs.setdefault("latency", "host")
        emu = BoardEmulator(kws_bytes, arena_used_bytes=kws_arena, **kwargs)
        emu.start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()

