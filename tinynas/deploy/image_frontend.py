"""The image preprocessing a model trained on an image folder saw, as C for the firmware.

The loader (``tinynas.data.images``) turned every picture into grey (Pillow's ``L``) or RGB and, with
``-o image_size=N``, resized it with Pillow's bilinear filter in one fixed pass order (``tinynas.data.resize``),
then divided by 255. A camera frame on the board must go through the same arithmetic, or the model sees inputs
it was never trained on: a plain 2x2 bilinear interpolation is not that filter when it shrinks (the triangle
widens to the scale factor, so every source pixel counts). ``write_image_frontend`` writes ``image_frontend.h``
/ ``image_frontend.c``: C99, no library, no heap, the same resize (coefficients in double, 22-bit fixed point,
the horizontal pass rounded to 8 bits before the vertical one), streaming over source rows so only a few rows
are held, and a 256-entry table from a pixel value to the model's int8 input (the dataset's scaling, then the
input quantization, computed here as deploy's check does it). A model that takes the pictures at another
resolution (mcunet's resolution choice) was trained on them resized again by ``fit_inputs`` (TensorFlow's
bilinear, half-pixel centres, on the scaled float picture): the C repeats that too, from two picture rows,
in float in TensorFlow's order of operations, then quantizes in double as the check does. Tests compare it
with the loader, ``fit_inputs`` and the interpreter's quantization on the host and compile it for Cortex-M.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from tinynas.deploy.codegen import _c_comment
from tinynas.errors import DeployError

HEADER = "image_frontend.h"
SOURCE = "image_frontend.c"
#: the largest camera frame the static buffers take unless the build defines otherwise (QVGA)
MAX_SOURCE = (320, 240)
#: the frame sizes tried, largest first, when the board's arena budget leaves less room beside the arena than
#: QVGA's buffers take: QQVGA, then 96x96 (the low-power person-detection sensors' window); the model's own
#: input size is the last resort
SMALLER_SOURCES = ((160, 120), (96, 96))


def _kernel_size(source: int, size: int) -> int:
    """Pillow's bilinear kernel length for ``source`` -> ``size`` pixels: 2 * ceil(max(scale, 1)) + 1 (KX, KY)."""
    return 2 * max(-(-int(source) // int(size)), 1) + 1


def static_ram_bytes(*, height: int, width: int, channels: int, max_source: tuple[int, int],
                     model_size: tuple[int, int] | None = None) -> int:
    """The C front end's static RAM for a maximum source of ``max_source`` (width, height): the coefficient
    tables, their bounds, one source row and the ring of resized rows (what the arrays in ``image_frontend.c``
    declare; the pixel table is ``const``, in flash); and, when the model takes the pictures at another
    ``model_size`` (height, width), the two picture rows its bilinear resize reads."""
    max_w, max_h = (int(v) for v in max_source)
    kx, ky = _kernel_size(max_w, width), _kernel_size(max_h, height)
    resize = model_size is not None and tuple(model_size) != (height, width)
    return (4 * (width * kx + height * ky) + 2 * 2 * (width + height) + 2 * 4 + max_w * channels
            + ky * width * channels + (model_resize_bytes(width=width, channels=channels) if resize else 0))


def model_resize_bytes(*, width: int, channels: int) -> int:
    """The static RAM of the second resize, to a model that takes the pictures at another size: the two
    picture rows its bilinear kernel reads."""
    return 2 * int(width) * int(channels)


def fit_max_source(*, height: int, width: int, channels: int, room_bytes: int | None,
                   model_size: tuple[int, int] | None = None) -> tuple[tuple[int, int], int, bool]:
    """The largest maximum source (width, height) whose static RAM fits ``room_bytes`` (None: no limit): QVGA,
    else the smaller sizes, else the pictures' own size. Returns it, its RAM, and whether it fits."""
    ladder = [MAX_SOURCE, *SMALLER_SOURCES, (width, height)]
    for source in ladder:
        ram = static_ram_bytes(height=height, width=width, channels=channels, max_source=source,
                               model_size=model_size)
        if room_bytes is None or ram <= room_bytes:
            return source, ram, True
    return ladder[-1], ram, False


def pixel_table(*, scaling: Any, input_scale: float, input_zero_point: int) -> np.ndarray:
    """int8 input of each pixel value 0..255: ``scaling`` in float32 as the loader applies it, then the
    interpreter's quantization (round half to even, clamp)."""
    x = scaling.apply(np.arange(256, dtype=np.float32))
    q = np.round(np.asarray(x, dtype=np.float64) / float(input_scale)) + int(input_zero_point)
    return np.clip(q, -128, 127).astype(np.int8)


def tf_bilinear_axis(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TensorFlow's bilinear resize along one axis (half-pixel centres, no antialiasing), in float32 as its
    kernel computes it: for each output index the lower and upper input index and the upper one's weight."""
    scale = np.float32(in_size) / np.float32(out_size)
    pos = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(pos)
    lo = np.maximum(floor, 0).astype(np.int64)
    hi = np.minimum(np.ceil(pos), in_size - 1).astype(np.int64)
    return lo, hi, (pos - floor).astype(np.float32)


def _ints(values: np.ndarray) -> str:
    return ", ".join(str(int(v)) for v in values)


def _floats(values: np.ndarray) -> str:
    return ", ".join(repr(float(v)) + "f" for v in np.asarray(values, dtype=np.float32))


def _model_resize(*, h: int, w: int, mh: int, mw: int, scaling: Any, input_scale: float,
                  input_zero_point: int) -> str:
    """The C of the second resize, from the H x W picture to the model's MH x MW input as ``fit_inputs`` does it
    in training: TensorFlow's bilinear on the scaled float picture, then the interpreter check's quantization
    (the division and the round half to even in double)."""
    row_lo, row_hi, row_lerp = tf_bilinear_axis(h, mh)
    col_lo, col_hi, col_lerp = tf_bilinear_axis(w, mw)
    pixels = scaling.apply(np.arange(256, dtype=np.float32))
    return f"""
// The model's resolution: TensorFlow's bilinear resize of the picture (half-pixel centres, float), as training
// resized it. Model row (column) i reads picture rows (columns) lo[i] and hi[i], hi weighted lerp[i].
#define MH TINYNAS_IMG_HEIGHT
#define MW TINYNAS_IMG_WIDTH
static const int16_t kRowLo[MH] = {{{_ints(row_lo)}}};
static const int16_t kRowHi[MH] = {{{_ints(row_hi)}}};
static const float kRowLerp[MH] = {{{_floats(row_lerp)}}};
static const int16_t kColLo[MW] = {{{_ints(col_lo)}}};
static const int16_t kColHi[MW] = {{{_ints(col_hi)}}};
static const float kColLerp[MW] = {{{_floats(col_lerp)}}};
// Pixel value 0..255 -> the float training fed (the dataset's scaling, in float32 as the loader applies it).
static const float kPixelToFloat[256] = {{{_floats(pixels)}}};
static const double kInputScale = {float(input_scale)!r};
static const int32_t kInputZeroPoint = {int(input_zero_point)};
static uint8_t g_picture[2][W * C];  // the picture's rows, by row % 2

// x / scale rounded half to even, plus the zero point, saturated: what the interpreter check does.
static int8_t quantize(float x) {{
  double v = (double)x / kInputScale;
  if (v > 1e6) v = 1e6;
  if (v < -1e6) v = -1e6;
  double f = (double)(int32_t)v;
  if (f > v) f -= 1.0;
  const double d = v - f;
  int32_t r = (int32_t)f;
  if (d > 0.5 || (d == 0.5 && (r & 1))) r += 1;
  r += kInputZeroPoint;
  return (int8_t)(r < -128 ? -128 : r > 127 ? 127 : r);
}}

// a * b rounded to float before any add (rounded_product's reason; TensorFlow rounded twice).
static float rounded_productf(float a, float b) {{
  volatile float product = a * b;
  return product;
}}

// One model row from the picture rows it reads (TensorFlow's compute_lerp, in its order of operations).
static void model_row(int my, int8_t* input) {{
  const uint8_t* top = g_picture[kRowLo[my] & 1];
  const uint8_t* bottom = g_picture[kRowHi[my] & 1];
  const float ly = kRowLerp[my];
  for (int mx = 0; mx < MW; ++mx) {{
    const int lo = kColLo[mx] * C, hi = kColHi[mx] * C;
    const float lx = kColLerp[mx];
    for (int c = 0; c < C; ++c) {{
      const float tl = kPixelToFloat[top[lo + c]], tr = kPixelToFloat[top[hi + c]];
      const float bl = kPixelToFloat[bottom[lo + c]], br = kPixelToFloat[bottom[hi + c]];
      const float t = tl + rounded_productf(tr - tl, lx);
      const float b = bl + rounded_productf(br - bl, lx);
      input[(my * MW + mx) * C + c] = quantize(t + rounded_productf(b - t, ly));
    }}
  }}
}}
"""


def write_image_frontend(*, out_dir: Path, front_end: Any, scaling: Any, input_scale: float,
                         input_zero_point: int, input_shape: tuple[int, ...], model_id: str,
                         max_source: tuple[int, int] = MAX_SOURCE, sizing: str = "") -> list[Path]:
    """Write the front end of ``front_end`` (``tinynas.data.features.ImageFrontEnd``) feeding an int8 input of
    ``input_shape`` (1, H, W, C) quantized with ``input_scale``/``input_zero_point`` after ``scaling``, its
    buffers sized for frames up to ``max_source`` (width, height) by default; ``sizing`` says why that size.

    Raises DeployError when the model's input is not an image of the front end's channels (its height and
    width may differ from the pictures': the front end then resizes again, as training did)."""
    h, w, c = front_end.height, front_end.width, front_end.channels
    shape = tuple(int(v) for v in input_shape[1:])
    shape = (*shape, 1) if len(shape) == 2 and c == 1 else shape  # grey pictures without the channel axis
    mh, mw, mc = shape if len(shape) == 3 else (0, 0, 0)
    if mc != c or mh < 1 or mw < 1:
        raise DeployError(f"the model's input {list(input_shape)} is not the {h}x{w}x{c} pictures of the image "
                          f"front end (or those at another height and width); deploy with the dataset the model "
                          f"was trained on, with the same -o options")
    resize = (mh, mw) != (h, w)
    table = pixel_table(scaling=scaling, input_scale=input_scale, input_zero_point=input_zero_point)
    mode = "grey (Pillow's L: (19595 R + 38470 G + 7471 B + 32768) >> 16)" if c == 1 else "RGB"
    trained = (f"resized to {h}x{w} with Pillow's bilinear filter, horizontal pass first" if front_end.resized
               else f"{h}x{w} as they were (not resized; a frame of another size is resized as -o image_size "
                    f"would have)")
    model = (f", then resized to {mh}x{mw}, the model's resolution, as training fed it (TensorFlow's bilinear "
             f"resize: half-pixel centres, no antialiasing, in float)" if resize else "")
    what = (f"The image preprocessing the model was trained on, for camera frames: pixels turned {mode}, "
            f"{trained}{model}, then the dataset's input scaling ({scaling.description}) and the model's int8 "
            f"input quantization{'' if resize else ', as one table'}.")
    guard = "TINYNAS_IMAGE_FRONTEND_H_"
    stamp = _c_comment(f"Generated by tinynas for model {model_id}: do not edit, re-run `tinynas deploy`.")
    max_w, max_h = (int(v) for v in max_source)
    ram = static_ram_bytes(height=h, width=w, channels=c, max_source=(max_w, max_h), model_size=(mh, mw))
    size_note = (f"Static RAM {ram} bytes for frames up to {max_w}x{max_h}. {sizing}").strip()
    rows = f" + 2 * {w * c}" if resize else ""
    header = f"""{stamp}
{_c_comment(textwrap.fill(what, 110))}
{_c_comment(textwrap.fill(size_note, 110))}
// C99, no heap; static RAM
// TINYNAS_IMG_MAX_SOURCE_WIDTH * {c} + 4 * ({w} * KX + {h} * KY) + KY * {w * c}{rows} + {4 * (w + h) + 8} bytes,
// where KX, KY are 2 * ceil(max source / picture size {w}x{h}) + 1 (define the maximum source size to fit your
// camera).
#ifndef {guard}
#define {guard}

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define TINYNAS_IMG_HEIGHT {mh}
#define TINYNAS_IMG_WIDTH {mw}
#define TINYNAS_IMG_CHANNELS {c}
#ifndef TINYNAS_IMG_MAX_SOURCE_WIDTH
#define TINYNAS_IMG_MAX_SOURCE_WIDTH {max_w}
#endif
#ifndef TINYNAS_IMG_MAX_SOURCE_HEIGHT
#define TINYNAS_IMG_MAX_SOURCE_HEIGHT {max_h}
#endif

typedef enum {{
  TINYNAS_IMG_GRAY8 = 0,   // one byte per pixel
  TINYNAS_IMG_RGB888 = 1,  // three bytes per pixel, R G B
  TINYNAS_IMG_RGB565 = 2,  // one uint16_t per pixel in the CPU's byte order (swap a big-endian camera's bytes)
}} tinynas_img_format;

// One frame of width x height pixels (rows stride_bytes apart) into the model's input tensor
// (TINYNAS_IMG_HEIGHT x TINYNAS_IMG_WIDTH x TINYNAS_IMG_CHANNELS int8, row after row).
// Returns 0, or -1 for a frame larger than TINYNAS_IMG_MAX_SOURCE_* (or empty, or a stride too short).
int tinynas_img_frame(const void* pixels, int width, int height, int stride_bytes, tinynas_img_format format,
                      int8_t* input);

#ifdef __cplusplus
}}
#endif

#endif  // {guard}
"""
    items = [str(int(v)) for v in table]
    rows = "\n".join(f"    {', '.join(items[i:i + 16])}," for i in range(0, 256, 16))
    pixel_to_input = f"""// Pixel value 0..255 -> the model's int8 input (the dataset's scaling, then the input quantization).
static const int8_t kPixelToInput[256] = {{
{rows}
}};
"""
    source = f"""{stamp} See {HEADER}.
#include "{HEADER}"

#define W {w}  // the picture size training resized every image to (Pillow's filter)
#define H {h}
#define C TINYNAS_IMG_CHANNELS
#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))
// Pillow's kernel size for the largest source: ceil(support) * 2 + 1, support = max(source / model, 1)
#define KX (2 * (CEIL_DIV(TINYNAS_IMG_MAX_SOURCE_WIDTH, W) > 1 ? CEIL_DIV(TINYNAS_IMG_MAX_SOURCE_WIDTH, W) : 1) + 1)
#define KY (2 * (CEIL_DIV(TINYNAS_IMG_MAX_SOURCE_HEIGHT, H) > 1 ? CEIL_DIV(TINYNAS_IMG_MAX_SOURCE_HEIGHT, H) : 1) + 1)
#define PRECISION_BITS 22  // Pillow's 8-bit resampling: 32 - 8 - 2

{"" if resize else pixel_to_input}
static int32_t g_kx[W * KX], g_ky[H * KY];
static int16_t g_x_first[W], g_x_count[W], g_y_first[H], g_y_count[H];
static int g_coeffs_for_width = 0, g_coeffs_for_height = 0;
static uint8_t g_row[TINYNAS_IMG_MAX_SOURCE_WIDTH * C];  // one source row in the model's channels
static uint8_t g_ring[KY][W * C];                        // source rows resized horizontally, by row % KY
{_model_resize(h=h, w=w, mh=mh, mw=mw, scaling=scaling, input_scale=input_scale,
               input_zero_point=input_zero_point) if resize else ""}
// a * b rounded before any add: GCC fuses a product and a following add or subtract into one VFMA on FPUs
// that have it (Cortex-M4F/M7/M33 in float, M7 in double too, ESP32-S3), which rounds once where Pillow and
// TensorFlow, built without fused instructions, round twice.
static double rounded_product(double a, double b) {{
  volatile double product = a * b;
  return product;
}}

// Pillow's bilinear_filter: the triangle 1 - |t|.
static double triangle(double t) {{
  if (t < 0.0) t = -t;
  return t < 1.0 ? 1.0 - t : 0.0;
}}

// Pillow's precompute_coeffs for the bilinear filter, then normalize_coeffs_8bpc, in its order of operations
// and in double as Pillow computes them (a software double on most Cortex-M, but only once per source size).
static void precompute(int in_size, int out_size, int ksize, int32_t* k, int16_t* first, int16_t* count) {{
  const double scale = (double)in_size / (double)out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = filterscale;  // the triangle's support is 1
  const double ss = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; ++xx) {{
    const double center = rounded_product((double)xx + 0.5, scale);
    int xmin = (int)(center - support + 0.5);
    int xmax = (int)(center + support + 0.5);
    if (xmin < 0) xmin = 0;
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double total = 0.0;
    for (int x = 0; x < xmax; ++x) total += triangle(rounded_product((double)(x + xmin) - center + 0.5, ss));
    for (int x = 0; x < ksize; ++x) {{
      double weight = 0.0;
      if (x < xmax) {{
        weight = triangle(rounded_product((double)(x + xmin) - center + 0.5, ss));
        if (total != 0.0) weight /= total;
      }}
      k[xx * ksize + x] = (int32_t)(0.5 + rounded_product(weight, (double)(1 << PRECISION_BITS)));
    }}
    first[xx] = (int16_t)xmin;
    count[xx] = (int16_t)xmax;
  }}
}}
"""
    source += """
static uint8_t clip8(int32_t v) {
  v >>= PRECISION_BITS;
  return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

#if C == 1
// Pillow's "L" from RGB: (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
static uint8_t grey(uint32_t r, uint32_t g, uint32_t b) {
  return (uint8_t)((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}
#endif

// Source row y in the model's channels, into g_row.
static void read_row(const uint8_t* pixels, int width, int stride, tinynas_img_format format, int y) {
  const uint8_t* src = pixels + (long)y * stride;
  for (int x = 0; x < width; ++x) {
    uint32_t r, g, b;
    if (format == TINYNAS_IMG_GRAY8) {
      r = g = b = src[x];
    } else if (format == TINYNAS_IMG_RGB888) {
      r = src[3 * x];
      g = src[3 * x + 1];
      b = src[3 * x + 2];
    } else {
      const uint32_t p = ((const uint16_t*)(const void*)src)[x];
      r = (p >> 11) & 0x1Fu;
      g = (p >> 5) & 0x3Fu;
      b = p & 0x1Fu;
      r = (r << 3) | (r >> 2);  // 5 and 6 bits to 8, the top bits repeated
      g = (g << 2) | (g >> 4);
      b = (b << 3) | (b >> 2);
    }
#if C == 1
    g_row[x] = format == TINYNAS_IMG_GRAY8 ? (uint8_t)r : grey(r, g, b);
#else
    g_row[3 * x] = (uint8_t)r;
    g_row[3 * x + 1] = (uint8_t)g;
    g_row[3 * x + 2] = (uint8_t)b;
#endif
  }
}

// Pillow's horizontal pass of g_row into one ring row (rounded to 8 bits, as Pillow's temporary image is).
static void horizontal(uint8_t* out) {
  for (int xx = 0; xx < W; ++xx) {
    const int32_t* k = &g_kx[xx * KX];
    const uint8_t* in = &g_row[g_x_first[xx] * C];
    for (int c = 0; c < C; ++c) {
      int32_t sum = 1 << (PRECISION_BITS - 1);
      for (int x = 0; x < g_x_count[xx]; ++x) sum += (int32_t)in[x * C + c] * k[x];
      out[xx * C + c] = clip8(sum);
    }
  }
}

int tinynas_img_frame(const void* pixels, int width, int height, int stride_bytes, tinynas_img_format format,
                      int8_t* input) {
  const int kind = (int)format;  // an int: some ABIs make the enum unsigned
  const int bytes = kind == TINYNAS_IMG_GRAY8 ? 1 : kind == TINYNAS_IMG_RGB888 ? 3 : 2;
  if (pixels == 0 || input == 0 || width < 1 || height < 1 || width > TINYNAS_IMG_MAX_SOURCE_WIDTH ||
      height > TINYNAS_IMG_MAX_SOURCE_HEIGHT || stride_bytes < width * bytes || kind < 0 ||
      kind > TINYNAS_IMG_RGB565) {
    return -1;
  }
  if (width != g_coeffs_for_width) {
    precompute(width, W, KX, g_kx, g_x_first, g_x_count);
    g_coeffs_for_width = width;
  }
  if (height != g_coeffs_for_height) {
    precompute(height, H, KY, g_ky, g_y_first, g_y_count);
    g_coeffs_for_height = height;
  }
  int next = 0;  // the next source row to resize horizontally
#ifdef MH
  int my = 0;  // the next model row
#endif
  for (int yy = 0; yy < H; ++yy) {
    const int first = g_y_first[yy], count = g_y_count[yy];
    if (next < first) next = first;
    for (; next < first + count; ++next) {
      read_row((const uint8_t*)pixels, width, stride_bytes, format, next);
      horizontal(g_ring[next % KY]);
    }
    const int32_t* k = &g_ky[yy * KY];
    for (int i = 0; i < W * C; ++i) {
      int32_t sum = 1 << (PRECISION_BITS - 1);
      for (int y = 0; y < count; ++y) sum += (int32_t)g_ring[(first + y) % KY][i] * k[y];
#ifdef MH
      g_picture[yy & 1][i] = clip8(sum);
#else
      input[yy * W * C + i] = kPixelToInput[clip8(sum)];
#endif
    }
#ifdef MH
    while (my < MH && kRowHi[my] == yy) model_row(my++, input);  // its rows lo, hi are yy - 1 or yy
#endif
  }
  return 0;
}
"""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / HEADER).write_text(header, encoding="utf-8")
    (out_dir / SOURCE).write_text(source, encoding="utf-8")
    return [out_dir / HEADER, out_dir / SOURCE]

