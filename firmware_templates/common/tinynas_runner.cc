/*
 * tinynas model runner: MicroInterpreter + generated model + serial protocol.
 * See tinynas_runner.h. The same file serves every firmware template.
 */
#include "tinynas_runner.h"

#include <string.h>

#include "model_data.h"
#include "op_resolver.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tinynas_protocol.h"

namespace {

// The arena and the input staging buffer live in .bss; both sizes come from model_data.h.
alignas(16) uint8_t g_tensor_arena[kTensorArenaSize];
uint8_t g_input_staging[kInputBytes];

tflite::MicroInterpreter* g_interpreter = nullptr;
tinynas_board g_board;
tinynas_protocol g_protocol;

void board_write(void*, const char* text) { tinynas_platform_write(text); }

uint64_t board_micros(void*) { return tinynas_platform_micros(); }

void board_set_input(void*, const uint8_t* data, size_t size) {
  memcpy(g_interpreter->input(0)->data.raw, data, size);
}

int board_invoke(void*) {
  const TfLiteStatus status = g_interpreter->Invoke();
  // Reading the timer once per inference keeps a software-extended 32-bit
  // counter (DWT CYCCNT wraps every 2^32 cycles) correct over long windows.
  (void)tinynas_platform_micros();
  return status == kTfLiteOk ? 0 : 1;
}

float board_output_float(void*, size_t index) {
  return g_interpreter->output(0)->data.f[index];
}

float dequantized_output(size_t index) {
  const TfLiteTensor* output = g_interpreter->output(0);
  if (kOutputIsFloat) return output->data.f[index];
  return kOutputScale * static_cast<float>(static_cast<int32_t>(output->data.int8[index]) - kOutputZeroPoint);
}

void fail(const char* what) {
  tinynas_platform_write("e-[");
  tinynas_platform_write(what);
  tinynas_platform_write("]\r\n");
}

}  // namespace

extern "C" int tinynas_runner_setup(void) {
  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    fail("model schema version does not match this TFLite Micro");
    return 1;
  }
  static TinyNasOpResolver resolver;
  if (RegisterModelOps(resolver) != kTfLiteOk) {
    fail("op resolver: an op could not be registered");
    return 1;
  }
  static tflite::MicroInterpreter interpreter(model, resolver, g_tensor_arena, kTensorArenaSize);
  g_interpreter = &interpreter;
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    fail("AllocateTensors failed: kTensorArenaSize in model_data.h is too small");
    return 1;
  }
  TfLiteTensor* input = interpreter.input(0);
  TfLiteTensor* output = interpreter.output(0);
  if (input->bytes != kInputBytes || output->bytes != kOutputBytes) {
    fail("tensor sizes differ from model_data.h: regenerate the model sources");
    return 1;
  }

  memset(&g_board, 0, sizeof(g_board));
  g_board.write = board_write;
  g_board.micros = board_micros;
  g_board.set_input = board_set_input;
  g_board.invoke = board_invoke;
  g_board.output_value = kOutputIsFloat ? board_output_float : nullptr;
  g_board.input = g_input_staging;
  g_board.input_bytes = kInputBytes;
  g_board.output = output->data.int8;
  g_board.output_count = kOutputCount;
  g_board.output_bytes = kOutputBytes;
  g_board.output_scale = kOutputScale;
  g_board.output_zero_point = kOutputZeroPoint;
  g_board.arena_used_bytes = interpreter.arena_used_bytes();
  g_board.model_id = kModelId;

  tinynas_protocol_init(&g_protocol, &g_board);
  tinynas_protocol_boot(&g_protocol);
  return 0;
}

extern "C" void tinynas_runner_feed(char c) {
  if (g_interpreter != nullptr) {
    tinynas_protocol_feed(&g_protocol, c);
  }
}

extern "C" int8_t* tinynas_runner_input(void) {
  return g_interpreter != nullptr ? g_interpreter->input(0)->data.int8 : nullptr;
}

extern "C" int tinynas_runner_invoke(void) {
  return g_interpreter != nullptr && g_interpreter->Invoke() == kTfLiteOk ? 0 : 1;
}

extern "C" int tinynas_runner_top_class(float* score) {
  if (g_interpreter == nullptr) return -1;
  size_t best = 0;
  for (size_t i = 1; i < kOutputCount; ++i) {
    if (dequantized_output(i) > dequantized_output(best)) best = i;
  }
  if (score != nullptr) *score = dequantized_output(best);
  return static_cast<int>(best);
}
