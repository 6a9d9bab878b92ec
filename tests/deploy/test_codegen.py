"""tinynas.deploy.codegen: model_data.h/.cc and op_resolver.h from real MLPerf Tiny int8 models.

The C sources are compiled (host g++ and arm-none-eabi-g++) and, on the host, run: the array
must hold the .tflite bytes exactly, 16-byte aligned; the op resolver is checked against a
stand-in of TFLM's MicroMutableOpResolver that has the real method names (fake_tflm/).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinynas.deploy.codegen import (
    TFLM_BUILTIN_OPS,
    arena_size_with_margin,
    resolver_method,
    write_model_sources,
)
from tinynas.errors import DeployError, ModelFileError
from tinynas.space.tflite_reader import tflite_info

from _firmware_tools import fused_instructions, require_tool

HERE = Path(__file__).resolve().parent
FAKE_TFLM = HERE / "fake_tflm"
KWS_LABELS = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "silence", "unknown"]


def _gxx() -> str:
    return require_tool("g++")


def _arm_gxx() -> str:
    return require_tool("arm-none-eabi-g++")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _bytes_in_source(text: str) -> bytes:
    body = text[text.index("= {") + 3:text.index("};")]
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))


@pytest.mark.parametrize("name", ["kws", "ic", "vww", "ad"])
def test_model_array_holds_the_exact_tflite_bytes(tmp_path, mlperf_models, name):
    data = mlperf_models[name].read_bytes()
    paths = write_model_sources(model_bytes=data, out_dir=tmp_path, class_names=[], arena_bytes=10_000,
                                model_id=name)
    assert [p.name for p in paths] == ["model_data.h", "model_data.cc", "op_resolver.h"]
    source = (tmp_path / "model_data.cc").read_text()
    assert _bytes_in_source(source) == data
    assert "alignas(16) const unsigned char g_model_data[] = {" in source
    assert f"const unsigned int g_model_data_len = {len(data)};" in source
    lines = [ln for ln in source.splitlines() if ln.startswith("    0x")]
    assert all(ln.count("0x") == 12 for ln in lines[:-1]) and 1 <= lines[-1].count("0x") <= 12


def test_header_constants_match_the_model(tmp_path, mlperf_models):
    data = mlperf_models["kws"].read_bytes()
    info = tflite_info(data)
    write_model_sources(model_bytes=data, out_dir=tmp_path, class_names=KWS_LABELS, arena_bytes=24_272,
                        model_id="kws01", input_scaling="MFCC features as in the MLPerf Tiny KWS reference */ x")
    header = (tmp_path / "model_data.h").read_text()
    inp, out = info.inputs[0], info.outputs[0]
    assert f"constexpr int32_t kInputZeroPoint = {inp.zero_point};" in header
    assert f"constexpr int32_t kOutputZeroPoint = {out.zero_point};" in header
    assert "constexpr unsigned int kInputBytes = 490;" in header
    assert "constexpr int kInputShape[] = {1, 49, 10, 1};" in header
    assert "constexpr unsigned int kOutputCount = 12;" in header
    assert "constexpr int kNumClasses = 12;" in header
    assert f"constexpr unsigned int kTensorArenaSize = {arena_size_with_margin(24_272)};" in header
    assert 'constexpr const char kModelId[] = "kws01";' in header
    assert "// Input scaling: MFCC features" in header and "*/ x" not in header
    scale = float(re.search(r"kInputScale = ([0-9.e+-]+)f;", header).group(1))
    assert scale == pytest.approx(inp.scale, rel=1e-7)


def test_arena_margin_is_documented_and_rounded():
    assert arena_size_with_margin(24_272) == 25_488  # +5 % = 1,214 -> 25,486 -> 16-byte multiple
    assert arena_size_with_margin(4_632) == 5_664  # tiny model: at least 1 KiB
    assert arena_size_with_margin(100_000, arena_margin=0.1) == 110_000
    assert all(arena_size_with_margin(n) % 16 == 0 for n in (1, 17, 999, 123_457))
    with pytest.raises(DeployError, match="arena_bytes"):
        arena_size_with_margin(0)
    with pytest.raises(DeployError, match="arena_margin"):
        arena_size_with_margin(1000, arena_margin=2.0)


HOST_CHECK = r"""
#include <cstdint>
#include <cstdio>
#include "model_data.h"
int main() {
  if (reinterpret_cast<uintptr_t>(g_model_data) % 16 != 0) { std::puts("misaligned"); return 1; }
  std::fwrite(g_model_data, 1, g_model_data_len, stdout);
  std::fprintf(stderr, "%u|%d|%s", kTensorArenaSize, kNumClasses, kModelId);
  for (int i = 0; i < kNumClasses; ++i) std::fprintf(stderr, "|%s", kClassLabels[i]);
  return 0;
}
"""


def test_sources_compile_and_run_on_the_host(tmp_path, mlperf_models):
    gxx = _gxx()
    data = mlperf_models["kws"].read_bytes()
    labels = ['say "go"', "back\\slash", "café", "what??!"] + KWS_LABELS[4:]
    # text from a dataset (a CSV's column names) in the header's comments: a line ending in a backslash,
    # or in the trigraph of one, would splice the next line (a constant) into the comment
    scaling = "rows of columns a\\b, c\\\nof d??/\nthen e */ f"
    write_model_sources(model_bytes=data, out_dir=tmp_path, class_names=labels, arena_bytes=24_272, model_id="kws01",
                        input_scaling=scaling)
    (tmp_path / "check.cc").write_text(HOST_CHECK)
    exe = tmp_path / "check"
    _run([gxx, "-std=c++11", "-trigraphs", "-Wall", "-Wextra", "-Werror", "-I", str(tmp_path),
          str(tmp_path / "check.cc"), str(tmp_path / "model_data.cc"), "-o", str(exe)])
    proc = subprocess.run([str(exe)], capture_output=True, check=True)
    assert proc.stdout == data
    arena, num, model_id, *names = proc.stderr.decode("utf-8").split("|")
    assert (int(arena), int(num), model_id) == (arena_size_with_margin(24_272), 12, "kws01")
    assert names == labels


@pytest.mark.parametrize("cpu,flags", [("cortex-m4", ["-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]),
                                       ("cortex-m0plus", []), ("cortex-m7", []), ("cortex-m33", [])])
def test_model_data_compiles_for_cortex_m_into_flash(tmp_path, mlperf_models, cpu, flags):
    gxx = _arm_gxx()
    data = mlperf_models["kws"].read_bytes()
    write_model_sources(model_bytes=data, out_dir=tmp_path, class_names=KWS_LABELS, arena_bytes=24_272,
                        model_id="kws01")
    obj = tmp_path / "model_data.o"
    _run([gxx, f"-mcpu={cpu}", "-mthumb", *flags, "-std=c++17", "-Os", "-Wall", "-Werror", "-c",
          str(tmp_path / "model_data.cc"), "-o", str(obj)])
    nm = require_tool("arm-none-eabi-nm")
    symbols = {line.split()[-1]: line.split() for line in _run([nm, "-S", str(obj)]).stdout.splitlines()}
    addr, size, kind, _ = symbols["g_model_data"]
    assert kind == "R"  # read-only data: stays in flash, not copied to SRAM
    assert int(size, 16) == len(data) and int(addr, 16) % 16 == 0
    readelf = _run([require_tool("arm-none-eabi-readelf"), "-SW", str(obj)]).stdout
    rodata = next(ln for ln in readelf.splitlines() if "] .rodata" in ln)
    assert int(rodata.split()[-1]) >= 16  # section alignment keeps the 16-byte alignment after linking


FPU_CPUS = [("cortex-m4", "fpv4-sp-d16"), ("cortex-m7", "fpv5-d16"), ("cortex-m33", "fpv5-sp-d16")]


@pytest.mark.parametrize("cpu, fpu", FPU_CPUS)
def test_the_input_helpers_round_every_product_where_the_fpu_could_fuse_it(tmp_path, mlperf_models, cpu, fpu):
    """The host tests run the helpers on x86-64, which has no fused multiply-add without -mfma. GCC fused
    raw * kRawScale + kRawOffset and each lerp into one VFMA for these cores, one rounding where training
    had two: the board's int8 input could differ from the deploy check's by a step."""
    data = mlperf_models["ic"].read_bytes()  # int8 input 1x32x32x3
    write_model_sources(model_bytes=data, out_dir=tmp_path, class_names=[], arena_bytes=60_000, model_id="ic01",
                        raw_scaling=(1 / 255, -0.5), raw_shape=(40, 50, 3))
    (tmp_path / "use.cc").write_text('#include "model_data.h"\n'
                                     "void Resize(const float* raw, int8_t* input) { ResizeRawInput(raw, input); }\n"
                                     "int8_t One(float raw) { return QuantizeRawInput(raw); }\n")
    obj = tmp_path / "use.o"
    _run([_arm_gxx(), f"-mcpu={cpu}", "-mthumb", f"-mfpu={fpu}", "-mfloat-abi=hard", "-std=c++17", "-O2", "-Wall",
          "-Werror", "-I", str(tmp_path), "-c", str(tmp_path / "use.cc"), "-o", str(obj)])
    assert fused_instructions(str(obj)) == []


RESOLVER_CHECK = r"""
#include <cstdio>
#include "op_resolver.h"
int main() {
  TinyNasOpResolver resolver;
  if (RegisterModelOps(resolver) != kTfLiteOk) { std::puts("register failed"); return 1; }
  for (unsigned int i = 0; i < resolver.count(); ++i) std::printf("%s\n", resolver.added(i));
  return resolver.count() == kNumModelOps ? 0 : 2;
}
"""


def _resolver_ops(tmp_path: Path, gxx: str) -> list[str]:
    (tmp_path / "check_resolver.cc").write_text(RESOLVER_CHECK)
    exe = tmp_path / "check_resolver"
    _run([gxx, "-std=c++17", "-Wall", "-Werror", "-I", str(tmp_path), "-I", str(FAKE_TFLM),
          str(tmp_path / "check_resolver.cc"), "-o", str(exe)])
    return _run([str(exe)]).stdout.split()


@pytest.mark.parametrize("name", ["kws", "ic", "vww", "ad"])
def test_op_resolver_registers_exactly_the_models_ops(tmp_path, mlperf_models, name):
    gxx = _gxx()
    data = mlperf_models[name].read_bytes()
    write_model_sources(model_bytes=data, out_dir=tmp_path, class_names=[], arena_bytes=10_000, model_id=name)
    expected = list(tflite_info(data).op_kinds)
    text = (tmp_path / "op_resolver.h").read_text()
    assert f"constexpr unsigned int kNumModelOps = {len(expected)};" in text
    assert text.count("resolver.Add") == len(expected)
    assert _resolver_ops(tmp_path, gxx) == expected


def test_every_known_op_maps_to_a_real_tflm_method(tmp_path):
    """The naming rule + irregular table against the method names of TFLM's own header."""
    gxx = _gxx()
    ops = sorted(TFLM_BUILTIN_OPS)
    calls = "\n".join(f'  if (r.{resolver_method(op)}() != kTfLiteOk) {{ std::puts("fail {op}"); return 1; }}'
                      for op in ops)
    (tmp_path / "all.cc").write_text(
        "#include <cstdio>\n#include \"tensorflow/lite/micro/micro_mutable_op_resolver.h\"\n"
        f"int main() {{\n  tflite::MicroMutableOpResolver<{len(ops)}> r;\n{calls}\n"
        "  for (unsigned int i = 0; i < r.count(); ++i) std::printf(\"%s\\n\", r.added(i));\n  return 0;\n}\n")
    _run([gxx, "-std=c++17", "-I", str(FAKE_TFLM), str(tmp_path / "all.cc"), "-o", str(tmp_path / "all")])
    assert _run([str(tmp_path / "all")]).stdout.split() == ops


