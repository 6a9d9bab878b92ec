"""tinynas/deploy/image_frontend.py: the C preprocessing an image-folder model ships with turns camera frames
(grey, RGB888, RGB565) of any size into exactly the int8 input the loader's Pillow pipeline and the interpreter's
quantization give (compiled with the host's gcc), and it compiles for Cortex-M."""

from __future__ import annotations

import json
import struct
import subprocess

import numpy as np
import pytest
from _firmware_tools import fused_instructions, require_tool
from cli_run import run_cli_output
from PIL import Image

from tinynas.data.images import load_image_folder
from tinynas.deploy.image_frontend import fit_max_source, pixel_table, static_ram_bytes, write_image_frontend

# Reads frames from argv[1] (int32 width, height, format, then the pixels), writes each frame's int8 input;
# exit code 4 when the front end refuses a frame.
HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include "image_frontend.h"
int main(int argc, char** argv) {
  static int8_t input[TINYNAS_IMG_HEIGHT * TINYNAS_IMG_WIDTH * TINYNAS_IMG_CHANNELS];
  int32_t head[3];
  if (argc != 3) return 1;
  FILE* in = fopen(argv[1], "rb");
  FILE* out = fopen(argv[2], "wb");
  if (!in || !out) return 2;
  while (fread(head, sizeof(int32_t), 3, in) == 3) {
    const int bytes = head[2] == 0 ? 1 : head[2] == 1 ? 3 : 2;
    const size_t size = (size_t)head[0] * (size_t)head[1] * (size_t)bytes;
    void* pixels = malloc(size);
    if (fread(pixels, 1, size, in) != size) return 3;
    if (tinynas_img_frame(pixels, head[0], head[1], head[0] * bytes, (tinynas_img_format)head[2], input) != 0) {
      return 4;
    }
    fwrite(input, 1, sizeof(input), out);
    free(pixels);
  }
  fclose(in);
  fclose(out);
  return 0;
}
"""

SCALE, ZERO_POINT = 1.0 / 255.0, -128  # what the converter gives an input of 0..1


def _pictures(rng: np.random.Generator) -> list[np.ndarray]:
    """RGB pictures that shrink by odd factors, keep one axis, grow, and one of the model's own size, with
    smooth gradients and sharp noise (so every coefficient and the rounding between passes count)."""
    out = []
    for width, height in [(160, 120), (37, 23), (16, 48), (9, 13), (16, 16), (101, 77)]:
        yy, xx = np.mgrid[0:height, 0:width]
        smooth = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1),
                           (xx + yy) * 127 // max(width + height - 2, 1)], axis=-1)
        noise = rng.integers(0, 256, size=(height, width, 3))
        out.append(np.where(rng.random((height, width, 1)) < 0.3, noise, smooth).astype(np.uint8))
    return out


def _folder(root, pictures):
    for i, picture in enumerate(pictures):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture, "RGB").save(root / f"c{i % 2}" / f"{i:02d}.png")
    return root


def _frames(pictures, format_: int) -> bytes:
    data = b""
    for p in pictures:
        if format_ == 0:
            pixels = np.asarray(Image.fromarray(p, "RGB").convert("L")).tobytes()
        elif format_ == 1:
            pixels = p.tobytes()
        else:
            r, g, b = (p[..., i].astype(np.uint16) for i in range(3))
            pixels = (((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3)).astype("<u2").tobytes()
        data += struct.pack("<3i", p.shape[1], p.shape[0], format_) + pixels
    return data


def _run_c(folder, frames: bytes, size: int, channels: int, tmp_path, *defines: str) -> np.ndarray:
    gcc = require_tool("gcc")
    (folder / "harness.c").write_text(HARNESS)
    exe, frames_path, out = tmp_path / "img", tmp_path / "frames.bin", tmp_path / "input.bin"
    subprocess.run([gcc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", *defines, str(folder / "harness.c"),
                    str(folder / "image_frontend.c"), f"-I{folder}", "-o", str(exe)], check=True)
    frames_path.write_bytes(frames)
    done = subprocess.run([str(exe), str(frames_path), str(out)])
    assert done.returncode == 0
    return np.frombuffer(out.read_bytes(), dtype=np.int8).reshape(-1, size, size, channels)


@pytest.mark.parametrize("color_mode, channels", [("grayscale", 1), ("rgb", 3)])
def test_camera_frames_become_the_input_pillow_and_the_interpreter_give(color_mode, channels, tmp_path):
    pictures = _pictures(np.random.default_rng(0))
    raw = load_image_folder(_folder(tmp_path / "pics", pictures), image_size=16, color_mode=color_mode)
    front_end = raw.image_front_end
    assert (front_end.channels, front_end.height, front_end.width, front_end.resized) == (channels, 16, 16, True)
    c_dir = tmp_path / "c"
    write_image_frontend(out_dir=c_dir, front_end=front_end, scaling=raw.scaling, input_scale=SCALE,
                         input_zero_point=ZERO_POINT, input_shape=(1, 16, 16, channels), model_id="pics")
    # the loader sorts files into classes c0, c1: the same pictures in its order
    order = [i for c in (0, 1) for i in range(len(pictures)) if i % 2 == c]
    expected = np.clip(np.round(raw.x.astype(np.float64) / SCALE) + ZERO_POINT, -128, 127).astype(np.int8)
    got = _run_c(c_dir, _frames([pictures[i] for i in order], 1), 16, channels, tmp_path)
    np.testing.assert_array_equal(got, expected)  # RGB888 frames: Pillow's every value
    if channels == 1:  # a grey camera gives the grey picture; PIL's L of RGB first, then the same resize
        grey = _run_c(c_dir, _frames([pictures[i] for i in order], 0), 16, 1, tmp_path)
        np.testing.assert_array_equal(grey, expected)
    # RGB565: the pictures rounded to 5/6/5 bits, expanded as the C does, give what those 8-bit pictures give
    expand = [np.stack([(p[..., 0] >> 3 << 3) | (p[..., 0] >> 5), (p[..., 1] >> 2 << 2) | (p[..., 1] >> 6),
                        (p[..., 2] >> 3 << 3) | (p[..., 2] >> 5)], axis=-1).astype(np.uint8) for p in pictures]
    rounded = load_image_folder(_folder(tmp_path / "565", expand), image_size=16, color_mode=color_mode)
    want = np.clip(np.round(rounded.x.astype(np.float64) / SCALE) + ZERO_POINT, -128, 127).astype(np.int8)
    np.testing.assert_array_equal(_run_c(c_dir, _frames([pictures[i] for i in order], 2), 16, channels, tmp_path),
                                  want)


@pytest.mark.parametrize("color_mode, channels", [("grayscale", 1), ("rgb", 3)])
def test_a_model_at_another_resolution_gets_the_input_training_resized_to_it(color_mode, channels, tmp_path):
    """mcunet's resolution choice takes the pictures at, say, 7x7 of 16x16: training resizes them again with
    TensorFlow's bilinear (``fit_inputs``). The front end repeats that second resize, bit for bit, where it
    used to write nothing (the firmware had no way to make the model's input from a camera)."""
    from tinynas.train.inputs import fit_inputs

    pictures = _pictures(np.random.default_rng(4))
    raw = load_image_folder(_folder(tmp_path / "pics", pictures), image_size=16, color_mode=color_mode)
    order = [i for c in (0, 1) for i in range(len(pictures)) if i % 2 == c]
    for model in (7, 11, 24):  # shrink by odd factors, and grow
        c_dir = tmp_path / f"c{model}"
        # a grey model may take its input without the channel axis: the same bytes
        shape = (1, model, model) if channels == 1 and model == 11 else (1, model, model, channels)
        write_image_frontend(out_dir=c_dir, front_end=raw.image_front_end, scaling=raw.scaling, input_scale=SCALE,
                             input_zero_point=ZERO_POINT, input_shape=shape, model_id="pics")
        header = (c_dir / "image_frontend.h").read_text()
        assert f"then resized to {model}x{model}, the model's resolution" in " ".join(header.replace("//", "").split())
        x = fit_inputs(raw.x, (model, model, channels), dataset="pics", fingerprint=f"{tmp_path}{color_mode}",
                       split="train")
        expected = np.clip(np.round(np.asarray(x, dtype=np.float64) / SCALE) + ZERO_POINT, -128, 127).astype(np.int8)
        got = _run_c(c_dir, _frames([pictures[i] for i in order], 1), model, channels, tmp_path)
        np.testing.assert_array_equal(got, expected)


def test_the_pixel_table_is_the_scaling_then_the_quantization():
    from tinynas.data.types import InputScaling

    scaling = InputScaling(scale=1 / 255, offset=-0.5, description="centred")
    table = pixel_table(scaling=scaling, input_scale=0.004, input_zero_point=3)
    want = np.clip(np.round(scaling.apply(np.arange(256)).astype(np.float64) / 0.004) + 3, -128, 127)
    np.testing.assert_array_equal(table, want)
    assert table[0] == -122 and table[255] == 127  # -0.5 / 0.004 + 3 and a clamp


def test_a_frame_too_large_or_a_model_of_another_input_is_refused(tmp_path):
    from tinynas.errors import DeployError

    pictures = _pictures(np.random.default_rng(1))[:2]
    raw = load_image_folder(_folder(tmp_path / "pics", pictures), image_size=8, color_mode="grayscale")
    with pytest.raises(DeployError, match="is not the 8x8x1 pictures"):
        write_image_frontend(out_dir=tmp_path / "x", front_end=raw.image_front_end, scaling=raw.scaling,
                             input_scale=SCALE, input_zero_point=ZERO_POINT, input_shape=(1, 8, 8, 3), model_id="m")
    c_dir = tmp_path / "c"
    write_image_frontend(out_dir=c_dir, front_end=raw.image_front_end, scaling=raw.scaling, input_scale=SCALE,
                         input_zero_point=ZERO_POINT, input_shape=(1, 8, 8, 1), model_id="m")
    gcc = require_tool("gcc")
    (c_dir / "harness.c").write_text(HARNESS)
    exe = tmp_path / "img"
    # a maximum source of 100x100: the 160x120 frame is refused, the 37x23 one taken
    subprocess.run([gcc, "-std=c99", "-DTINYNAS_IMG_MAX_SOURCE_WIDTH=100", "-DTINYNAS_IMG_MAX_SOURCE_HEIGHT=100",
                    str(c_dir / "harness.c"), str(c_dir / "image_frontend.c"), f"-I{c_dir}", "-o", str(exe)],
                   check=True)
    for picture, code in ((pictures[1], 0), (pictures[0], 4)):
        (tmp_path / "f.bin").write_bytes(_frames([picture], 1))
        assert subprocess.run([str(exe), str(tmp_path / "f.bin"), str(tmp_path / "o.bin")]).returncode == code


@pytest.mark.parametrize("cpu, max_source, model", [("cortex-m4", (320, 240), 32), ("cortex-m0plus", (96, 96), 32),
                                                    ("cortex-m4", (160, 120), 13), ("cortex-m0plus", (96, 96), 20)])
def test_the_image_front_end_compiles_for_cortex_m_in_the_static_ram_it_says(cpu, max_source, model, tmp_path):
    pictures = _pictures(np.random.default_rng(2))[:2]
    raw = load_image_folder(_folder(tmp_path / "pics", pictures), image_size=32, color_mode="rgb")
    write_image_frontend(out_dir=tmp_path / "c", front_end=raw.image_front_end, scaling=raw.scaling,
                         input_scale=SCALE, input_zero_point=ZERO_POINT, input_shape=(1, model, model, 3),
                         model_id="m", max_source=max_source)
    flags = ["-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"] if cpu == "cortex-m4" else []
    done = subprocess.run([require_tool("arm-none-eabi-gcc"), "-std=c99", "-Os", "-Wall", "-Wextra", "-Werror",
                           f"-mcpu={cpu}", "-mthumb", *flags, "-c", str(tmp_path / "c" / "image_frontend.c"),
                           "-o", str(tmp_path / "fe.o")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    size = subprocess.run([require_tool("arm-none-eabi-size"), str(tmp_path / "fe.o")], capture_output=True,
                          text=True, check=True).stdout.splitlines()[1].split()
    ram = static_ram_bytes(height=32, width=32, channels=3, max_source=max_source, model_size=(model, model))
    assert int(size[1]) + int(size[2]) == ram  # .data + .bss
    assert f"Static RAM {ram} bytes for frames up to {max_source[0]}x{max_source[1]}." in (
        tmp_path / "c" / "image_frontend.h").read_text()


@pytest.mark.parametrize("cpu, fpu", [("cortex-m4", "fpv4-sp-d16"), ("cortex-m7", "fpv5-d16")])
def test_the_resize_to_the_models_resolution_rounds_every_product_where_the_fpu_could_fuse_it(cpu, fpu, tmp_path):
    """The host tests run this C on x86-64, which has no fused multiply-add without -mfma; GCC fused each lerp
    into one VFMA for these cores, one rounding where TensorFlow had two."""
    pictures = _pictures(np.random.default_rng(2))[:2]
    raw = load_image_folder(_folder(tmp_path / "pics", pictures), image_size=32, color_mode="rgb")
    write_image_frontend(out_dir=tmp_path / "c", front_end=raw.image_front_end, scaling=raw.scaling,
                         input_scale=SCALE, input_zero_point=ZERO_POINT, input_shape=(1, 13, 13, 3), model_id="m")
    obj = tmp_path / "fe.o"  # gnu99, as CMake's C_STANDARD 99 builds it: ISO -std=c99 would not fuse at all
    subprocess.run([require_tool("arm-none-eabi-gcc"), "-std=gnu99", "-O2", "-Wall", "-Wextra", "-Werror",
                    f"-mcpu={cpu}", "-mthumb", f"-mfpu={fpu}", "-mfloat-abi=hard", "-c",
                    str(tmp_path / "c" / "image_frontend.c"), "-o", str(obj)], check=True)
    assert fused_instructions(str(obj)) == []


def test_a_board_with_little_room_beside_the_arena_gets_the_largest_frame_size_that_fits():
    ram = {source: static_ram_bytes(height=28, width=28, channels=1, max_source=source)
           for source in ((320, 240), (160, 120), (96, 96), (28, 28))}
    assert list(ram.values()) == [6012, 3388, 2596, 1016]  # arm-none-eabi-size of each build
    assert fit_max_source(height=28, width=28, channels=1, room_bytes=None) == ((320, 240), 6012, True)
    assert fit_max_source(height=28, width=28, channels=1, room_bytes=6012) == ((320, 240), 6012, True)
    assert fit_max_source(height=28, width=28, channels=1, room_bytes=6011) == ((160, 120), 3388, True)
    assert fit_max_source(height=28, width=28, channels=1, room_bytes=3000) == ((96, 96), 2596, True)
    assert fit_max_source(height=28, width=28, channels=1, room_bytes=1016) == ((28, 28), 1016, True)
    assert fit_max_source(height=28, width=28, channels=1, room_bytes=0) == ((28, 28), 1016, False)


@pytest.mark.slow
def test_a_run_on_an_image_folder_ships_a_front_end_whose_input_tflite_micro_classifies_as_training_did(
        tmp_path, monkeypatch, capsys):
    """`tinynas run` on a folder of RGB pictures of several sizes, resized to 12x12 grey: deploy/ and the firmware
    project hold the front end and the summary names it; RGB888 frame -> C front end -> the run's int8 model in
    TFLite Micro gives what the loader's pictures give."""
    from tinynas.deploy.interpreter import MicroInterpreter

    rng = np.random.default_rng(3)
    pictures, root = [], tmp_path / "pics"
    for i in range(48):  # class 0 bright on the left, class 1 on the right, in noise
        width, height = int(rng.integers(12, 40)), int(rng.integers(12, 40))
        picture = rng.integers(0, 90, size=(height, width, 3))
        side = slice(0, width // 2) if i % 2 == 0 else slice(width // 2, width)
        picture[:, side] += 150
        pictures.append(picture.astype(np.uint8))
    _folder(root, pictures)
    out = tmp_path / "run"
    code, printed, err = run_cli_output(
        monkeypatch, capsys, "run", "--profile", "nano33ble", "--dataset", str(root), "-o", "image_size=12", "-o",
        "color_mode=grayscale", "--space", "dscnn", "--budget-candidates", "2", "--search-epochs", "2",
        "--final-epochs", "3", "--final-top-k", "1", "--no-progress", "--no-qat", "--out", str(out))
    assert code == 0, err[-3000:]
    front_end = out / "deploy" / "image_frontend.c"
    # nano33ble's budget leaves room for QVGA frames' buffers beside this small model's arena
    assert (f"front end  {front_end}   (the training preprocessing in C, from camera frames; 5,524 B static RAM "
            "for frames up to 320x240)") in printed, printed
    record = json.loads((out / "model" / "metrics.json").read_text())["front_end"]
    assert record["max_source"] == [320, 240] and record["fits"] is True and record["room_bytes"] > 100_000
    assert "| front end | image_frontend.c: 5,524 B static RAM for frames up to 320x240 |" in (
        out / "report.md").read_text()
    assert "image_frontend.c computes this input from camera frames" in (out / "deploy" / "model_data.h").read_text()
    sketch = out / "firmware" / "arduino" / "tinynas_bench"
    assert (sketch / "image_frontend.c").read_bytes() == front_end.read_bytes()
    assert "tinynas_img_frame(pixels, width, height, stride_bytes" in (out / "firmware" / "arduino" / "README.md"
                                                                       ).read_text()
    raw = load_image_folder(root, image_size=12, color_mode="grayscale")
    order = [i for c in (0, 1) for i in range(len(pictures)) if i % 2 == c]
    q = _run_c(out / "deploy", _frames([pictures[i] for i in order], 1), 12, 1, tmp_path)
    interp = MicroInterpreter((out / "model" / "model_int8.tflite").read_bytes())
    np.testing.assert_array_equal(q, interp.quantize_input(raw.x))
    from_c = np.stack([interp.invoke_int8(sample) for sample in q])
    np.testing.assert_array_equal(from_c, interp.predict_int8(raw.x))
    # a board whose SRAM budget leaves 2,500 B beside the arena: buffers for 96x96 frames; 300 B: even the model's
    # own 12x12 (440 B) comes out of the firmware's reserve, and the header and the log say so
    from tinynas.data import load_dataset
    from tinynas.deploy.deployer import _write_front_end

    model = (out / "model" / "model_int8.tflite").read_bytes()
    dataset = load_dataset(str(root), image_size=12, color_mode="grayscale")
    for room, source, fits in ((2500, [96, 96], True), (300, [12, 12], False)):
        files, record = _write_front_end(out_dir=tmp_path / f"fe{room}", model_bytes=model, dataset=dataset,
                                         model_id="m", room_bytes=room, board="tiny-board")
        assert record["max_source"] == source and record["fits"] is fits and record["room_bytes"] == room
        header = files[0].read_text()
        assert f"#define TINYNAS_IMG_MAX_SOURCE_WIDTH {source[0]}\n" in header
        assert "tiny-board's SRAM budget leaves" in " ".join(header.replace("//", "").split())
    assert "not even this fits" in " ".join(header.replace("//", "").split())


@pytest.mark.slow
def test_deploy_of_a_model_at_a_lower_resolution_than_the_pictures_ships_its_front_end(tmp_path):
    """A model taking 8x8 of the 12x12 pictures (as an mcunet winner whose resolution is below -o image_size):
    deploy wrote no front end ("the model's input is not the 12x12x1 pictures"); now frames go through both
    resizes, and TFLite Micro classifies what the C front end gives as it classifies the validated test inputs."""
    import keras
    from click.testing import CliRunner

    from tinynas.cli.main import cli
    from tinynas.deploy.interpreter import MicroInterpreter
    from tinynas.train.inputs import fit_inputs

    rng = np.random.default_rng(5)
    pictures = []
    for i in range(40):  # class 0 bright on the left, class 1 on the right
        picture = rng.integers(0, 90, size=(int(rng.integers(12, 30)), int(rng.integers(12, 30)), 3))
        picture[:, : picture.shape[1] // 2] += 150 if i % 2 == 0 else 0
        picture[:, picture.shape[1] // 2:] += 150 if i % 2 == 1 else 0
        pictures.append(picture.astype(np.uint8))
    root = _folder(tmp_path / "pics", pictures)
    raw = load_image_folder(root, image_size=12, color_mode="grayscale")
    x = fit_inputs(raw.x, (8, 8, 1), dataset="pics", fingerprint=str(root), split="train")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, raw.y, epochs=5, verbose=0)
    model.save(tmp_path / "m8.keras")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["deploy", str(tmp_path / "m8.keras"), "--profile", "nano33ble", "--dataset",
                                      str(root), "-o", "image_size=12", "-o", "color_mode=grayscale", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "image front end" in result.output and (out / "image_frontend.c").is_file()
    assert "resized (bilinear) as in training; the image front end does the same" in result.output
    assert "then resized to 8x8, the model's resolution" in " ".join(
        (out / "image_frontend.h").read_text().replace("//", "").split())
    order = [i for c in (0, 1) for i in range(len(pictures)) if i % 2 == c]
    q = _run_c(out, _frames([pictures[i] for i in order], 1), 8, 1, tmp_path)
    interp = MicroInterpreter((out / "model_int8.tflite").read_bytes())
    np.testing.assert_array_equal(q, interp.quantize_input(x))
    np.testing.assert_array_equal(np.stack([interp.invoke_int8(s) for s in q]), interp.predict_int8(x))
