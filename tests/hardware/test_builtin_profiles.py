"""Every built-in profile validates, matches REFERENCE.md section 5, and has sane budgets and latency figures."""

from __future__ import annotations

import re

import pytest

from tinynas.hardware import builtin_profile_dir, list_profiles, load_profile, validate_profile_file
from tinynas.hardware.schema import BUILTIN_TEMPLATES

KB = 1024
MB = 1024 * 1024
# id: (clock_hz, sram_bytes, flash_bytes, core) as REFERENCE.md section 5 gives them (KB = KiB, MB = MiB).
SECTION5 = {
    "nano33ble": (64_000_000, 256 * KB, 1 * MB, "cortex-m4f"),
    "stm32f746g-disco": (216_000_000, 320 * KB, 1 * MB, "cortex-m7"),
    "nucleo-h743zi": (480_000_000, 1 * MB, 2 * MB, "cortex-m7"),
    "nucleo-l4r5zi": (120_000_000, 640 * KB, 2 * MB, "cortex-m4f"),
    "nucleo-l432kc": (80_000_000, 64 * KB, 256 * KB, "cortex-m4f"),
    "nucleo-l010rb": (32_000_000, 20 * KB, 128 * KB, "cortex-m0plus"),
    "nucleo-l412kb": (80_000_000, 40 * KB, 128 * KB, "cortex-m4f"),
    "nucleo-g0b1re": (64_000_000, 144 * KB, 512 * KB, "cortex-m0plus"),
    "esp32s3-devkitc": (240_000_000, 512 * KB, 8 * MB, "xtensa-lx7"),
    "pico": (133_000_000, 264 * KB, 2 * MB, "cortex-m0plus"),
    "pico2": (150_000_000, 520 * KB, 4 * MB, "cortex-m33"),
    "sparkfun-edge": (48_000_000, 384 * KB, 1 * MB, "cortex-m4f"),
    "nrf5340dk": (128_000_000, 512 * KB, 1 * MB, "cortex-m33"),
    "nicla-vision": (480_000_000, 1 * MB, 2 * MB, "cortex-m7"),
    "ek-ra6m4": (200_000_000, 256 * KB, 1 * MB, "cortex-m33"),
}
OTHERS = {"rpi4": "mobile", "pixel8-cpu": "mobile", "jetson-orin-nano": "gpu", "rtx-4090": "gpu"}
FILES = sorted(builtin_profile_dir().glob("*.toml"))


def test_the_agreed_ids_are_all_there():
    ids = {p.stem for p in FILES}
    assert ids == set(SECTION5) | set(OTHERS)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_builtin_profile_validates(path):
    profile = validate_profile_file(path)
    assert profile.id == path.stem
    assert profile.sram_budget_bytes > 0 and profile.flash_budget_bytes > 0
    assert profile.latency.source
    assert set(profile.latency.cycles_per_mac) >= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "default"}
    assert "default" in profile.latency.cycles_per_element
    assert profile.latency_target_ms is None or profile.latency_target_ms > 0
    if profile.kind == "mcu":
        assert profile.runtime == "tflm"
        assert profile.ecosystem.default_template in BUILTIN_TEMPLATES
        assert profile.serial.baud == 115200 and profile.serial.usb_ids
        # firmware and runtime take a real share, but leave most of the board to the model
        assert 0.03 * profile.sram_bytes < profile.reserved_sram_bytes < 0.7 * profile.sram_bytes
        assert 48 * KB <= profile.runtime_flash_bytes
    else:
        assert profile.runtime == "litert" and profile.ecosystem.default_template == "none"
        assert profile.latency.cycles_per_mac["CONV_2D"] < 1.0  # throughput devices: well below a cycle per MAC


@pytest.mark.parametrize("profile_id", sorted(SECTION5))
def test_mcu_facts_match_reference_section_5(profile_id):
    p = load_profile(profile_id)
    clock, sram, flash, core = SECTION5[profile_id]
    assert (p.kind, p.clock_hz, p.sram_bytes, p.flash_bytes, p.core) == ("mcu", clock, sram, flash, core)


def test_other_kinds():
    assert {p.id: p.kind for p in list_profiles() if p.kind != "mcu"} == OTHERS
    assert len(list_profiles(kind="mcu")) >= 12


def test_latency_coefficients_follow_published_figures():
    """REFERENCE.md s6: depthwise costs more per MAC than a 1x1 conv, CMSIS-NN's im2col makes a kxk conv
    dearer than a 1x1, per-op overhead is thousands of cycles; M0+ > M4 > M33 > M7 > ESP32-S3 (ESP-NN).
    (FC is not dearer than conv per MAC: the all-FC AD model is cheaper per MAC than IC on TFLM,
    microTVM and Bosch's engine.) The bounds are the 1x1 coefficients the fit of
    scripts/bench_profile_latency.py gives, with room."""
    pw = {}
    for p in list_profiles(kind="mcu", overlays=False):
        mac = p.latency.cycles_per_mac
        assert mac["DEPTHWISE_CONV_2D"] > mac["CONV_2D_1X1"], p.id
        if p.kernel_library == "cmsis-nn":
            assert mac["CONV_2D"] > mac["CONV_2D_1X1"], p.id
        assert 1000 <= p.latency.op_overhead_cycles <= 10000, p.id  # "thousands of cycles"
        pw[p.id] = mac["CONV_2D_1X1"]
    assert 3.0 <= pw["ek-ra6m4"] <= 4.3 and 3.0 <= pw["nrf5340dk"] <= 4.0
    assert 4.0 <= pw["nano33ble"] <= 5.5 and 1.5 <= pw["stm32f746g-disco"] <= 3.0
    assert 10 <= pw["nucleo-g0b1re"] <= 14 and 10 <= pw["pico"] <= 15
    assert pw["pico"] > pw["nano33ble"] > pw["ek-ra6m4"] > pw["stm32f746g-disco"] > pw["esp32s3-devkitc"]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_figure_carries_a_comment(path):
    """Each latency coefficient and each memory reservation says where it comes from."""
    lines = path.read_text().splitlines()
    section = ""
    for i, line in enumerate(lines):
        if line.startswith("["):
            section = line
            continue
        if section == "[latency.cycles_per_mac]" and "=" in line:
            assert "#" in line, f"{path.name}: {line!r} needs a comment naming its source"
        if re.match(r"^(op_overhead_cycles|invoke_overhead_cycles|clock_hz|sram_bytes|flash_bytes) =", line):
            assert "#" in line, f"{path.name}: {line!r} needs a comment"
        if re.match(r"^(reserved_sram_bytes|runtime_flash_bytes) =", line):
            assert lines[i - 1].startswith("# "), f"{path.name}: {line!r} needs the assumption stated above it"
