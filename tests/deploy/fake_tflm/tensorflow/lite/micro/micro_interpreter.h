// Test stand-in for TFLM's MicroInterpreter: same calls as tinynas_runner.cc makes; Invoke()
// computes output[i] = (sum of input bytes + 31 * i) mod 256 so tests can check the data path.
#ifndef FAKE_TFLM_MICRO_INTERPRETER_H_
#define FAKE_TFLM_MICRO_INTERPRETER_H_

#include <cstddef>
#include <cstdint>

#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

#ifndef FAKE_INPUT_BYTES
#error "define FAKE_INPUT_BYTES and FAKE_OUTPUT_BYTES (the model's tensor sizes)"
#endif

struct TfLiteTensor {
  union {  // TfLitePtrUnion: raw is char* in TFLM
    char* raw;
    int8_t* int8;
    float* f;
  } data;
  size_t bytes;
};

namespace tflite {

class MicroInterpreter {
 public:
  template <typename Resolver>
  MicroInterpreter(const Model* model, const Resolver&, uint8_t* arena, size_t arena_size)
      : model_(model), arena_(arena), arena_size_(arena_size) {}

  TfLiteStatus AllocateTensors() {
    if (model_ == nullptr || arena_size_ < FAKE_INPUT_BYTES + FAKE_OUTPUT_BYTES) return kTfLiteError;
    input_.data.raw = reinterpret_cast<char*>(arena_);
    input_.bytes = FAKE_INPUT_BYTES;
    output_.data.raw = reinterpret_cast<char*>(arena_ + FAKE_INPUT_BYTES);
    output_.bytes = FAKE_OUTPUT_BYTES;
    return kTfLiteOk;
  }
  TfLiteTensor* input(size_t) { return &input_; }
  TfLiteTensor* output(size_t) { return &output_; }
  size_t arena_used_bytes() const { return FAKE_INPUT_BYTES + FAKE_OUTPUT_BYTES + 1000; }

  TfLiteStatus Invoke() {
    uint32_t sum = 0;
    uint8_t* in = reinterpret_cast<uint8_t*>(input_.data.raw);
    for (size_t i = 0; i < input_.bytes; ++i) sum += in[i];
    // Overwrite the input, as TFLM may when it reuses the input's arena bytes for activations.
    for (size_t i = 0; i < input_.bytes; ++i) in[i] = 0xA5;
    for (size_t i = 0; i < output_.bytes; ++i) {
      output_.data.int8[i] = static_cast<int8_t>(static_cast<uint8_t>((sum + 31u * i) & 0xFFu));
    }
    return kTfLiteOk;
  }

 private:
  const Model* model_;
  uint8_t* arena_;
  size_t arena_size_;
  TfLiteTensor input_{};
  TfLiteTensor output_{};
};

}  // namespace tflite

#endif