def test_resolver_method_names():
    assert resolver_method("CONV_2D") == "AddConv2D"
    assert resolver_method("DEPTHWISE_CONV_2D") == "AddDepthwiseConv2D"
    assert resolver_method("MAX_POOL_2D") == "AddMaxPool2D"
    assert resolver_method("AVERAGE_POOL_2D") == "AddAveragePool2D"
    assert resolver_method("FULLY_CONNECTED") == "AddFullyConnected"
    assert resolver_method("MEAN") == "AddMean"
    assert resolver_method("RELU6") == "AddRelu6"
    assert resolver_method("L2_NORMALIZATION") == "AddL2Normalization"
    assert resolver_method("BATCH_MATMUL") == "AddBatchMatMul"
    assert resolver_method("UNIDIRECTIONAL_SEQUENCE_LSTM") == "AddUnidirectionalSequenceLSTM"
    for bad in ("CUSTOM:MyOp", "BUILTIN_999", "STABLEHLO_ADD", "RFFT2D"):
        with pytest.raises(DeployError, match=re.escape(bad)):
            resolver_method(bad)


def test_bad_input_gets_clear_errors(tmp_path, mlperf_models):
    data = mlperf_models["kws"].read_bytes()
    with pytest.raises(ModelFileError, match="TFL3"):
        write_model_sources(model_bytes=b"\x1c\0\0\0NOPE" + data[8:], out_dir=tmp_path / "a", class_names=[],
                            arena_bytes=1000, model_id="x")
    with pytest.raises(DeployError, match="3 class names for a model with 12 outputs"):
        write_model_sources(model_bytes=data, out_dir=tmp_path / "b", class_names=["a", "b", "c"],
                            arena_bytes=1000, model_id="x")
    with pytest.raises(DeployError, match="model_id"):
        write_model_sources(model_bytes=data, out_dir=tmp_path / "c", class_names=[], arena_bytes=1000,
                            model_id="has space")
    with pytest.raises(DeployError, match="model_name"):
        write_model_sources(model_bytes=data, out_dir=tmp_path / "d", class_names=[], arena_bytes=1000,
                            model_id="x", model_name="1-bad")
    assert not any((tmp_path / d).exists() for d in "abcd")  # nothing written for refused input


