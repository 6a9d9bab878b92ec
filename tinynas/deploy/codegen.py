"""The int8 model as C++ sources for TFLite Micro: model_data.h/.cc and op_resolver.h.

Deploy's step after validation in the TFLM interpreter and before firmware rendering (``firmware``).
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tinynas.errors import DeployError

#: the C front ends a deploy may write beside the model (tinynas.deploy.audio_frontend / image_frontend): what
#: each is and what it computes the model's input from, for model_data.h and the commands' summaries
FRONT_ENDS = {"audio_frontend.c": ("the training features in C", "16-bit samples"),
              "image_frontend.c": ("the training preprocessing in C", "camera frames")}


def front_end_ram_text(record: dict | None) -> str:
    """What a deployed front end's record (deploy's metrics ``front_end``) says of its static RAM, for summaries."""
    if not record:
        return ""
    source = record.get("max_source")
    text = f"{record['static_ram_bytes']:,} B static RAM" + (f" for frames up to {source[0]}x{source[1]}"
                                                              if source else "")
    return text + ("" if record.get("fits", True) else
                   f", more than the {record['room_bytes']:,} B the SRAM budget leaves beside the arena")

log = logging.getLogger(__name__)

# Arena margin over the measured (x86-64 host) figure. REFERENCE.md section 1: a
# 32-bit Cortex-M needs a few percent less than the host (4-byte pointers in the
# per-tensor and per-node records), but CMSIS-NN / ESP-NN kernels ask for im2col
# scratch buffers the reference kernels do not: KWS DS-CNN measured 24,272 B on the
# host, 22,772 B (reference) and 23,940 B (CMSIS-NN) on a Cortex-M4. The two effects
# roughly cancel; 5 % (at least 1 KiB, for tiny models whose scratch is a larger share)
# covers the kernel libraries' differences. The firmware prints arena_used_bytes() at
# boot, so the host learns the true figure and can shrink the margin later.
DEFAULT_ARENA_MARGIN = 0.05
MIN_ARENA_MARGIN_BYTES = 1024
BYTES_PER_LINE = 12

# Builtin ops TFLite Micro has kernels for, and the MicroMutableOpResolver method of each
# (tensorflow/lite/micro/micro_mutable_op_resolver.h). Most names follow TFLM's generator
# rule (tools/gen_micro_mutable_op_resolver: split at '_', capitalize each part, keep parts
# that start with a digit upper case); the ones that do not are listed explicitly here.
_IRREGULAR_METHODS: dict[str, str] = {
    "BATCH_MATMUL": "AddBatchMatMul",
    "CUMSUM": "AddCumSum",
    "PADV2": "AddPadV2",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "CUSTOM:TFLite_Detection_PostProcess": "AddDetectionPostprocess",
}
TFLM_BUILTIN_OPS: frozenset[str] = frozenset({
    "ABS", "ADD", "ADD_N", "ARG_MAX", "ARG_MIN", "ASSIGN_VARIABLE", "AVERAGE_POOL_2D", "BATCH_MATMUL",
    "BATCH_TO_SPACE_ND", "BROADCAST_ARGS", "BROADCAST_TO", "CALL_ONCE", "CAST", "CEIL", "CONCATENATION",
    "CONV_2D", "COS", "CUMSUM", "DEPTH_TO_SPACE", "DEPTHWISE_CONV_2D", "DEQUANTIZE", "DIV", "ELU",
    "EMBEDDING_LOOKUP", "EQUAL", "EXP", "EXPAND_DIMS", "FILL", "FLOOR", "FLOOR_DIV", "FLOOR_MOD",
    "FULLY_CONNECTED", "GATHER", "GATHER_ND", "GREATER", "GREATER_EQUAL", "HARD_SWISH", "IF",
    "L2_NORMALIZATION", "L2_POOL_2D", "LEAKY_RELU", "LESS", "LESS_EQUAL", "LOG", "LOG_SOFTMAX",
    "LOGICAL_AND", "LOGICAL_NOT", "LOGICAL_OR", "LOGISTIC", "MAX_POOL_2D", "MAXIMUM", "MEAN", "MINIMUM",
    "MIRROR_PAD", "MUL", "NEG", "NOT_EQUAL", "PACK", "PAD", "PADV2", "PRELU", "QUANTIZE", "READ_VARIABLE",
    "REDUCE_MAX", "RELU", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "ROUND",
    "RSQRT", "SELECT_V2", "SHAPE", "SIN", "SLICE", "SOFTMAX", "SPACE_TO_BATCH_ND", "SPACE_TO_DEPTH",
    "SPLIT", "SPLIT_V", "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM",
    "SVDF", "TANH", "TRANSPOSE", "TRANSPOSE_CONV", "UNIDIRECTIONAL_SEQUENCE_LSTM", "UNPACK", "VAR_HANDLE",
    "WHILE", "ZEROS_LIKE", "CUSTOM:TFLite_Detection_PostProcess",
})


def resolver_method(op_kind: str) -> str:
    """The ``MicroMutableOpResolver`` method that registers builtin ``op_kind`` (``CONV_2D`` -> ``AddConv2D``).

    Raises DeployError for an op TFLite Micro has no kernel for.
    """
    if op_kind not in TFLM_BUILTIN_OPS:
        raise DeployError(
            f"the model uses op {op_kind}, which TFLite Micro has no kernel for (or tinynas does not know it); "
            "remove that layer from the model, or register the op by hand in op_resolver.h"
        )
    if op_kind in _IRREGULAR_METHODS:
        return _IRREGULAR_METHODS[op_kind]
    parts = []
    for part in op_kind.split("_"):
        parts.append(part[0].upper() + part[1:].lower() if part[:1].isalpha() and len(part) > 1 else part.upper())
    return "Add" + "".join(parts)


def arena_size_with_margin(arena_bytes: int, *, arena_margin: float = DEFAULT_ARENA_MARGIN) -> int:
    """``arena_bytes`` plus max(1 KiB, ``arena_margin`` of it), rounded up to 16 bytes (the arena's alignment)."""
    if arena_bytes < 1:
        raise DeployError(f"arena_bytes must be a positive measured arena size, got {arena_bytes}")
    if not 0.0 <= arena_margin <= 1.0:
        raise DeployError(f"arena_margin must be a fraction between 0 and 1, got {arena_margin}")
    total = arena_bytes + max(MIN_ARENA_MARGIN_BYTES, math.ceil(arena_bytes * arena_margin))
    return (total + 15) // 16 * 16


def _c_string(text: str) -> str:
    """A C string literal for ``text`` (UTF-8 bytes, escaped, so any label compiles)."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif 32 <= byte < 127 and ch != "?":  # '?' escaped to avoid trigraphs
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _c_comment(text: str) -> str:
    """``text`` (dataset text: a CSV's column names, a folder's options) as lines of a // comment.

    Nothing in it may end the comment early (``*/``) or extend it: a line ending in a backslash
    splices the next source line into the comment, and so does ``??/``, the backslash trigraph
    that C11 and C++11 compilers still read."""
    def line_of(text: str) -> str:
        line = re.sub(r"\?(?=\?)", "? ", text.replace("*/", "* /")).rstrip()
        return "// " + (line + "." if line.endswith("\\") else line)

    return "\n".join(line_of(line) for line in text.splitlines() or [""])


def _c_float(value: float) -> str:
    if not math.isfinite(value):
        raise DeployError(f"the model has a non-finite quantization scale ({value}); re-quantize it")
    text = repr(float(value))
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"


def _identifier(name: str, what: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise DeployError(f"{what} must be a C identifier (letters, digits, '_'), got {name!r}")
    return name


def _shape_array(shape: Sequence[int]) -> str:
    return "{" + ", ".join(str(int(d)) for d in shape) + "}" if shape else "{1}"


def _raw_input(raw_scaling: tuple[float, float]) -> str:
    """kRawScale, kRawOffset and QuantizeRawInput: a raw value as the int8 the model takes, as training scaled it
    and as deploy's check quantized it (x / scale in double, rounded half to even: no libm needed)."""
    scale, offset = raw_scaling
    return f"""
// A raw value (a sensor reading, a pixel) as the model's int8 input: the float training fed,
// x = raw * kRawScale + kRawOffset, then quantized as above (x / kInputScale in double, rounded half to
// even as deploy's check in the interpreter did, plus the zero point, saturated to int8). Double is software
// floating point on a single-precision FPU: exact to the check, at some hundred cycles a value.
constexpr float kRawScale = {_c_float(scale)};
constexpr float kRawOffset = {_c_float(offset)};
inline int8_t QuantizeInputValue(float x) {{
  double v = static_cast<double>(x) / static_cast<double>(kInputScale);
  if (!(v > -1e6)) v = -1e6;  // NaN too
  if (v > 1e6) v = 1e6;
  int32_t r = static_cast<int32_t>(v);  // toward zero
  if (static_cast<double>(r) > v) r -= 1;  // floor
  const double d = v - static_cast<double>(r);
  if (d > 0.5 || (d == 0.5 && (r & 1))) r += 1;
  r += kInputZeroPoint;
  return static_cast<int8_t>(r < -128 ? -128 : (r > 127 ? 127 : r));
}}
// a * b rounded to float before any add: GCC fuses a product and a following add into one VFMA on FPUs that
// have it (Cortex-M4F/M7/M33, ESP32-S3), which rounds once where training rounded twice.
inline float RoundedProduct(float a, float b) {{
  volatile float product = a * b;
  return product;
}}
inline float ScaleRawInput(float raw) {{ return RoundedProduct(raw, kRawScale) + kRawOffset; }}
inline int8_t QuantizeRawInput(float raw) {{ return QuantizeInputValue(ScaleRawInput(raw)); }}
"""


def resizes(raw_shape: Sequence[int] | None, model_image: Sequence[int]) -> bool:
    """Whether samples of ``raw_shape`` (H, W, C) reach a model taking ``model_image`` (its input without the batch
    axis) through a resize: both images, of another height or width. Then model_data.h gets ResizeRawInput."""
    return (raw_shape is not None and len(raw_shape) == 3 and len(model_image) == 3
            and tuple(int(d) for d in raw_shape) != tuple(int(d) for d in model_image))


def _raw_resize(raw_shape: Sequence[int], model_shape: Sequence[int]) -> str:
    """ResizeRawInput: one sample of raw values at the data's height and width as the model's int8 input at its
    own (mcunet's resolution): scaled, then TensorFlow's bilinear resize as ``fit_inputs`` did in training
    (half-pixel centres, no antialiasing, float32 in TensorFlow's order of operations), then quantized."""
    from tinynas.deploy.image_frontend import tf_bilinear_axis

    h, w, c = (int(v) for v in raw_shape)
    mh, mw = (int(v) for v in model_shape[:2])
    row_lo, row_hi, row_lerp = tf_bilinear_axis(h, mh)
    col_lo, col_hi, col_lerp = tf_bilinear_axis(w, mw)

    def ints(values: Any) -> str:
        return "{" + ", ".join(str(int(v)) for v in values) + "}"

    def floats(values: Any) -> str:
        return "{" + ", ".join(_c_float(float(v)) for v in np.asarray(values, dtype=np.float32)) + "}"

    return f"""
// The data gives {h}x{w}x{c} samples; this model takes {mh}x{mw}x{c} (its architecture's input resolution).
// Training resized every sample after the input scaling with TensorFlow's bilinear resize (half-pixel
// centres, no antialiasing). ResizeRawInput does the same to one sample of raw values, row-major
// kRawHeight x kRawWidth x kRawChannels, and writes the kInputCount int8 values the model takes.
constexpr int kRawHeight = {h};
constexpr int kRawWidth = {w};
constexpr int kRawChannels = {c};
inline void ResizeRawInput(const float* raw, int8_t* input) {{
  // Model row (column) i reads sample rows (columns) Lo[i] and Hi[i], Hi weighted Lerp[i]. Tables local to
  // this inline function: one copy in the program, however many files include the header.
  static const int16_t kResizeRowLo[{mh}] = {ints(row_lo)};
  static const int16_t kResizeRowHi[{mh}] = {ints(row_hi)};
  static const float kResizeRowLerp[{mh}] = {floats(row_lerp)};
  static const int16_t kResizeColLo[{mw}] = {ints(col_lo)};
  static const int16_t kResizeColHi[{mw}] = {ints(col_hi)};
  static const float kResizeColLerp[{mw}] = {floats(col_lerp)};
  for (int my = 0; my < {mh}; ++my) {{
    const float* top = raw + kResizeRowLo[my] * kRawWidth * kRawChannels;
    const float* bottom = raw + kResizeRowHi[my] * kRawWidth * kRawChannels;
    for (int mx = 0; mx < {mw}; ++mx) {{
      const int lo = kResizeColLo[mx] * kRawChannels, hi = kResizeColHi[mx] * kRawChannels;
      for (int ch = 0; ch < kRawChannels; ++ch) {{
        const float tl = ScaleRawInput(top[lo + ch]), tr = ScaleRawInput(top[hi + ch]);
        const float bl = ScaleRawInput(bottom[lo + ch]), br = ScaleRawInput(bottom[hi + ch]);
        const float t = tl + RoundedProduct(tr - tl, kResizeColLerp[mx]);
        const float b = bl + RoundedProduct(br - bl, kResizeColLerp[mx]);
        input[(my * {mw} + mx) * kRawChannels + ch] = QuantizeInputValue(t + RoundedProduct(b - t, kResizeRowLerp[my]));
      }}
    }}
  }}
}}
"""


def write_model_sources(
    *,
    model_bytes: bytes,
    out_dir: Path,
    class_names: Sequence[str],
    arena_bytes: int,
    model_id: str,
    input_scaling: str | None = None,
    raw_scaling: tuple[float, float] | None = None,
    raw_shape: Sequence[int] | None = None,
    model_name: str = "model",
    arena_margin: float = DEFAULT_ARENA_MARGIN,
) -> list[Path]:
    """Write ``model_data.h``, ``model_data.cc`` and ``op_resolver.h`` into ``out_dir``; return their paths.

    ``arena_bytes`` is the measured arena (``measure_arena_bytes``); the header's
    ``kTensorArenaSize`` adds the margin above. ``class_names`` may be empty (a model that
    does not classify, e.g. an autoencoder), else it must match the output size.
    ``input_scaling`` says how raw input becomes the float the model was trained on (a
    comment for the firmware author); ``raw_scaling`` (scale, offset) is that map in numbers, written as
    ``kRawScale``, ``kRawOffset`` and ``QuantizeRawInput(raw)``, which a sketch reading its own sensor
    calls for each value it puts in the int8 input tensor. ``raw_shape`` (H, W, C), with ``raw_scaling``, is the
    data's sample shape where the model takes another height and width: ``ResizeRawInput`` then resizes a raw
    sample as training did. Raises ModelFileError for bytes that are not a
    ``.tflite`` model and DeployError for an op TFLite Micro lacks or bad arguments.
    """
    from tinynas.space.tflite_reader import tflite_info

    model_bytes = bytes(model_bytes)
    info = tflite_info(model_bytes)  # checks TFL3 at bytes 4..7 and parses the flatbuffer
    if len(info.inputs) != 1 or len(info.outputs) != 1:
        raise DeployError(
            f"the model has {len(info.inputs)} inputs and {len(info.outputs)} outputs; the firmware "
            "templates serve one input and one output tensor: export a single-input, single-output model"
        )
    name = _identifier(model_name, "model_name")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", model_id):
        raise DeployError(f"model_id must be 1-64 letters, digits, '_', '.', '-' (it goes over serial), got {model_id!r}")
    methods = [resolver_method(kind) for kind in info.op_kinds]
    if not methods:
        raise DeployError("the model has no operators; export the trained model again")

    inp, outp = info.inputs[0], info.outputs[0]
    dtype_bytes = {"int8": 1, "uint8": 1, "int16": 2, "float32": 4}
    # The serial protocol uploads raw input bytes (any of these types) and prints outputs
    # dequantized from int8, or float32 as they are.
    if inp.dtype not in dtype_bytes:
        raise DeployError(f"the model's input tensor is {inp.dtype}; quantize it with int8 input and output")
    if outp.dtype not in ("int8", "float32"):
        raise DeployError(f"the model's output tensor is {outp.dtype}; quantize it with int8 input and output")
    input_count = math.prod(inp.shape) if inp.shape else 1
    output_count = math.prod(outp.shape) if outp.shape else 1
    if class_names and len(class_names) != output_count:
        raise DeployError(
            f"{len(class_names)} class names for a model with {output_count} outputs; "
            "give one name per output (or none for a model that does not classify)"
        )
    raw_helpers = ""
    if raw_scaling is not None and inp.dtype == "int8":
        raw_helpers = _raw_input(raw_scaling)
        model_image = tuple(int(d) for d in inp.shape[1:])
        if resizes(raw_shape, model_image):
            if int(raw_shape[2]) != model_image[2]:
                raise DeployError(f"raw_shape {list(raw_shape)} has other channels than the model's input "
                                  f"{list(inp.shape)}; give the data's sample shape")
            raw_helpers += _raw_resize(raw_shape, model_image)
    arena_total = arena_size_with_margin(arena_bytes, arena_margin=arena_margin)
    margin_bytes = arena_total - arena_bytes

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    guard = f"TINYNAS_{name.upper()}_DATA_H_"
    symbol = f"g_{name}_data"
    scaling = _c_comment(f"Input scaling: {input_scaling}") if input_scaling else (
        "// Input scaling: not recorded; feed what the model was trained on, quantized with kInputScale/kInputZeroPoint.")
    labels = ", ".join(_c_string(c) for c in class_names) if class_names else '""'
    header = f"""// Generated by tinynas for model {model_id}: do not edit, re-run `tinynas deploy`.
// The model's .tflite bytes ({len(model_bytes)} bytes) and what the firmware needs to feed it.
#ifndef {guard}
#define {guard}

#include <stdint.h>

// In flash (.rodata), aligned to 16 bytes as TFLite Micro requires.
extern const unsigned char {symbol}[];
extern const unsigned int {symbol}_len;

constexpr const char kModelId[] = {_c_string(model_id)};

// Tensor arena: {arena_bytes} bytes measured in the TFLite Micro interpreter on the host,
// plus a margin of {margin_bytes} bytes (max(1 KiB, {arena_margin:.0%}), rounded up to 16 bytes). A 32-bit
// Cortex-M needs a few percent less than the 64-bit host (smaller pointers), but CMSIS-NN and
// ESP-NN kernels request scratch buffers the reference kernels do not. The firmware prints
// arena_used_bytes() at boot (m-tinynas-[...] line) so the true figure can replace this one.
constexpr unsigned int kTensorArenaSize = {arena_total};
constexpr unsigned int kMeasuredArenaBytes = {arena_bytes};

// Input: {inp.dtype} {list(inp.shape)}; real = kInputScale * (q - kInputZeroPoint).
{scaling}
constexpr float kInputScale = {_c_float(inp.scale)};
constexpr int32_t kInputZeroPoint = {int(inp.zero_point)};
constexpr int kInputDims = {len(inp.shape)};
constexpr int kInputShape[] = {_shape_array(inp.shape)};
constexpr unsigned int kInputCount = {input_count};
constexpr unsigned int kInputBytes = {input_count * dtype_bytes[inp.dtype]};
{raw_helpers}
// Output: {outp.dtype} {list(outp.shape)}; dequantize as kOutputScale * (q - kOutputZeroPoint).
constexpr float kOutputScale = {_c_float(outp.scale)};
constexpr int32_t kOutputZeroPoint = {int(outp.zero_point)};
constexpr bool kOutputIsFloat = {"true" if outp.dtype == "float32" else "false"};
constexpr int kOutputDims = {len(outp.shape)};
constexpr int kOutputShape[] = {_shape_array(outp.shape)};
constexpr unsigned int kOutputCount = {output_count};
constexpr unsigned int kOutputBytes = {output_count * dtype_bytes[outp.dtype]};

// One label per output ({len(class_names)}; 0 for a model that does not classify).
constexpr int kNumClasses = {len(class_names)};
constexpr const char* kClassLabels[] = {{{labels}}};

#endif  // {guard}
"""
    lines = []
    for start in range(0, len(model_bytes), BYTES_PER_LINE):
        chunk = model_bytes[start:start + BYTES_PER_LINE]
        lines.append("    " + ", ".join(f"0x{b:02x}" for b in chunk) + ",")
    source = f"""// Generated by tinynas for model {model_id}: the int8 .tflite model the board runs, byte for byte.
#include "{name}_data.h"

alignas(16) const unsigned char {symbol}[] = {{
{chr(10).join(lines)}
}};
const unsigned int {symbol}_len = {len(model_bytes)};
"""
    op_lines = "\n".join(f"  if (resolver.{m}() != kTfLiteOk) return kTfLiteError;  // {k}"
                         for m, k in zip(methods, info.op_kinds))
    resolver = f"""// Generated by tinynas for model {model_id}: exactly the {len(methods)} builtin ops the model uses.
#ifndef TINYNAS_OP_RESOLVER_H_
#define TINYNAS_OP_RESOLVER_H_

#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

constexpr unsigned int kNumModelOps = {len(methods)};
using TinyNasOpResolver = tflite::MicroMutableOpResolver<kNumModelOps>;

// Registers every op of the model; kTfLiteError if one cannot be added.
inline TfLiteStatus RegisterModelOps(TinyNasOpResolver& resolver) {{
{op_lines}
  return kTfLiteOk;
}}

#endif  // TINYNAS_OP_RESOLVER_H_
"""
    files = {f"{name}_data.h": header, f"{name}_data.cc": source, "op_resolver.h": resolver}
    paths = []
    for filename, text in files.items():
        path = out_dir / filename
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    log.info("wrote %s (%d model bytes, %d ops, arena %d B)", ", ".join(files), len(model_bytes), len(methods),
             arena_total)
    return paths
