"""tinynas.deploy.firmware and `tinynas firmware`: every template renders for every profile it
supports, refuses the others clearly, never leaves a half-written folder, and what it renders
compiles for the profile's core (arm-none-eabi-g++; TFLM headers replaced by fake_tflm/)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinynas.cli.main import cli
from tinynas.deploy.firmware import (
    STAMP,
    cortex_m,
    generate_firmware,
    get_template,
    list_templates,
    read_project_info,
    render_commands,
    templates_for,
)
from tinynas.errors import DeployError, ModelFileError
from tinynas.hardware import list_profiles, load_profile

from _firmware_tools import require_tool

HERE = Path(__file__).resolve().parent
FAKE_TFLM = HERE / "fake_tflm"
TEMPLATES = ("arduino", "platformio", "zephyr", "espidf", "pico", "cmake-cortexm")
JINJA = re.compile(r"\{\{|\{%|\{#|%\}|\}\}")
BOARD_ID_FIELD = {"arduino": "arduino_fqbn", "platformio": "platformio_board", "zephyr": "zephyr_board",
                  "espidf": "espidf_target", "pico": "pico_board"}


@pytest.fixture(scope="module")
def kws(mlperf_models) -> bytes:
    return mlperf_models["kws"].read_bytes()


def _generate(kws: bytes, profile, out: Path, template: str | None = None, **kw):
    args = dict(template=template, model_bytes=kws, profile=profile, out_dir=out, class_names=[],
                arena_bytes=24_272, model_id="kws01")
    args.update(kw)
    return generate_firmware(**args)


def test_the_six_templates_are_listed():
    names = [t.name for t in list_templates()]
    assert names == sorted(TEMPLATES)
    for t in list_templates():
        assert t.description and t.cores and t.build and t.flash
        assert (Path(t.path) / "manifest.toml").is_file()


@pytest.mark.slow
def test_every_template_renders_for_every_profile_it_supports(tmp_path, kws):
    rendered = 0
    for profile in list_profiles():
        for name in templates_for(profile):
            tpl = get_template(name)
            out = _generate(kws, profile, tmp_path / profile.id / name, template=name)
            for rel in tpl.files:
                assert (out / rel).is_file(), f"{name} for {profile.id}: {rel} missing"
            for path in out.rglob("*"):
                if path.is_file() and not path.name.startswith("model_data"):
                    text = path.read_text(encoding="utf-8")
                    assert not JINJA.search(text), f"{name} for {profile.id}: Jinja left in {path.relative_to(out)}"
            readme = (out / "README.md").read_text()
            commands = render_commands(tpl, profile)
            assert commands["build"] in readme and commands["flash"] in readme
            if name in BOARD_ID_FIELD:
                board_id = getattr(profile.ecosystem, BOARD_ID_FIELD[name])
                assert board_id and board_id in commands["build"] + commands["flash"] + readme
            info = read_project_info(out)
            assert (info["template"], info["profile"], info["model_id"]) == (name, profile.id, "kws01")
            rendered += 1
    assert rendered >= 30  # 15 MCU profiles, several templates each


def test_model_bytes_and_protocol_are_in_every_project(tmp_path, kws):
    profile = load_profile("nano33ble")
    out = _generate(kws, profile, tmp_path / "sketch", template="arduino")
    sketch = out / "tinynas_bench"
    assert (sketch / "model_data.cpp").is_file() and not (sketch / "model_data.cc").exists()
    assert (sketch / "tinynas_runner.cpp").is_file()
    common = get_template("arduino").path.replace("arduino", "common")
    assert (sketch / "tinynas_protocol.c").read_bytes() == (Path(common) / "tinynas_protocol.c").read_bytes()
    ino = (sketch / "tinynas_bench.ino").read_text()
    assert "#include <TensorFlowLite.h>" in ino and "Serial.begin(115200)" in ino and "micros()" in ino
    # a non-Nano board gets the Chirale library (capital L in its registered name)
    esp = _generate(kws, load_profile("esp32s3-devkitc"), tmp_path / "esp", template="arduino")
    assert "#include <Chirale_TensorFlowLite.h>" in (esp / "tinynas_bench" / "tinynas_bench.ino").read_text()
    assert "arduino-cli lib install Chirale_TensorFLowLite" in (esp / "README.md").read_text()


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_readme_shows_an_application_how_to_run_the_model_on_its_own_input(tmp_path, kws, name):
    """The project is a measurement harness; its README says how to go past it with tinynas_runner.h's calls
    and the helpers model_data.h has for this model: none, QuantizeRawInput, or ResizeRawInput."""
    profile = next(p for p in list_profiles(kind="mcu") if name in templates_for(p))
    model_dir = get_template(name).model_dir
    for case, kw, says in (
            ("plain", {}, "quantized with kInputScale and"),
            ("scaled", {"raw_scaling": (0.5, 1.0)}, "input[i] = QuantizeRawInput(raw[i]);"),
            ("resized", {"raw_scaling": (0.5, 1.0), "raw_shape": (98, 20, 1)},
             "ResizeRawInput(raw, tinynas_runner_input());")):
        out = _generate(kws, profile, tmp_path / case, template=name, **kw)
        readme = (out / "README.md").read_text()
        section = readme[readme.index("## Your own application"):readme.index("## Measure")]
        assert f"`{model_dir}/tinynas_runner.h`" in section and says in section, (case, section)
        assert "tinynas_runner_invoke() == 0" in section and "tinynas_runner_top_class(&score)" in section
        assert ("one 98x20x1 sample" in section) == (case == "resized")
        header = next(out.rglob("model_data.h")).read_text()
        assert ("ResizeRawInput(" in header) == (case == "resized")
        assert ("QuantizeRawInput(" in header) == (case != "plain")


def test_the_pico_project_names_the_sdk_path_it_lacks_in_cmake_and_in_flash(tmp_path, kws, monkeypatch):
    """CMake configures the generated project: without a pico-sdk it stops at once and says which variable to set
    (not an include of '/external/pico_sdk_import.cmake'), -DPICO_SDK_PATH works as the environment does, and
    `tinynas flash` lists PICO_SDK_PATH among the variables to set."""
    from tinynas.measure.flash import flash_project

    cmake = require_tool("cmake")
    pico = _generate(kws, load_profile("pico"), tmp_path / "p")
    monkeypatch.delenv("PICO_SDK_PATH", raising=False)
    monkeypatch.delenv("PICO_TFLMICRO_PATH", raising=False)
    bare = subprocess.run([cmake, "-S", str(pico), "-B", str(tmp_path / "b1")], capture_output=True, text=True)
    assert bare.returncode != 0 and "PICO_SDK_PATH ('') is not a pico-sdk checkout" in bare.stderr, bare.stderr
    sdk = tmp_path / "pico-sdk"  # enough of an SDK for the project to reach its next check
    (sdk / "external").mkdir(parents=True)
    (sdk / "external" / "pico_sdk_import.cmake").write_text("macro(pico_sdk_init)\nendmacro()\n")
    given = subprocess.run([cmake, "-S", str(pico), "-B", str(tmp_path / "b2"), f"-DPICO_SDK_PATH={sdk}"],
                           capture_output=True, text=True)
    assert given.returncode != 0 and "set -DPICO_TFLMICRO_PATH" in given.stderr, given.stderr
    assert "is not a pico-sdk checkout" not in given.stderr

    plan = flash_project(project=pico, port="/dev/ttyACM0")
    assert not plan.ran and "PICO_SDK_PATH, PICO_TFLMICRO_PATH are not set" in plan.not_run_because


def test_ecosystem_specifics(tmp_path, kws):
    zephyr = _generate(kws, load_profile("nrf5340dk"), tmp_path / "z", template="zephyr")
    conf = (zephyr / "prj.conf").read_text()
    for line in ("CONFIG_TENSORFLOW_LITE_MICRO=y", "CONFIG_TENSORFLOW_LITE_MICRO_CMSIS_NN_KERNELS=y",
                 "CONFIG_TIMING_FUNCTIONS=y", "CONFIG_CPP=y"):
        assert line in conf.splitlines()
    assert "timing_counter_get()" in (zephyr / "src" / "main.cc").read_text()
    assert "tflite-micro" in (zephyr / "west.yml").read_text()

    esp = _generate(kws, load_profile("esp32s3-devkitc"), tmp_path / "e")
    assert read_project_info(esp)["template"] == "espidf"  # the profile's default
    assert 'espressif/esp-tflite-micro: "^1.3.0"' in (esp / "main" / "idf_component.yml").read_text()  # not "*"
    assert "esp_timer_get_time()" in (esp / "main" / "main.cc").read_text()
    assert 'CONFIG_IDF_TARGET="esp32s3"' in (esp / "sdkconfig.defaults").read_text()
    assert "idf.py set-target esp32s3" in (esp / "README.md").read_text()

    pico = _generate(kws, load_profile("pico"), tmp_path / "p")
    cmake = (pico / "CMakeLists.txt").read_text()
    assert "pico-tflmicro" in cmake and "PICO_BOARD pico" in cmake
    assert "time_us_64()" in (pico / "src" / "main.cc").read_text()

    pio = _generate(kws, load_profile("nucleo-h743zi"), tmp_path / "pio", template="platformio")
    ini = (pio / "platformio.ini").read_text()
    assert "[env:nucleo_h743zi]" in ini and "board = nucleo_h743zi" in ini and "platform = ststm32" in ini

    m4 = _generate(kws, load_profile("nucleo-l4r5zi"), tmp_path / "m4", template="cmake-cortexm")
    toolchain = (m4 / "cmake" / "arm-none-eabi.cmake").read_text()
    assert "-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard" in toolchain
    assert 'set(TINYNAS_TIMER "dwt"' in (m4 / "CMakeLists.txt").read_text()
    m0 = _generate(kws, load_profile("nucleo-g0b1re"), tmp_path / "m0", template="cmake-cortexm")
    assert 'set(TINYNAS_TIMER "systick"' in (m0 / "CMakeLists.txt").read_text()
    assert "-mcpu=cortex-m0plus -mthumb\"" in (m0 / "cmake" / "arm-none-eabi.cmake").read_text()


_FAKE_MICROS = r"""
#include <cstdint>
#include <cstdio>
static const uint32_t kReads[] = {1000u, 5000u, 4100u, 6000u, 0x90000000u, 0xFFFFFF00u, 0x100u, 0x80u, 0x300u};
static unsigned g_read = 0;
static uint32_t micros() { return kReads[g_read++]; }
#include "arduino_micros.cc.j2"
int main() {
  for (unsigned i = 0; i < sizeof(kReads) / sizeof(kReads[0]); ++i) {
    std::printf("%llu\n", static_cast<unsigned long long>(tinynas_platform_micros()));
  }
}
"""


def test_the_arduino_clock_reads_a_slip_back_as_no_time_and_a_wrap_as_2_to_the_32(tmp_path, kws):
    """Arduino cores' micros() can step back up to 1 ms at a SysTick tick (STM32duino with interrupts masked,
    SAMD from a high-priority ISR): the 64-bit extension counted that as a wrap, 71.6 minutes on one lap."""
    common = Path(get_template("arduino").path).parent / "common"
    snippet = (common / "arduino_micros.cc.j2").read_text()
    sketch = _generate(kws, load_profile("nano33ble"), tmp_path / "a", template="arduino")
    pio = _generate(kws, load_profile("nucleo-l432kc"), tmp_path / "p", template="platformio")
    assert snippet in (sketch / "tinynas_bench" / "tinynas_bench.ino").read_text()
    assert snippet in (pio / "src" / "main.cpp").read_text()
    harness = tmp_path / "micros_main.cc"
    harness.write_text(_FAKE_MICROS)
    exe = tmp_path / "micros"
    subprocess.run([require_tool("g++"), "-std=c++17", "-Wall", "-Wextra", "-Werror", "-I", str(common),
                    str(harness), "-o", str(exe)], check=True)
    reads = [int(line) for line in subprocess.run([str(exe)], capture_output=True, text=True,
                                                  check=True).stdout.split()]
    # a slip back reads as the last good time; a long idle (more than half the range) and a wrap count forward
    assert reads == [1000, 5000, 5000, 6000, 0x90000000, 0xFFFFFF00, 2**32 + 0x100, 2**32 + 0x100, 2**32 + 0x300]


def test_unsupported_core_is_refused_naming_the_alternatives(tmp_path, kws):
    profile = load_profile("nucleo-l4r5zi")
    with pytest.raises(DeployError) as err:
        _generate(kws, profile, tmp_path / "x", template="pico")
    message = str(err.value)
    assert "'pico'" in message and "cortex-m4f" in message and "nucleo-l4r5zi" in message
    for working in templates_for(profile):
        assert working in message.split("use --template")[1]
    assert not (tmp_path / "x").exists()
    with pytest.raises(DeployError, match="espidf.*cortex-m7"):
        _generate(kws, load_profile("stm32f746g-disco"), tmp_path / "y", template="espidf")


@pytest.fixture(scope="module")
def attention_int8() -> bytes:
    """An untrained int8 tinyformer (BATCH_MATMUL in its attention) on 8x8x1 input."""
    import numpy as np

    from _deploy_support import untrained_attention_model
    from tinynas.deploy.quantize import quantize_int8

    return quantize_int8(untrained_attention_model(num_classes=4),
                         representative=np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32))


def test_a_model_with_an_op_the_templates_library_lacks_is_refused_naming_the_templates_that_have_it(
        tmp_path, attention_int8):
    """The Arduino libraries the arduino and platformio projects pin have no BATCH_MATMUL kernel: the
    project would not compile. The other templates for the board build it."""
    profile = load_profile("nano33ble")
    for template in ("arduino", "platformio", None):  # None: the board's default, arduino
        with pytest.raises(DeployError) as err:
            _generate(attention_int8, profile, tmp_path / "x", template=template, source="attention.tflite")
        message = str(err.value)
        assert f"attention.tflite uses BATCH_MATMUL, which the TFLite Micro library of firmware template " \
               f"'{template or 'arduino'}'" in message
        assert message.endswith("pass --template cmake-cortexm or zephyr, whose library has it")
        assert not (tmp_path / "x").exists()
    project = _generate(attention_int8, profile, tmp_path / "cm", template="cmake-cortexm")
    assert "AddBatchMatMul()" in (project / "src" / "op_resolver.h").read_text()


def test_the_arduino_libraries_are_pinned_to_the_revision_missing_ops_describes(tmp_path, kws):
    arduino = _generate(kws, load_profile("nano33ble"), tmp_path / "a", template="arduino")
    assert ("arduino-cli lib install --git-url https://github.com/tensorflow/tflite-micro-arduino-examples.git"
            "#7948b85e020470a30a83bf00e10fc43b486bfcba") in (arduino / "README.md").read_text()
    pio = _generate(kws, load_profile("nucleo-l432kc"), tmp_path / "p", template="platformio")
    assert "https://github.com/spaziochirale/Chirale_TensorFlowLite.git#v2.0.0" in (pio / "platformio.ini").read_text()
    assert get_template("arduino").missing_ops == get_template("platformio").missing_ops == (
        "BATCH_MATMUL", "EMBEDDING_LOOKUP")
    assert "revision: v4.2.0" in (_generate(kws, load_profile("nrf5340dk"), tmp_path / "z") / "west.yml").read_text()


def test_missing_board_id_and_non_mcu_profiles_are_refused(tmp_path, kws):
    profile = load_profile("nrf5340dk")  # no Arduino core for it
    assert not profile.ecosystem.arduino_fqbn
    with pytest.raises(DeployError, match=r"ecosystem\.arduino_fqbn"):
        _generate(kws, profile, tmp_path / "a", template="arduino")
    with pytest.raises(DeployError, match="microcontrollers"):
        _generate(kws, load_profile("rpi4"), tmp_path / "b")
    with pytest.raises(DeployError, match="unknown firmware template 'mbed'; known: arduino"):
        _generate(kws, profile, tmp_path / "c", template="mbed")
    # the ecosystems' own spellings are pointed to the template's name
    for typed, meant in (("esp-idf", "espidf"), ("pico-sdk", "pico"), ("PlatformIO", "platformio"),
                         ("cmake", "cmake-cortexm")):
        with pytest.raises(DeployError, match=f"'{typed}': did you mean '{meant}'\\? Known: arduino"):
            _generate(kws, profile, tmp_path / "d", template=typed)
    assert not (tmp_path / "d").exists()


def test_existing_folder_with_other_files_is_refused_and_left_alone(tmp_path, kws):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(DeployError, match="already exists with other files"):
        _generate(kws, load_profile("pico"), out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (_generate(kws, load_profile("pico"), empty) / "CMakeLists.txt").is_file()


def test_a_failure_leaves_nothing_half_written(tmp_path, kws):
    profile = load_profile("pico")
    with pytest.raises(DeployError, match="class names"):
        _generate(kws, profile, tmp_path / "fw", class_names=["only", "two"])
    with pytest.raises(ModelFileError):
        _generate(kws, profile, tmp_path / "fw", model_bytes=b"not a model at all")
    assert list(tmp_path.iterdir()) == []  # neither the project nor a temporary folder


def test_regenerating_replaces_a_project_it_made(tmp_path, mlperf_models, kws):
    profile = load_profile("pico")
    out = _generate(kws, profile, tmp_path / "fw")
    (out / "src" / "notes.txt").write_text("mine")
    ad = mlperf_models["ad"].read_bytes()
    out = _generate(ad, profile, tmp_path / "fw", model_bytes=ad, model_id="ad01", arena_bytes=4_632)
    assert (out / "src" / "notes.txt").read_text() == "mine"  # a file tinynas did not write stays (issue 11)
    assert read_project_info(out)["model_id"] == "ad01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fw"]


def _cortex_m_profiles():
    seen, out = set(), []
    for p in list_profiles(kind="mcu"):
        cm = cortex_m(p)
        if cm is not None and (cm.mcpu, cm.fpu_flags) not in seen:
            seen.add((cm.mcpu, cm.fpu_flags))
            out.append(p.id)
    return out


@pytest.mark.parametrize("profile_id", _cortex_m_profiles())
def test_generated_sources_compile_for_the_profiles_core(tmp_path, kws, profile_id):
    gxx, gcc = require_tool("arm-none-eabi-g++"), require_tool("arm-none-eabi-gcc")
    profile = load_profile(profile_id)
    cm = cortex_m(profile)
    out = _generate(kws, profile, tmp_path / "fw", template="cmake-cortexm")
    src = out / "src"
    flags = [f"-mcpu={cm.mcpu}", "-mthumb", *cm.fpu_flags.split()]
    cxx = [gxx, *flags, "-std=c++17", "-Os", "-Wall", "-Werror", "-fno-exceptions", "-fno-rtti", "-I", str(src)]

    def run(cmd):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"

    run([*cxx, "-c", str(src / "model_data.cc"), "-o", str(tmp_path / "model_data.o")])
    run([gcc, *flags, "-std=c99", "-Os", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c",
         str(src / "tinynas_protocol.c"), "-o", str(tmp_path / "protocol.o")])
    # op_resolver.h and the runner against fake_tflm's stand-ins for the TFLM headers
    (tmp_path / "resolver_check.cc").write_text('#include "op_resolver.h"\nTinyNasOpResolver r;\n'
                                                "int f() { return RegisterModelOps(r); }\n")
    run([*cxx, "-I", str(FAKE_TFLM), "-fsyntax-only", str(tmp_path / "resolver_check.cc")])
    run([*cxx, "-I", str(FAKE_TFLM), "-DFAKE_INPUT_BYTES=490", "-DFAKE_OUTPUT_BYTES=12", "-c",
         str(src / "tinynas_runner.cc"), "-o", str(tmp_path / "runner.o")])
    # the bare-metal glue: main, timer (DWT or SysTick), UART, start-up, stub runner
    for name in ("main.cc", "stub_runner.cc"):
        run([*cxx, "-c", str(src / name), "-o", str(tmp_path / (name + ".o"))])
    for name in ("tinynas_timer.c", "board_uart.c", "startup.c"):
        run([gcc, *flags, "-std=c99", "-Os", "-Wall", "-Werror", "-c", str(src / name), "-o",
             str(tmp_path / (name + ".o"))])


# ------------------------------------------------------------------------------------------- CLI


def test_cli_list(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["firmware", "list"])
    assert result.exit_code == 0, result.output
    for name in TEMPLATES:
        assert name in result.output
    assert result.output.count("no kernel for: BATCH_MATMUL, EMBEDDING_LOOKUP (in the library it pins)") == 2
    result = runner.invoke(cli, ["firmware", "list", "--json"])
    data = json.loads(result.output)
    assert sorted(t["name"] for t in data) == sorted(TEMPLATES)
    assert all({"cores", "build", "flash", "files", "missing_ops"} <= set(t) for t in data)
    result = runner.invoke(cli, ["firmware", "list", "--json", "--profile", "esp32s3-devkitc"])
    assert sorted(t["name"] for t in json.loads(result.output)) == ["arduino", "espidf", "platformio", "zephyr"]


def test_cli_generate(tmp_path, mlperf_models):
    runner = CliRunner()
    out = tmp_path / "fw"
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"c{i}" for i in range(12)) + "\n")
    result = runner.invoke(cli, ["firmware", "generate", "--model", str(mlperf_models["kws"]), "--profile", "pico",
                                 "--out", str(out), "--arena-bytes", "24272", "--labels", str(labels), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["template"] == "pico" and data["profile"] == "pico" and len(data["model_id"]) == 12
    assert "picotool load" in data["flash"]
    assert 'kClassLabels[] = {"c0", "c1"' in (out / "src" / "model_data.h").read_text()
    assert (out / STAMP).is_file()
    # the board gets the model without its tensor names, and announces the file's id, which measure looks for
    from tinynas.deploy.flatbuffer import strip_tensor_names

    file_bytes = mlperf_models["kws"].read_bytes()
    stripped, saved = strip_tensor_names(file_bytes)
    assert data["model_bytes"] == len(stripped) and data["tensor_names_stripped_bytes"] == saved > 0
    assert f"g_model_data_len = {len(stripped)};" in "".join(p.read_text() for p in out.rglob("model_data.c*"))
    assert data["model_id"] == hashlib.sha1(file_bytes).hexdigest()[:12]


def test_cli_errors_exit_1_with_a_message(tmp_path, mlperf_models):
    proc = subprocess.run([sys.executable, "-m", "tinynas.cli.main", "firmware", "generate", "--template", "pico",
                           "--model", str(mlperf_models["kws"]), "--profile", "nucleo-l4r5zi", "--out",
                           str(tmp_path / "fw"), "--arena-bytes", "24272"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: firmware template 'pico' cannot build for profile 'nucleo-l4r5zi'")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "fw").exists()


# ------------------------------------------- issue #11: what a profile or a label says stays inert

EVIL_NAME = 'Evil */ board " \n #define Y 1 \\'
EVIL_LABEL = 'a"b*/\n#define Y 2 ??/'


def _evil_profile():
    import dataclasses

    base = load_profile("nano33ble")
    return dataclasses.replace(base, name=EVIL_NAME)


def test_a_profile_name_and_labels_cannot_inject_code(tmp_path, kws):
    """The profile is built in code (validation refuses such a name), as a run directory's would be."""
    profile = _evil_profile()
    labels = [EVIL_LABEL] + [f"c{i}" for i in range(11)]
    for name in templates_for(profile):
        out = _generate(kws, profile, tmp_path / name, template=name, class_names=labels)
        for path in out.rglob("*"):
            if path.is_file() and path.suffix not in (".json",):
                for line in path.read_text(encoding="utf-8").splitlines():
                    assert not line.lstrip().startswith("#define Y"), f"{name}: {path.relative_to(out)}: {line}"
    src = tmp_path / "cmake-cortexm" / "src"
    assert "Evil * / board" in (src / "tinynas_timer.c").read_text()


