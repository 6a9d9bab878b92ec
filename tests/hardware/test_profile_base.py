"""A profile file with ``base = "<id or path>"``: only what differs from a built-in, the rest kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinynas.cli.main import cli
from tinynas.errors import ProfileError
from tinynas.hardware import ProfileValidationError, load_profile, validate_profile_file

BLACKPILL = """\
id = "blackpill-f411"
name = "WeAct Black Pill STM32F411CEU6"
base = "nucleo-l432kc"
clock_hz = 100_000_000

[memory]
sram_bytes = 131_072
flash_bytes = 524_288

[ecosystem]
platformio_board = "blackpill_f411ce"
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def test_a_board_of_a_builtin_family_states_only_what_differs(tmp_path):
    path = _write(tmp_path, "blackpill-f411.toml", BLACKPILL)
    p = validate_profile_file(path)
    base = load_profile("nucleo-l432kc")
    assert (p.id, p.name, p.base, p.clock_hz, p.sram_bytes, p.flash_bytes) == (
        "blackpill-f411", "WeAct Black Pill STM32F411CEU6", "nucleo-l432kc", 100_000_000, 131_072, 524_288)
    # the core's fitted latency model, the firmware's shares and the family's build settings are the base's
    assert p.latency.cycles_per_mac == base.latency.cycles_per_mac
    assert p.latency.op_overhead_cycles == base.latency.op_overhead_cycles
    assert p.latency.source == f"{base.latency.source} (from base profile nucleo-l432kc)"
    assert (p.core, p.kind, p.reserved_sram_bytes, p.runtime_flash_bytes) == (
        base.core, base.kind, base.reserved_sram_bytes, base.runtime_flash_bytes)
    assert p.sram_budget_bytes == 131_072 - base.reserved_sram_bytes
    assert (p.ecosystem.default_template, p.ecosystem.platformio_platform, p.ecosystem.cmake_cpu) == (
        base.ecosystem.default_template, base.ecosystem.platformio_platform, base.ecosystem.cmake_cpu)
    assert p.ecosystem.platformio_board == "blackpill_f411ce"
    # names of the base's board are not kept by another board
    assert p.ecosystem.zephyr_board == "" and p.ecosystem.arduino_fqbn == "" and p.serial.usb_ids == ()
    assert p.notes == ""
    assert load_profile(str(path)).to_json()["base"] == "nucleo-l432kc"


def test_another_board_must_name_its_own_board_for_its_template(tmp_path):
    path = _write(tmp_path, "blackpill-f411.toml", BLACKPILL.replace('platformio_board = "blackpill_f411ce"\n', ""))
    with pytest.raises(ProfileValidationError) as info:
        validate_profile_file(path)
    assert any("ecosystem.platformio_board is empty" in p for p in info.value.problems)
    assert any("name its own board" in p and "state this board's" in p for p in info.value.problems)


def test_a_user_file_may_extend_the_builtin_it_replaces(tmp_path, monkeypatch):
    """A user's nano33ble.toml on the search path, changing only the firmware's SRAM share."""
    folder = tmp_path / "mine"
    _write(folder, "nano33ble.toml", 'id = "nano33ble"\nname = "Nano 33 BLE, lean firmware"\nbase = "nano33ble"\n'
                                     "[memory]\nreserved_sram_bytes = 32_768\n")
    monkeypatch.setenv("TINYNAS_PROFILE_PATH", str(folder))
    p = load_profile("nano33ble")
    assert p.source_path == str(folder / "nano33ble.toml")
    assert p.reserved_sram_bytes == 32_768 and p.sram_bytes == 262_144
    assert p.sram_budget_bytes == 262_144 - 32_768
    assert p.ecosystem.arduino_fqbn == "arduino:mbed_nano:nano33ble"  # the same board keeps its names
    assert (0x2341, 0x805A) in p.serial.usb_ids


