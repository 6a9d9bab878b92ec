"""`tinynas profiles list|show|validate` (tinynas/cli/profiles.py), through click and the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from tinynas.cli.main import cli
from tinynas.hardware import builtin_profile_dir


def run(*args: str):
    return CliRunner().invoke(cli, ["profiles", *args])


def test_list_json_and_kind_filter():
    result = run("list", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data) == 19 and {"sram_budget_bytes", "flash_budget_bytes", "latency"} <= set(data[0])
    gpus = json.loads(run("list", "--kind", "gpu", "--json").output)
    assert sorted(p["id"] for p in gpus) == ["jetson-orin-nano", "rtx-4090"]


def test_list_table():
    result = run("list", "--kind", "mcu")
    assert result.exit_code == 0
    assert "nucleo-l4r5zi" in result.output and "rpi4" not in result.output and "576 KiB" in result.output


def test_show_text_and_json():
    text = run("show", "nucleo-l4r5zi").output
    assert "budget 589,824 B" in text and "cmake-cortexm" in text and "cycles/MAC" in text
    data = json.loads(run("show", "pico", "--json").output)
    assert data["id"] == "pico" and data["serial"]["usb_ids"][0] == "2e8a:000a"
    assert "  serial        115200 baud" in text and "  firmware      template cmake-cortexm" in text


def test_show_says_what_a_phone_or_gpu_deploy_writes_instead_of_firmware():
    gpu = run("show", "rtx-4090").output
    assert "  deploy        model_fp32.onnx and model_fp16.onnx, checked in ONNX Runtime; build_trt_engine.sh" in gpu
    assert "firmware  " not in gpu and "serial  " not in gpu and "(ONNX, TensorRT)" in gpu
    phone = run("show", "rpi4").output
    assert "  deploy        model_int8.tflite and model_fp16.tflite, checked in LiteRT; run_litert.py" in phone


def test_validate_ok_and_invalid(tmp_path):
    good = builtin_profile_dir() / "pico.toml"
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "bad"\nkind = "cpu"\n')
    ok = run("validate", str(good))
    assert ok.exit_code == 0 and "ok" in ok.output
    result = run("validate", str(good), str(bad))
    assert result.exit_code == 1
    assert f"{bad}: kind must be one of mcu, mobile, gpu" in result.output
    assert f"{bad}: memory is missing" in result.output
    data = json.loads(run("validate", "--json", str(bad)).stdout)
    assert data[0]["ok"] is False and len(data[0]["problems"]) >= 5


def test_validate_notes_a_core_no_firmware_template_builds_for(tmp_path):
    """Valid (search and estimate work with any core), but a misspelt core used to surface only at deploy."""
    typo = tmp_path / "myboard.toml"
    typo.write_text((builtin_profile_dir() / "nano33ble.toml").read_text()
                    .replace('id = "nano33ble"', 'id = "myboard"')
                    .replace('core = "cortex-m4f"', 'core = "cortex-m4x"'))
    result = run("validate", str(typo), str(builtin_profile_dir() / "nano33ble.toml"))
    assert result.exit_code == 0, result.output
    assert ("  note: firmware template 'arduino' cannot build for profile 'myboard' (core cortex-m4x): it does "
            "not support core 'cortex-m4x'") in result.output
    assert result.output.count("note:") == 1  # the real board has none
    data = json.loads(run("validate", "--json", str(typo)).output)
    assert data[0]["ok"] is True and "`run` and `deploy` refuse it" in data[0]["notes"][0]


def test_entry_point_turns_errors_into_exit_code_1(repo_root):
    out = subprocess.run([sys.executable, "-m", "tinynas.cli.main", "profiles", "show", "nano33"],
                         capture_output=True, text=True, cwd=repo_root)
    assert out.returncode == 1 and "did you mean 'nano33ble'" in out.stderr and "Traceback" not in out.stderr
