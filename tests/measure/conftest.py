"""Fixtures for the measurement tests: the KWS reference model, its arena, a test board profile,
and a board emulator serving on a real pseudo-terminal in a background thread."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterator

import numpy as np
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
def fast() -> dict[str, float]:
    """measure_latency settings that keep a full measurement against the emulator to about a second."""
    return dict(windows=3, min_window_s=0.05, timeout_s=1.0)


@pytest.fixture
def profile_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A user profile folder with 'testboard' and a private TINYNAS_HOME (overlays go there).

    ``profile_env["write"](id, old, new)`` adds another profile: the test one with ``old`` replaced by ``new``.
    """
    from tinynas.hardware import clear_cache

    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "testboard.toml").write_text(PROFILE_TOML.format(id="testboard"))

    def write(profile_id: str, old: str = "", new: str = "") -> None:
        (folder / f"{profile_id}.toml").write_text(PROFILE_TOML.format(id=profile_id).replace(old, new))
        clear_cache()

    home = tmp_path / "home"
    monkeypatch.setenv("TINYNAS_PROFILE_PATH", str(folder))
    monkeypatch.setenv("TINYNAS_HOME", str(home))
    clear_cache()
    yield {"profiles": folder, "home": home, "write": write}
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



# -- synthetic measurements for calibration -------------------------------------------------
TRUTH = dict(
    cycles_per_mac={"default": 4.0, "CONV_2D": 2.2, "DEPTHWISE_CONV_2D": 6.5, "FULLY_CONNECTED": 3.1},
    cycles_per_element={"default": 1.5, "MEAN": 4.0, "SOFTMAX": 30.0, "MAX_POOL_2D": 2.5},
    op_overhead_cycles=4500.0, invoke_overhead_cycles=20000.0,
)


def random_graph(rng: np.random.Generator, index: int):
    """A small CNN with a random mix of the ops the models of a search space use."""
    from tinynas.space.graph import GraphBuilder

    size = int(rng.choice([16, 24, 32, 48]))
    b = GraphBuilder(input_shape=(size, size, int(rng.choice([1, 3]))), name=f"g{index}")
    x = b.conv2d(b.input, filters=int(rng.choice([4, 8, 16])), kernel=3, stride=int(rng.choice([1, 2])))
    for _ in range(int(rng.integers(0, 4))):
        if rng.random() < 0.5:
            x = b.depthwise_conv2d(x, kernel=int(rng.choice([3, 5])))
        x = b.conv2d(x, filters=int(rng.choice([8, 16, 32])), kernel=int(rng.choice([1, 3])))
        if rng.random() < 0.4 and b.shape(x)[1] >= 4:
            x = b.pool2d(x, kind="max")
    x = b.global_avg_pool(x)
    for _ in range(int(rng.integers(1, 3))):
        x = b.fully_connected(x, units=int(rng.choice([10, 32, 64])))
    return b.build(outputs=[b.softmax(x)])


def write_measurements(folder: Path, board, *, count: int, seed: int = 0, noise: float = 0.0) -> list[Path]:
    """Measurement files of ``count`` random graphs whose latency is the cost model's on ``board``."""
    from tinynas.cost import estimate
    from tinynas.measure.calibrate import graph_features
    from tinynas.measure.runner import LatencyReport, WindowResult

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        graph = random_graph(rng, i)
        ms = estimate(graph, profile=board).latency_ms * (1 + noise * rng.standard_normal())
        n = 200
        windows = tuple(WindowResult(index=w, inferences=n, elapsed_us=round(ms * 1000 * n)) for w in range(5))
        report = LatencyReport(port="/dev/ttyACM0", device={"name": "tinynas"}, profile_id=board.id,
                               model_path=f"g{i}.tflite", model_sha1=None, windows=windows, inferences_per_window=n,
                               warmup=1, min_window_s=1.0, upload_retries=0, upload_checked_by_crc=True,
                               arena_used_bytes=1000, output_max_diff_int8=0, predicted_latency_ms=None,
                               features=graph_features(graph))
        paths.append(report.save(folder / f"m{i}" / "measure" / "latency.json"))
    return paths


@pytest.fixture
def synthetic(profile) -> SimpleNamespace:
    """The test board with known TRUTH coefficients, and helpers to make measurements on it."""
    truth = replace(profile, latency=replace(profile.latency, **TRUTH))
    return SimpleNamespace(truth=truth, random_graph=random_graph, write_measurements=write_measurements)


TINYNAS = [sys.executable, "-m", "tinynas.cli.main"]


@pytest.fixture
def emulate_cli(kws_path, tmp_path):
    """Start `tinynas emulate ... --json` in a child process; yields its first line (the port facts)."""
    procs = []

    def start(*extra: str, env: dict | None = None) -> dict:
        proc = subprocess.Popen([*TINYNAS, "emulate", "--model", str(kws_path), "--json", *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **(env or {})})
        procs.append(proc)
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        return json.loads(line)

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
