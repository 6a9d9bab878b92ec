// Host test harness for the application calls of firmware_templates/common/tinynas_runner.h: raw values
// from the command line (repeated to fill the input) through QuantizeRawInput into tinynas_runner_input(),
// tinynas_runner_invoke(), then tinynas_runner_top_class() printed as "index label score".
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "model_data.h"
#include "tinynas_runner.h"

extern "C" void tinynas_platform_write(const char*) {}

extern "C" uint64_t tinynas_platform_micros(void) { return 0; }

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  if (tinynas_runner_input() != nullptr || tinynas_runner_top_class(nullptr) != -1) return 4;  // before setup
  if (tinynas_runner_setup() != 0) return 3;
  int8_t* input = tinynas_runner_input();
  for (unsigned i = 0; i < kInputCount; ++i) {
    input[i] = QuantizeRawInput(strtof(argv[1 + i % static_cast<unsigned>(argc - 1)], nullptr));
  }
  if (tinynas_runner_invoke() != 0) return 5;
  float score = 0.0f;
  const int k = tinynas_runner_top_class(&score);
  printf("%d %s %.6f\n", k, kClassLabels[k], static_cast<double>(score));
  return 0;
}
