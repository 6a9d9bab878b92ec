// Host test harness for firmware_templates/common/tinynas_runner.cc: the platform hooks every
// firmware main provides (write, microseconds), on stdin/stdout and CLOCK_MONOTONIC, so the
// runner + generated model sources + protocol run against the fake TFLM interpreter (fake_tflm/).
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tinynas_runner.h"

extern "C" void tinynas_platform_write(const char* text) {
  size_t left = strlen(text);
  while (left > 0) {
    const ssize_t n = write(1, text, left);
    if (n <= 0) _exit(2);
    text += n;
    left -= static_cast<size_t>(n);
  }
}

extern "C" uint64_t tinynas_platform_micros(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

int main() {
  if (tinynas_runner_setup() != 0) return 3;
  char buf[64];
  for (;;) {
    const ssize_t n = read(0, buf, sizeof(buf));
    if (n <= 0) return 0;
    for (ssize_t i = 0; i < n; ++i) tinynas_runner_feed(buf[i]);
  }
}