def test_evil_name_and_labels_still_compile(tmp_path, kws):
    gxx, gcc = require_tool("arm-none-eabi-g++"), require_tool("arm-none-eabi-gcc")
    profile = _evil_profile()
    labels = [EVIL_LABEL] + [f"c{i}" for i in range(11)]
    out = _generate(kws, profile, tmp_path / "fw", template="cmake-cortexm", class_names=labels)
    src = out / "src"
    flags = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-Wall", "-Werror", "-I", str(src)]
    for cmd in ([gxx, *flags, "-std=c++17", "-fsyntax-only", str(src / "main.cc")],
                [gxx, *flags, "-std=c++17", "-trigraphs", "-fsyntax-only", "-x", "c++", str(src / "model_data.h")],
                [gcc, *flags, "-std=c99", "-fsyntax-only", str(src / "tinynas_timer.c")]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    probe = tmp_path / "probe.cc"
    probe.write_text('#include "model_data.h"\n#ifdef Y\n#error Y leaked\n#endif\n'
                     "static_assert(sizeof(kClassLabels) / sizeof(kClassLabels[0]) == 12, \"labels\");\n")
    proc = subprocess.run([gxx, *flags, "-std=c++17", "-fsyntax-only", str(probe)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_generate_refuses_a_float_model_like_the_other_commands(tmp_path, repo_root):
    """A float32 .tflite would compile with kInputScale = 0.0f; refused with require_int8's message."""
    import numpy as np
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3)])
    model(np.zeros((1, 4), "float32"))
    path = tmp_path / "float.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    proc = subprocess.run([sys.executable, "-m", "tinynas.cli.main", "firmware", "generate", "--model", str(path),
                           "--profile", "nucleo-l4r5zi", "--out", str(tmp_path / "fw")],
                          capture_output=True, text=True, cwd=repo_root, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 1, proc.stderr
    assert f"error: {path}: input is float32 and output is float32" in proc.stderr
    assert "full-integer model with int8 input and output" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "fw").exists()


def test_generate_says_a_truncated_model_is_truncated(tmp_path, mlperf_models, repo_root):
    data = mlperf_models["kws"].read_bytes()
    path = tmp_path / "cut.tflite"
    path.write_bytes(data[: len(data) // 2])
    proc = subprocess.run([sys.executable, "-m", "tinynas.cli.main", "firmware", "generate", "--model", str(path),
                           "--profile", "nucleo-l4r5zi", "--out", str(tmp_path / "fw")],
                          capture_output=True, text=True, cwd=repo_root, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: {path}: ") and "truncated" in proc.stderr
    assert "could not allocate" not in proc.stderr and "Traceback" not in proc.stderr