def test_model_name_changes_file_and_symbol_names(tmp_path, mlperf_models):
    data = mlperf_models["ad"].read_bytes()
    paths = write_model_sources(model_bytes=data, out_dir=tmp_path, class_names=[], arena_bytes=4_632,
                                model_id="ad01", model_name="anomaly")
    assert [p.name for p in paths] == ["anomaly_data.h", "anomaly_data.cc", "op_resolver.h"]
    assert "g_anomaly_data[]" in paths[1].read_text()
    assert "constexpr int kNumClasses = 0;" in paths[0].read_text()


RAW_CHECK = r"""
#include <cstdio>
#include <cstdlib>
#include "model_data.h"
int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) std::printf("%d\n", QuantizeRawInput(std::strtof(argv[i], nullptr)));
  return 0;
}
"""


def test_raw_input_helper_quantizes_a_sensor_value_as_the_host_does(tmp_path, mlperf_models):
    """A sketch that reads its own accelerometer needs the training's affine map and the input's
    quantization in numbers, not only in a comment: QuantizeRawInput(raw) is both."""
    from tinynas.data.types import InputScaling
    from tinynas.deploy.interpreter import read_model_io

    gxx = _gxx()
    data = mlperf_models["kws"].read_bytes()
    scaling = InputScaling(scale=0.2121297456165053, offset=-0.6938015770708512, description="sensor values")
    write_model_sources(model_bytes=data, out_dir=tmp_path, class_names=KWS_LABELS, arena_bytes=24_272,
                        model_id="kws01", input_scaling="x = raw * 0.21 - 0.69",
                        raw_scaling=(scaling.scale, scaling.offset))
    header = (tmp_path / "model_data.h").read_text()
    assert "constexpr float kRawScale = 0.2121297456165053f;" in header
    (tmp_path / "raw.cc").write_text(RAW_CHECK)
    exe = tmp_path / "raw"
    _run([gxx, "-std=c++11", "-Wall", "-Wextra", "-Werror", "-Wconversion", "-I", str(tmp_path),
          str(tmp_path / "raw.cc"), str(tmp_path / "model_data.cc"), "-o", str(exe)])
    raw = np.concatenate([np.random.default_rng(0).normal(3.3, 4.7, size=400), [-1e9, 1e9, 0.0, 9.81]])
    got = np.array(_run([str(exe), *[repr(float(v)) for v in raw]]).stdout.split(), dtype=np.int64)
    io = read_model_io(data).input
    host = np.clip(np.round(scaling.apply(raw).astype(np.float64) / io.scale) + io.zero_point, -128, 127)
    np.testing.assert_array_equal(got, host)  # x / scale in double, halves to even, as the check quantizes
    assert got[400] == -128 and got[401] == 127  # saturated
    # inputs exactly halfway between two int8 steps: the check rounds them to even, and so does the header
    write_model_sources(model_bytes=data, out_dir=tmp_path / "unit", class_names=KWS_LABELS, arena_bytes=24_272,
                        model_id="kws01", raw_scaling=(1.0, 0.0))
    (tmp_path / "unit" / "raw.cc").write_text(RAW_CHECK)  # beside its header: "" includes look there first
    _run([gxx, "-std=c++11", "-I", str(tmp_path / "unit"), str(tmp_path / "unit" / "raw.cc"),
          str(tmp_path / "unit" / "model_data.cc"), "-o", str(exe)])
    halves = np.asarray([(k + 0.5) * io.scale for k in range(-6, 6)], dtype=np.float32)
    halves = halves[[float(h) / io.scale % 1.0 == 0.5 for h in halves]]
    assert len(halves) >= 2, halves  # +-0.5 steps at least
    got = np.array(_run([str(exe), *[repr(float(v)) for v in halves]]).stdout.split(), dtype=np.int64)
    np.testing.assert_array_equal(got, np.round(halves.astype(np.float64) / io.scale) + io.zero_point)
    write_model_sources(model_bytes=data, out_dir=tmp_path, class_names=KWS_LABELS, arena_bytes=24_272,
                        model_id="kws01")
    assert "QuantizeRawInput" not in (tmp_path / "model_data.h").read_text()  # not known: not written


