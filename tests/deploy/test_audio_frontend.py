"""tinynas/deploy/audio_frontend.py: the C front end a WAV-folder model ships with computes, from the WAV
files' 16-bit samples, the features the loader trained on and the int8 input TFLite Micro would be fed
(compiled with the host's gcc and compared with numpy), it compiles for Cortex-M without double math, and every
firmware project builds it in."""

from __future__ import annotations

import logging
import subprocess

import numpy as np
import pytest
from _firmware_tools import require_tool
from cli_run import run_cli_output
from scipy.io import wavfile

from tinynas.data.audio import load_wav_folder
from tinynas.deploy.audio_frontend import static_ram_bytes, write_audio_frontend
from tinynas.deploy.deployer import _write_front_end

# Reads int16 clips from argv[1] (one after another), writes each clip's float features and int8 input;
# exit code 3 when the input streamed frame by frame differs from the whole clip's.
HARNESS = r"""
#include <stdio.h>
#include <string.h>
#include "audio_frontend.h"
int main(int argc, char** argv) {
  static int16_t clip[TINYNAS_FE_CLIP_SAMPLES];
  static int8_t input[TINYNAS_FE_NUM_FRAMES * TINYNAS_FE_NUM_FEATURES];
  float features[TINYNAS_FE_NUM_FEATURES];
  if (argc != 3) return 1;
  FILE* in = fopen(argv[1], "rb");
  FILE* out = fopen(argv[2], "wb");
  if (!in || !out) return 2;
  while (fread(clip, sizeof(int16_t), TINYNAS_FE_CLIP_SAMPLES, in) == TINYNAS_FE_CLIP_SAMPLES) {
    for (int t = 0; t < TINYNAS_FE_NUM_FRAMES; ++t) {
      tinynas_fe_frame(clip + t * TINYNAS_FE_FRAME_STEP, features);
      fwrite(features, sizeof(float), TINYNAS_FE_NUM_FEATURES, out);
    }
    tinynas_fe_clip(clip, input);
    static int8_t streamed[sizeof(input)];
    for (int t = 0; t < TINYNAS_FE_NUM_FRAMES; ++t) {
      tinynas_fe_push_frame(clip + t * TINYNAS_FE_FRAME_STEP, streamed);
    }
    if (memcmp(streamed, input, sizeof(input)) != 0) return 3;  // streaming ends where the whole clip does
    fwrite(input, 1, sizeof(input), out);
  }
  fclose(in);
  fclose(out);
  return 0;
}
"""


