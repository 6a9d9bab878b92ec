// Reads the cmake-cortexm template's tinynas_timer_micros() back to back and reports over the UART
// how often a reading was below the one before it: first with interrupts enabled, for about 2 s of
// board time, then with interrupts masked across one millisecond tick. A SysTick reload that the
// counter shows before its interrupt has run once made the clock step back by up to 1 ms.
#include <stdint.h>

extern "C" {
void tinynas_uart_init(uint32_t baud);
void tinynas_uart_putc(char c);
void tinynas_timer_init(void);
uint64_t tinynas_timer_micros(void);

// The stub runner linked beside this file calls these two.
void tinynas_platform_write(const char* text) {
  while (*text != '\0') tinynas_uart_putc(*text++);
}
uint64_t tinynas_platform_micros(void) { return tinynas_timer_micros(); }
}

namespace {

void write_number(uint32_t value) {
  char digits[11];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10u);
    value /= 10u;
  } while (value != 0u);
  while (n > 0) tinynas_uart_putc(digits[--n]);
}

// Readings below the previous one, until `span_us` of board time has passed or `limit` reads.
uint32_t steps_back(uint64_t span_us, uint32_t limit, bool* reached) {
  const uint64_t start = tinynas_timer_micros();
  uint64_t last = start;
  uint32_t back = 0;
  *reached = false;
  for (uint32_t i = 0; i < limit; ++i) {
    const uint64_t now = tinynas_timer_micros();
    if (now < last) ++back;
    last = now;
    if (now >= start + span_us) {
      *reached = true;
      break;
    }
  }
  return back;
}

}  // namespace

int main(void) {
  tinynas_timer_init();
  tinynas_uart_init(115200u);
  bool reached_open = false;
  bool reached_masked = false;
  const uint32_t open = steps_back(2000000u, 0xFFFFFFFFu, &reached_open);
  // Masked for 950 us from 100-200 us into a millisecond: across exactly one tick.
  while (tinynas_timer_micros() % 1000u < 100u || tinynas_timer_micros() % 1000u >= 200u) {
  }
  __asm volatile("cpsid i" ::: "memory");
  const uint32_t masked = steps_back(950u, 2000000u, &reached_masked);
  __asm volatile("cpsie i" ::: "memory");
  tinynas_platform_write("timer back=");
  write_number(open);
  tinynas_platform_write(" masked_back=");
  write_number(masked);
  tinynas_platform_write(reached_masked ? " masked_reached=1\r\n" : " masked_reached=0\r\n");
  for (;;) {
  }
}
