"""Profile fields that reach shell commands, generated sources and arithmetic are checked
(issue #11 items 3, 4, 10, 13): `tinynas profiles validate` refuses them, naming file and field."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinynas.cli.main import cli
from tinynas.hardware import builtin_profile_dir, list_profiles, load_profile


def _set(text: str, key: str, line: str) -> str:
    pattern = re.compile(rf"^{re.escape(key)} = .*$", re.M)
    assert pattern.search(text), key
    return pattern.sub(lambda _m: line, text, count=1)


def _validate(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["profiles", "validate", str(path)])
    return result.exit_code, result.output


def _profile(tmp_path: Path, key: str, line: str, base: str = "nano33ble") -> Path:
    text = (builtin_profile_dir() / f"{base}.toml").read_text()
    path = tmp_path / f"{base}.toml"
    path.write_text(_set(text, key, line))
    return path


def test_shell_in_an_ecosystem_id_is_refused_naming_field_and_pattern(tmp_path):
    path = _profile(tmp_path, "arduino_fqbn", 'arduino_fqbn = "x; touch PWNED #"')
    code, out = _validate(path)
    assert code == 1, out
    assert f"{path}: ecosystem.arduino_fqbn must be vendor:arch:board" in out
    assert "pattern ^" in out and "'x; touch PWNED #'" in out
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()


@pytest.mark.parametrize("key, bad", [
    ("platformio_board", "nano33ble$(id)"), ("platformio_platform", "nordic nrf52"),
    ("zephyr_board", "arduino_nano_33_ble;ls"), ("cmake_cpu", "cortex-m4 -o /tmp/x"),
])
def test_every_ecosystem_id_has_a_pattern(tmp_path, key, bad):
    code, out = _validate(_profile(tmp_path, key, f'{key} = "{bad}"'))
    assert code == 1 and f"ecosystem.{key} must be" in out, out


@pytest.mark.parametrize("key, good", [
    ("zephyr_board", "nrf5340dk/nrf5340/cpuapp"), ("zephyr_board", "nrf5340dk@2.0.0/nrf5340/cpuapp/ns"),
    ("arduino_fqbn", "STMicroelectronics:stm32:Nucleo_32:pnum=NUCLEO_L432KC,upload_method=swdMethod"),
    ("cmake_cpu", "cortex-m0plus"), ("platformio_board", "esp32-s3-devkitc-1"),
])
def test_real_ids_with_qualifiers_and_options_pass(tmp_path, key, good):
    code, out = _validate(_profile(tmp_path, key, f'{key} = "{good}"'))
    assert code == 0, out


def test_espidf_and_pico_ids(tmp_path):
    code, out = _validate(_profile(tmp_path, "espidf_target", 'espidf_target = "esp32s3 && rm -rf ~"',
                                   base="esp32s3-devkitc"))
    assert code == 1 and "ecosystem.espidf_target must be an ESP-IDF target" in out
    code, out = _validate(_profile(tmp_path, "pico_board", 'pico_board = "pico`id`"', base="pico"))
    assert code == 1 and "ecosystem.pico_board must be" in out


def test_a_name_with_a_line_break_is_refused(tmp_path):
    path = _profile(tmp_path, "name", 'name = "Evil */ board \\" \\n #define Y"')
    code, out = _validate(path)
    assert code == 1 and f"{path}: name must be one line of printable text" in out and "'\\n'" in out


@pytest.mark.parametrize("key, value", [
    ("CONV_2D", "inf"), ("CONV_2D", "nan"), ("op_overhead_cycles", "inf"), ("op_overhead_cycles", "nan"),
    ("latency_target_ms", "inf"), ("boot_wait_s", "nan"), ("CONV_2D", "1e300"),
])
def test_inf_and_nan_are_refused(tmp_path, key, value):
    path = _profile(tmp_path, key, f"{key} = {value}")
    code, out = _validate(path)
    assert code == 1, out
    assert f"{path}: " in out and ("finite" in out or "at most" in out), out


def test_absurd_integers_are_refused(tmp_path):
    code, out = _validate(_profile(tmp_path, "clock_hz", "clock_hz = 64_000_000_000_000"))
    assert code == 1 and "clock_hz must be at most" in out


def test_entry_point_exit_code_for_a_bad_profile(tmp_path, repo_root):
    path = _profile(tmp_path, "CONV_2D", "CONV_2D = inf")
    proc = subprocess.run([sys.executable, "-m", "tinynas.cli.main", "profiles", "validate", str(path)],
                          capture_output=True, text=True, cwd=repo_root)
    assert proc.returncode == 1 and "latency.cycles_per_mac.CONV_2D must be a finite" in proc.stdout + proc.stderr


# -- memory map (item 13) ----------------------------------------------------------------------
EXPECTED_MAP = {  # datasheet facts: (flash origin, RAM origin)
    "nano33ble": (0x0, 0x20000000), "nrf5340dk": (0x0, 0x20000000), "ek-ra6m4": (0x0, 0x20000000),
    "nucleo-l432kc": (0x08000000, 0x20000000), "nucleo-l4r5zi": (0x08000000, 0x20000000),
    "nucleo-h743zi": (0x08000000, 0x24000000), "sparkfun-edge": (0xC000, 0x10000000),
    "pico": (0x10000000, 0x20000000),
}


def test_every_mcu_profile_states_its_memory_map():
    for profile in list_profiles(kind="mcu"):
        if profile.core.startswith("cortex-m"):
            assert profile.flash_origin is not None and profile.ram_origin is not None, profile.id
    for pid, (flash, ram) in EXPECTED_MAP.items():
        memory = load_profile(pid).memory_map()
        assert (memory["flash_origin"], memory["ram_origin"]) == (flash, ram), pid
    h7 = load_profile("nucleo-h743zi").memory_map()
    assert h7["ram_length"] == 512 * 1024  # the AXI SRAM block, not the 1 MB spread over five banks
    edge = load_profile("sparkfun-edge").memory_map()
    assert edge["flash_origin"] + edge["flash_length"] == 1024 * 1024


def test_bad_addresses_are_refused(tmp_path):
    code, out = _validate(_profile(tmp_path, "flash_origin", "flash_origin = 0x100000001"))
    assert code == 1 and "memory.flash_origin must be a word-aligned 32-bit address" in out
    code, out = _validate(_profile(tmp_path, "ram_origin", 'ram_origin = "0x20000000"'))
    assert code == 1 and "memory.ram_origin must be an integer address" in out