RESIZE_CHECK = r"""
#include <cstdio>
#include "model_data.h"
int main(int argc, char** argv) {
  static float raw[kRawHeight * kRawWidth * kRawChannels];
  static int8_t input[kInputCount];
  std::FILE* f = std::fopen(argv[1], "rb");
  while (std::fread(raw, sizeof(float), sizeof(raw) / sizeof(float), f) == sizeof(raw) / sizeof(float)) {
    ResizeRawInput(raw, input);
    std::fwrite(input, 1, sizeof(input), stdout);
  }
  std::fclose(f);
  return argc == 2 ? 0 : 1;
}
"""


@pytest.mark.parametrize("raw_shape", [(40, 50, 3), (20, 24, 3), (32, 32, 3)])
def test_resize_helper_gives_the_input_training_fed_a_model_at_another_resolution(tmp_path, mlperf_models,
                                                                                 raw_shape):
    """mcunet's resolution choice: the model takes 32x32 of samples the data gives at another size, and
    training fed it TensorFlow's bilinear resize of the scaled samples. ResizeRawInput must give the same int8
    input, byte for byte, shrinking or growing, non-square, 3 channels; a model at the data's size gets none."""
    from tinynas.data.types import InputScaling
    from tinynas.deploy.interpreter import MicroInterpreter
    from tinynas.train.inputs import fit_inputs

    gxx = _gxx()
    data = mlperf_models["ic"].read_bytes()  # int8 input 1x32x32x3
    scaling = InputScaling(scale=1 / 255, offset=-0.5, description="pixels")
    write_model_sources(model_bytes=data, out_dir=tmp_path, class_names=[], arena_bytes=60_000, model_id="ic01",
                        raw_scaling=(scaling.scale, scaling.offset), raw_shape=raw_shape)
    header = (tmp_path / "model_data.h").read_text()
    if raw_shape == (32, 32, 3):
        assert "ResizeRawInput" not in header and "QuantizeRawInput" in header
        return
    assert f"The data gives {raw_shape[0]}x{raw_shape[1]}x3 samples; this model takes 32x32x3" in header
    (tmp_path / "resize.cc").write_text(RESIZE_CHECK)
    exe = tmp_path / "resize"
    _run([gxx, "-std=c++11", "-O2", "-Wall", "-Wextra", "-Werror", "-Wconversion", "-I", str(tmp_path),
          str(tmp_path / "resize.cc"), str(tmp_path / "model_data.cc"), "-o", str(exe)])
    raw = np.random.default_rng(1).integers(0, 256, size=(24, *raw_shape)).astype(np.float32)
    (tmp_path / "raw.bin").write_bytes(raw.tobytes())
    proc = subprocess.run([str(exe), str(tmp_path / "raw.bin")], capture_output=True, check=True)
    got = np.frombuffer(proc.stdout, dtype=np.int8)
    x = fit_inputs(scaling.apply(raw), (32, 32, 3), dataset="t", fingerprint=str(raw_shape), split="test")
    want = MicroInterpreter(data).quantize_input(x)
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    with pytest.raises(DeployError, match="raw_shape"):
        write_model_sources(model_bytes=data, out_dir=tmp_path / "bad", class_names=[], arena_bytes=60_000,
                            model_id="ic01", raw_scaling=(scaling.scale, scaling.offset), raw_shape=(40, 50, 1))
    assert not (tmp_path / "bad").exists()