def _wav_folder(root, rate=16000, copies=1):
    """Two classes of 1 s clips: tones in noise, a short clip (padded in training), a clipped square wave
    and silence, so the log floor and the padding are exercised; ``copies`` of each, at shifted pitches."""
    rng = np.random.default_rng(0)
    t = np.arange(rate) / rate
    for label in ("yes", "no"):
        (root / label).mkdir(parents=True)
    for c in range(copies):
        shift = 1.0 + 0.05 * c
        clips = {"yes": [0.4 * np.sin(2 * np.pi * 440 * shift * t) + 0.05 * rng.normal(size=t.shape),
                         (0.4 * np.sin(2 * np.pi * 700 * shift * t) + 0.05 * rng.normal(size=t.shape))[:rate // 2]],
                 "no": [np.clip(2.0 * np.sign(np.sin(2 * np.pi * 1500 * shift * t)), -1, 1),
                        0.01 * c * rng.normal(size=t.shape)]}
        for label, signals in clips.items():
            for i, s in enumerate(signals):
                pcm = np.round(np.clip(s, -1, 1) * 32767).astype(np.int16)
                wavfile.write(root / label / f"{c:02d}_{i}.wav", rate, pcm)
    return root


def _pcm_clips(root, raw):
    """The folder's clips in the loader's order (classes sorted, files sorted), padded to a clip, as int16."""
    n = raw.audio_front_end.clip_samples
    clips = []
    for label in raw.class_names:
        for f in sorted((root / label).glob("*.wav")):
            pcm = np.zeros(n, dtype=np.int16)
            data = wavfile.read(f)[1][:n]
            pcm[:len(data)] = data
            clips.append(pcm)
    return np.stack(clips)


def _run_c(folder, clips, frames, features):
    exe = folder / "frontend"
    (folder / "main.c").write_text(HARNESS)
    subprocess.run([require_tool("gcc"), "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(folder / "main.c"), str(folder / "audio_frontend.c"), "-lm"], check=True, timeout=120)
    (folder / "clips.raw").write_bytes(clips.tobytes())
    subprocess.run([str(exe), str(folder / "clips.raw"), str(folder / "out.bin")], check=True, timeout=60)
    data = np.frombuffer((folder / "out.bin").read_bytes(), dtype=np.uint8)
    per_clip = frames * features * 5  # float features, then int8 input
    assert len(data) == len(clips) * per_clip
    out = data.reshape(len(clips), per_clip)
    feats = out[:, :frames * features * 4].copy().view(np.float32).reshape(len(clips), frames, features)
    return feats, out[:, frames * features * 4:].view(np.int8).reshape(len(clips), frames, features)


# 6 kHz: the mel bands (up to 4 kHz) weight the Nyquist bin, which the half-size FFT keeps apart, and the
# bands above 3 kHz are empty
@pytest.mark.parametrize("features, rate", [("mfcc", 16000), ("logmel", 16000), ("mfcc", 6000)])
def test_the_c_front_end_computes_the_features_and_int8_input_training_saw(features, rate, tmp_path):
    root = _wav_folder(tmp_path / "kws", rate=rate)
    raw = load_wav_folder(root, features=features, sample_rate_hz=rate)
    fe = raw.audio_front_end
    scale, zero_point = 0.05, -3
    shape = (1, fe.num_frames, fe.num_features, 1)
    write_audio_frontend(out_dir=tmp_path / "c", front_end=fe, scaling=raw.scaling, input_scale=scale,
                         input_zero_point=zero_point, input_shape=shape, model_id="m1")
    feats, q = _run_c(tmp_path / "c", _pcm_clips(root, raw), fe.num_frames, fe.num_features)
    x = raw.x[..., 0]  # what training saw: the loader's features after the input scaling
    assert np.abs(raw.scaling.apply(feats) - x).max() < 1e-3
    expected = np.clip(np.round(x.astype(np.float64) / scale) + zero_point, -128, 127)
    assert np.abs(q.astype(int) - expected).max() <= 1 and np.mean(q != expected) < 0.01


def test_deploy_writes_the_front_end_for_the_models_input_and_refuses_other_inputs(tmp_path, mlperf_models, caplog):
    """MLPerf Tiny's KWS model takes 49x10 MFCCs: the front end quantizes with that model's input parameters."""
    from tinynas.space.tflite_reader import tflite_info

    root = _wav_folder(tmp_path / "kws")
    kws = mlperf_models["kws"].read_bytes()
    inp = tflite_info(kws).inputs[0]

    class Data:  # what _write_front_end reads of a Dataset
        def __init__(self, raw):
            self.audio_front_end, self.input_scaling = raw.audio_front_end, raw.scaling

    raw = load_wav_folder(root)
    files, record = _write_front_end(out_dir=tmp_path / "c", model_bytes=kws, dataset=Data(raw), model_id="kws",
                                     room_bytes=1000, board="tiny-board")
    assert [f.name for f in files] == ["audio_frontend.h", "audio_frontend.c"]
    assert record == {"static_ram_bytes": 4260, "max_source": None, "file": "audio_frontend.c", "room_bytes": 1000,
                      "fits": False}  # 1024-point FFT (640-sample frames): 2 x 512 floats, 40 log-mel floats, one int
    assert "do not fit the 1000 bytes tiny-board's SRAM budget leaves beside the tensor arena" in caplog.text
    _, q = _run_c(tmp_path / "c", _pcm_clips(root, raw), 49, 10)
    expected = np.clip(np.round(raw.x[..., 0].astype(np.float64) / inp.scale) + inp.zero_point, -128, 127)
    assert np.abs(q.astype(int) - expected).max() <= 1 and np.mean(q != expected) < 0.01
    # 49x40 log-mel features are not what this model takes: nothing written, and the log says why
    with caplog.at_level(logging.WARNING):
        assert _write_front_end(out_dir=tmp_path / "other", model_bytes=kws, room_bytes=None, board="b",
                                dataset=Data(load_wav_folder(root, features="logmel")), model_id="kws") == ([], None)
    assert "is not the 49x40 features of the audio front end" in caplog.text and not (tmp_path / "other").exists()


@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m0plus"])
def test_the_front_end_compiles_for_cortex_m_in_single_precision(cpu, tmp_path):
    root = _wav_folder(tmp_path / "kws")
    raw = load_wav_folder(root)
    write_audio_frontend(out_dir=tmp_path, front_end=raw.audio_front_end, scaling=raw.scaling, input_scale=0.05,
                         input_zero_point=0, input_shape=(1, 49, 10, 1), model_id="m1")
    flags = ["-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"] if cpu == "cortex-m4" else []
    done = subprocess.run([require_tool("arm-none-eabi-gcc"), "-std=c99", "-Os", "-Wall", "-Wextra", "-Werror",
                           "-Wdouble-promotion", "-mthumb", f"-mcpu={cpu}", *flags, "-c",
                           str(tmp_path / "audio_frontend.c"), "-o", str(tmp_path / "fe.o")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    size = subprocess.run([require_tool("arm-none-eabi-size"), str(tmp_path / "fe.o")], capture_output=True,
                          text=True, check=True).stdout.splitlines()[1].split()
    assert int(size[1]) + int(size[2]) == static_ram_bytes(raw.audio_front_end)  # .data + .bss


@pytest.mark.slow
def test_a_run_on_a_wav_folder_ships_a_front_end_whose_input_tflite_micro_classifies_as_training_did(
        tmp_path, monkeypatch, capsys):
    """`tinynas run` on a WAV folder: deploy/ holds the front end and the summary names it; WAV file -> C front
    end -> the run's int8 model in TFLite Micro gives the outputs the loader's features give."""
    import json

    from tinynas.deploy.interpreter import MicroInterpreter

    root = _wav_folder(tmp_path / "kws", copies=10)
    out = tmp_path / "run"
    code, printed, err = run_cli_output(
        monkeypatch, capsys, "run", "--profile", "nano33ble", "--dataset", str(root), "--space", "dscnn",
        "--budget-candidates", "2", "--search-epochs", "1", "--final-epochs", "1", "--final-top-k", "1",
        "--no-progress", "--no-qat", "--out", str(out))
    assert code == 0, err[-3000:]
    front_end = out / "deploy" / "audio_frontend.c"
    assert f"front end  {front_end}   (the training features in C, from 16-bit samples; 4,260 B static RAM)" in printed
    assert "audio_frontend.c" in json.loads((out / "model" / "metrics.json").read_text())["files"]
    assert "audio_frontend.c computes this input" in (out / "deploy" / "model_data.h").read_text()
    sketch = out / "firmware" / "arduino" / "tinynas_bench"  # the firmware project has it too
    assert (sketch / "audio_frontend.c").read_bytes() == front_end.read_bytes()
    assert "audio_frontend.c computes this input" in (sketch / "model_data.h").read_text()
    raw = load_wav_folder(root)
    _, q = _run_c(out / "deploy", _pcm_clips(root, raw), 49, 10)
    interp = MicroInterpreter((out / "model" / "model_int8.tflite").read_bytes())
    assert np.abs(q.astype(int) - interp.quantize_input(raw.x)[..., 0]).max() <= 1
    from_c = np.stack([interp.invoke_int8(sample[..., None]) for sample in q])
    assert np.abs(from_c.astype(int) - interp.predict_int8(raw.x).astype(int)).max() <= 1


def test_every_firmware_template_builds_the_front_end_in(tmp_path, mlperf_models):
    """The front end goes beside the model sources of every template, and into the CMake templates' source
    lists; the cmake-cortexm project (protocol-only runner: no TFLite Micro here) compiles and links it."""
    from tinynas.deploy.firmware import generate_firmware, get_template
    from tinynas.hardware import load_profile

    kws = mlperf_models["kws"].read_bytes()
    raw = load_wav_folder(_wav_folder(tmp_path / "kws"))

    class Data:  # what _write_front_end reads of a Dataset
        audio_front_end, input_scaling = raw.audio_front_end, raw.scaling

    sources, _ = _write_front_end(out_dir=tmp_path / "fe", model_bytes=kws, dataset=Data(), model_id="kws",
                                  room_bytes=None, board="b")
    boards = {"arduino": "nano33ble", "platformio": "nano33ble", "cmake-cortexm": "nucleo-l432kc",
              "zephyr": "nucleo-l432kc", "espidf": "esp32s3-devkitc", "pico": "pico"}
    lists = {"cmake-cortexm": "CMakeLists.txt", "zephyr": "CMakeLists.txt", "pico": "CMakeLists.txt",
             "espidf": "main/CMakeLists.txt"}
    for name, board in boards.items():
        project = generate_firmware(template=name, model_bytes=kws, profile=load_profile(board),
                                    out_dir=tmp_path / name, class_names=[], arena_bytes=24_272,
                                    model_id="kws01", extra_sources=sources)
        model_dir = project / get_template(name).model_dir
        assert (model_dir / "audio_frontend.c").read_bytes() == (tmp_path / "fe" / "audio_frontend.c").read_bytes()
        assert (model_dir / "audio_frontend.h").is_file(), name
        # the README's application snippet fills the input from samples through the front end
        assert "tinynas_fe_clip(samples, tinynas_runner_input());" in (project / "README.md").read_text(), name
        if name in lists:
            assert "audio_frontend.c" in (project / lists[name]).read_text(), name
            assert "audio_frontend.h" not in (project / lists[name]).read_text(), name
    # without a front end the lists are as before
    plain = generate_firmware(template="zephyr", model_bytes=kws, profile=load_profile("nucleo-l432kc"),
                              out_dir=tmp_path / "plain", class_names=[], arena_bytes=24_272, model_id="kws01")
    assert "audio_frontend" not in (plain / "CMakeLists.txt").read_text()
    for tool in ("cmake", "arm-none-eabi-gcc", "arm-none-eabi-g++"):
        require_tool(tool)
    project, build = tmp_path / "cmake-cortexm", tmp_path / "build"
    for cmd in (["cmake", "-S", str(project), "-B", str(build), "-DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi.cmake",
                 "-DTINYNAS_PROTOCOL_ONLY=ON"], ["cmake", "--build", str(build)]):
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=project, timeout=600)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert list(build.rglob("audio_frontend.c.obj")) and list(build.glob("*.elf"))