def test_a_changed_memory_size_drops_the_bases_region(tmp_path):
    """nucleo-h743zi's RAM region is its 512 KB AXI block; a part with other SRAM states its own."""
    same = _write(tmp_path / "a", "h7-variant.toml", 'id = "h7-variant"\nname = "H7 variant"\nbase = "nucleo-h743zi"\n'
                                                    '[ecosystem]\nplatformio_board = "nucleo_h743zi"\n')
    other = _write(tmp_path / "b", "h7-small.toml", 'id = "h7-small"\nname = "H7 small"\nbase = "nucleo-h743zi"\n'
                                                   '[memory]\nsram_bytes = 786_432\n'
                                                   '[ecosystem]\nplatformio_board = "nucleo_h743zi"\n')
    assert validate_profile_file(same).ram_region_bytes == load_profile("nucleo-h743zi").ram_region_bytes
    small = validate_profile_file(other)
    assert small.ram_region_bytes is None and small.memory_map()["ram_length"] == 786_432
    assert small.ram_origin == load_profile("nucleo-h743zi").ram_origin


def test_a_base_by_path_a_chain_and_a_changed_base_are_read(tmp_path):
    family = _write(tmp_path, "family.toml", BLACKPILL)
    child = _write(tmp_path / "boards", "blackpill-f401.toml",
                   'id = "blackpill-f401"\nname = "Black Pill F401"\nbase = "../family.toml"\nclock_hz = 84_000_000\n'
                   "[memory]\nsram_bytes = 98_304\n[ecosystem]\nplatformio_board = \"blackpill_f401cc\"\n")
    p = validate_profile_file(child)
    assert (p.clock_hz, p.sram_bytes, p.flash_bytes, p.base) == (84_000_000, 98_304, 524_288, "../family.toml")
    assert p.latency.cycles_per_mac == load_profile("nucleo-l432kc").latency.cycles_per_mac
    family.write_text(BLACKPILL.replace("524_288", "262_144"))  # the cache sees the base's change
    assert validate_profile_file(child).flash_bytes == 262_144


@pytest.mark.parametrize("files, load, message", [
    ({"a.toml": 'id = "a"\nname = "a"\nbase = "b.toml"\n', "b.toml": 'id = "b"\nname = "b"\nbase = "a.toml"\n'},
     "a.toml", r"b.toml: base 'a.toml' leads back to .*a.toml; profiles cannot extend each other in a loop"),
    ({"x.toml": 'id = "x"\nname = "x"\nbase = "nano34"\n'}, "x.toml",
     r"x.toml: base 'nano34': unknown hardware profile 'nano34'; did you mean 'nano33ble'"),
    ({"y.toml": 'id = "y"\nname = "y"\nbase = "gone.toml"\n'}, "y.toml", r"y.toml: base 'gone.toml': no such profile file"),
    ({"z.toml": 'id = "z"\nname = "z"\nbase = 3\n'}, "z.toml", r"z.toml: base must be a profile id or a path"),
    ({"w.toml": 'id = "w"\nbase = "nano33ble"\n'}, "w.toml", r"w.toml: name is missing"),
    ({"v.toml": 'id = "v"\nname = "v"\nbase = "nano33ble"\nlatency = 5\n'}, "v.toml", r"v.toml: latency must be a table"),
])
def test_bad_bases_are_refused_naming_the_file(tmp_path, files, load, message):
    for name, text in files.items():
        _write(tmp_path, name, text)
    with pytest.raises(ProfileError, match=message):
        validate_profile_file(tmp_path / load)


def test_validate_and_show_say_what_is_kept_from_the_base(tmp_path):
    path = _write(tmp_path, "blackpill-f411.toml", BLACKPILL)
    result = CliRunner().invoke(cli, ["profiles", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "on base nucleo-l432kc: it keeps the base's kind, core," in result.output
    assert "latency, serial, ecosystem.default_template" in result.output
    assert "clock_hz" not in result.output.split("keeps")[1]
    shown = CliRunner().invoke(cli, ["profiles", "show", str(path)])
    assert shown.exit_code == 0 and "base          nucleo-l432kc, whose values it keeps for: kind" in shown.output
    data = json.loads(CliRunner().invoke(cli, ["profiles", "validate", "--json", str(path)]).output)
    assert data[0]["base"] == "nucleo-l432kc" and "latency" in data[0]["inherited"]
