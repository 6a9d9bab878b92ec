"""Loading, validation errors, user profiles, overlays and caching (tinynas/hardware/loader.py, schema.py)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import re

import pytest

from tinynas.errors import ProfileError
from tinynas.hardware import (
    HardwareProfile,
    LatencyModel,
    ProfileValidationError,
    list_profiles,
    load_profile,
    overlay_path,
    save_latency_overlay,
    validate_profile_file,
)


def set_line(text: str, key: str, new: str | None, *, section: str | None = None) -> str:
    """Replace (or with None, delete) the first ``key = ...`` line, optionally inside ``[section]``."""
    start = 0
    if section is not None:
        start = text.index(f"[{section}]\n")
    pattern = re.compile(rf"^{re.escape(key)} = .*$\n", re.M)
    match = pattern.search(text, start)
    assert match, f"{key} not found"
    return text[: match.start()] + ("" if new is None else new + "\n") + text[match.end():]


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ProfileValidationError) as info:
        validate_profile_file(path)
    err = info.value
    assert str(path) in str(err)  # every message names the file
    return err.problems


# -- malformed files: each error names file and field, and says what was expected -------------
@pytest.mark.parametrize(
    "edit, field, expected",
    [
        (lambda t: set_line(t, "clock_hz", None), "clock_hz", "is missing"),
        (lambda t: set_line(t, "sram_bytes", 'sram_bytes = "256K"'), "memory.sram_bytes", "262_144"),
        (lambda t: set_line(t, "clock_hz", 'clock_hz = "64MHz"'), "clock_hz", "64_000_000"),
        (lambda t: set_line(t, "flash_bytes", "flash_bytes = -1048576"), "memory.flash_bytes", "positive integer"),
        (lambda t: set_line(t, "sram_bytes", "sram_bytes = 262144.0"), "memory.sram_bytes", "integer"),
        (lambda t: set_line(t, "kind", 'kind = "microcontroller"'), "kind", "mcu, mobile, gpu"),
        (lambda t: set_line(t, "kind", 'kind = "mcuu"'), "kind", "did you mean 'mcu'"),
        (lambda t: set_line(t, "baud", "baud_rate = 115200"), "serial.baud_rate", "did you mean 'baud'"),
        (lambda t: set_line(t, "fpu", "fpu = true\nclock_mhz = 64"), "clock_mhz", "did you mean 'clock_hz'"),
        (lambda t: set_line(t, "fpu", "fpu = true\nsram_bytes = 1"), "sram_bytes", "memory.sram_bytes"),
        (lambda t: set_line(t, "reserved_sram_bytes", "reserved_sram_bytes = 300000"),
         "memory.reserved_sram_bytes", "less than memory.sram_bytes"),
        (lambda t: set_line(t, "runtime_flash_bytes", "runtime_flash_bytes = 2000000"),
         "memory.runtime_flash_bytes", "less than memory.flash_bytes"),
        (lambda t: set_line(t, "CONV_2D", "CONV_2D = -5.0"), "latency.cycles_per_mac.CONV_2D", "positive number"),
        (lambda t: set_line(t, "CONV_2D", "CONV_2D = 0.0"), "latency.cycles_per_mac.CONV_2D", "positive"),
        (lambda t: set_line(t, "default", None, section="latency.cycles_per_mac"),
         "latency.cycles_per_mac", "'default'"),
        (lambda t: set_line(t, "CONV_2D", "conv2d = 5.0"), "latency.cycles_per_mac.conv2d", "TFLite builtin op"),
        (lambda t: set_line(t, "usb_ids", 'usb_ids = ["2341-805a"]'), "serial.usb_ids", "vid:pid"),
        (lambda t: set_line(t, "name", 'name = "tflite"', section="runtime"), "runtime.name", "tflm"),
        (lambda t: set_line(t, "kernel_library", 'kernel_library = "cmsisnn"'), "runtime.kernel_library",
         "did you mean 'cmsis-nn'"),
        (lambda t: set_line(t, "default_template", 'default_template = "none"'), "ecosystem.default_template",
         "arduino"),
        (lambda t: set_line(t, "arduino_fqbn", 'arduino_fqbn = ""'), "ecosystem.arduino_fqbn", "needs it"),
        (lambda t: set_line(t, "id", 'id = "Nano 33"'), "id", "lower-case"),
        (lambda t: set_line(t, "id", 'id = "nano"'), "id", "rename the file"),
        (lambda t: set_line(t, "latency_target_ms", "latency_target_ms = 0"), "latency_target_ms", "positive"),
        (lambda t: t[: t.index("[serial]")] + t[t.index("[ecosystem]"):], "serial", "microcontroller"),
        (lambda t: t[: t.index("[memory]")] + t[t.index("[runtime]"):], "memory", "is missing"),
    ],
)
def test_malformed_profile_names_file_and_field(tmp_path, builtin_text, edit, field, expected):
    path = write(tmp_path, "nano33ble.toml", edit(builtin_text("nano33ble")))
    problems = problems_of(path)
    matching = [p for p in problems if p.startswith(field + " ")]
    assert matching, f"no problem about {field}: {problems}"
    assert any(expected in p for p in matching), matching


def test_all_problems_of_a_file_are_reported_together(tmp_path, builtin_text):
    text = set_line(builtin_text(), "clock_hz", 'clock_hz = "64MHz"')
    text = set_line(text, "sram_bytes", 'sram_bytes = "256K"')
    problems = problems_of(write(tmp_path, "nano33ble.toml", text))
    assert len(problems) == 2


def test_bad_toml_names_file_and_line(tmp_path, builtin_text):
    path = write(tmp_path, "nano33ble.toml", builtin_text().replace('kind = "mcu"', "kind = mcu"))
    with pytest.raises(ProfileError, match=r"nano33ble\.toml: not valid TOML: .*line 4"):
        validate_profile_file(path)


def test_mobile_profile_may_skip_serial_and_firmware(tmp_path, builtin_text):
    text = builtin_text("rpi4")
    assert "[serial]" not in text
    profile = validate_profile_file(write(tmp_path, "rpi4.toml", text))
    assert profile.serial.baud == 115200 and profile.ecosystem.default_template == "none"
    bad = set_line(text, "name", 'name = "tflm"', section="runtime")
    assert any("litert" in p for p in problems_of(write(tmp_path / "b", "rpi4.toml", bad)))


def test_not_a_toml_path_and_missing_file(tmp_path):
    with pytest.raises(ProfileError, match="no such profile file"):
        load_profile(tmp_path / "nope.toml")
    with pytest.raises(ProfileError, match=r"\.toml file"):
        validate_profile_file(tmp_path / "board.yaml")


# -- lookup: built-in, user folders, paths -------------------------------------------------------
def test_unknown_id_suggests_nearest_and_says_how_to_add_one():
    with pytest.raises(ProfileError) as info:
        load_profile("nucleo-l4r5")
    text = str(info.value)
    assert "did you mean 'nucleo-l4r5zi'" in text and "TINYNAS_PROFILE_PATH" in text and ".toml" in text


def test_user_profile_on_search_path(tmp_path, monkeypatch, builtin_text, caplog):
    first, second = tmp_path / "first", tmp_path / "second"
    text = set_line(builtin_text(), "clock_hz", "clock_hz = 32_000_000")
    write(first, "nano33ble.toml", text)
    write(second, "nano33ble.toml", builtin_text())
    mine = set_line(set_line(builtin_text(), "id", 'id = "my-board"'), "name", 'name = "My board"')
    write(second, "my-board.toml", mine)
    monkeypatch.setenv("TINYNAS_PROFILE_PATH", os.pathsep.join([str(first), str(second)]))
    with caplog.at_level(logging.INFO, logger="tinynas.hardware.loader"):
        p = load_profile("nano33ble")
    assert p.clock_hz == 32_000_000 and p.source_path == str(first / "nano33ble.toml")
    assert "overrides the built-in" in caplog.text
    assert load_profile("my-board").name == "My board"
    assert "my-board" in [q.id for q in list_profiles()]
    assert [q.clock_hz for q in list_profiles() if q.id == "nano33ble"] == [32_000_000]


def test_user_profile_in_tinynas_home(isolated_home, builtin_text):
    write(isolated_home / "profiles", "nano33ble.toml", set_line(builtin_text(), "clock_hz", "clock_hz = 48_000_000"))
    assert load_profile("nano33ble").clock_hz == 48_000_000


def test_load_by_path_str_and_pathlike(tmp_path, builtin_text):
    path = write(tmp_path / "boards", "custom.toml", set_line(builtin_text(), "id", 'id = "custom"'))
    assert load_profile(path).id == "custom"
    assert load_profile(str(path)).id == "custom"
    p = load_profile("pico")
    assert load_profile(p) is p


def test_invalid_user_file_is_skipped_in_list_unless_strict(isolated_home, builtin_text, caplog):
    write(isolated_home / "profiles", "broken.toml", "id = 'broken'\n")
    with caplog.at_level(logging.WARNING):
        ids = [p.id for p in list_profiles()]
    assert "broken" not in ids and "nano33ble" in ids and "broken" in caplog.text
    with pytest.raises(ProfileError, match="broken.toml"):
        list_profiles(strict=True)


def test_list_filters_by_kind():
    assert {p.kind for p in list_profiles(kind="gpu")} == {"gpu"}
    with pytest.raises(ProfileError, match="did you mean 'mcu'"):
        list_profiles(kind="mcus")


def test_edited_file_is_reread(tmp_path, builtin_text):
    path = write(tmp_path, "nano33ble.toml", builtin_text())
    assert load_profile(path).clock_hz == 64_000_000
    path.write_text(set_line(builtin_text(), "clock_hz", "clock_hz = 16_000_000"))
    assert load_profile(path).clock_hz == 16_000_000


def test_callers_cannot_corrupt_the_cache():
    load_profile("pico").extra["mine"] = 1
    assert "mine" not in load_profile("pico").extra


# -- overlays ------------------------------------------------------------------------------------
def _fitted() -> LatencyModel:
    return LatencyModel(
        cycles_per_mac={"CONV_2D": 4.25, "DEPTHWISE_CONV_2D": 7.5, "default": 5.0},
        cycles_per_element={"default": 6.0},
        op_overhead_cycles=2750.0,
        invoke_overhead_cycles=1234.5,
        source="fitted on 12 measurements (tests)",
    )


def test_overlay_round_trip(isolated_home):
    base = load_profile("nano33ble")
    path = save_latency_overlay("nano33ble", _fitted(), calibration={"n_measurements": 12, "r2": 0.98})
    assert path == overlay_path("nano33ble") == isolated_home / "overlays" / "nano33ble.toml"
    p = load_profile("nano33ble")
    assert p.latency.cycles_per_mac["CONV_2D"] == 4.25 and p.latency.op_overhead_cycles == 2750.0
    assert p.latency.invoke_overhead_cycles == 1234.5 and p.latency.source.startswith("fitted")
    # ops the fit did not cover keep the profile's own figures
    assert p.latency.cycles_per_mac["FULLY_CONNECTED"] == base.latency.cycles_per_mac["FULLY_CONNECTED"]
    assert p.extra["latency_overlay"] == str(path) and p.extra["calibration"]["n_measurements"] == 12
    assert load_profile("nano33ble", overlays=False).latency == base.latency
    assert load_profile("pico").latency == load_profile("pico", overlays=False).latency
    # `profiles show` names the overlay and how to be rid of it
    from click.testing import CliRunner

    from tinynas.cli.main import cli

    shown = CliRunner().invoke(cli, ["profiles", "show", "nano33ble"])
    assert shown.exit_code == 0
    assert f"overlay       {path} (tinynas calibrate's fit, or your own: delete it" in shown.output


def test_overlay_with_explicit_home(tmp_path):
    path = save_latency_overlay("pico", _fitted(), home=tmp_path / "elsewhere")
    assert path == tmp_path / "elsewhere" / "overlays" / "pico.toml" and path.is_file()


def test_partial_hand_written_overlay(isolated_home):
    write(isolated_home / "overlays", "pico.toml", 'profile_id = "pico"\n[latency.cycles_per_mac]\nCONV_2D = 9.5\n')
    p = load_profile("pico")
    assert p.latency.cycles_per_mac["CONV_2D"] == 9.5
    assert p.latency.op_overhead_cycles == load_profile("pico", overlays=False).latency.op_overhead_cycles


@pytest.mark.parametrize(
    "text, match",
    [
        ('profile_id = "nano33ble"\n', "profile_id"),
        ('[latency.cycles_per_mac]\nCONV_2D = "fast"\n', r"latency\.cycles_per_mac\.CONV_2D"),
        ("[latency]\nop_overhead = 1.0\n", "did you mean 'op_overhead_cycles'"),
        ("[latency\n", "not valid TOML"),
    ],
)
def test_bad_overlay_is_a_clear_error(isolated_home, text, match):
    path = write(isolated_home / "overlays", "pico.toml", text)
    with pytest.raises(ProfileError, match=match) as info:
        load_profile("pico")
    assert str(path) in str(info.value)
    assert load_profile("pico", overlays=False).id == "pico"


def test_save_overlay_rejects_bad_models():
    with pytest.raises(ProfileError, match="default"):
        save_latency_overlay("pico", LatencyModel({"CONV_2D": 1.0}, {"default": 1.0}, 1.0))
    with pytest.raises(ProfileError, match="op_overhead_cycles"):
        save_latency_overlay("pico", LatencyModel({"default": 1.0}, {"default": 1.0}, float("nan")))
    with pytest.raises(ProfileError, match="plain profile id"):
        save_latency_overlay("../pico", _fitted())


# -- records -------------------------------------------------------------------------------------
def test_profile_json_round_trip():
    for p in list_profiles():
        data = json.loads(json.dumps(p.to_json()))
        assert data["sram_budget_bytes"] == p.sram_budget_bytes
        assert HardwareProfile.from_json(data) == p
    with pytest.raises(ProfileError):
        HardwareProfile.from_json({"id": "x"})


def test_loading_profiles_never_imports_tensorflow(repo_root):
    code = "import sys; from tinynas.hardware import list_profiles; list_profiles(); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root, check=True)
    assert out.stdout.strip() == "False"
