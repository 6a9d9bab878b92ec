/*
 * tinynas model runner: the TFLite Micro side of every tinynas firmware.
 *
 * Creates the MicroInterpreter from the generated model_data.h / op_resolver.h
 * and its 16-byte aligned arena, and connects it to the serial protocol
 * (tinynas_protocol.c). Each ecosystem's main only supplies the two platform
 * hooks below, initialises its UART and timer, and feeds received bytes.
 */
#ifndef TINYNAS_RUNNER_H
#define TINYNAS_RUNNER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Provided by the ecosystem's main: send text over the serial port as-is. */
void tinynas_platform_write(const char *text);

/* Provided by the ecosystem's main: microseconds from a free-running timer,
   64 bits wide (extend a 32-bit counter in software). */
uint64_t tinynas_platform_micros(void);

/* Build the interpreter, allocate tensors and print the boot banner (with
   arena_used_bytes()). 0 on success; otherwise it has printed an e-[...] line. */
int tinynas_runner_setup(void);

/* Feed one byte received from the host. */
void tinynas_runner_feed(char c);

/* Your own application, after tinynas_runner_setup(): the model on your data, without the host.
   tinynas_runner_input(): the model's input tensor (kInputBytes bytes, int8, row-major kInputShape;
   fill it with QuantizeRawInput or ResizeRawInput from model_data.h), NULL before setup. It is in the
   arena, which Invoke() may reuse: fill it again before every tinynas_runner_invoke(). */
int8_t *tinynas_runner_input(void);

/* Run the model on the input: 0 on success. */
int tinynas_runner_invoke(void);

/* The output the last invoke scored highest, and its value dequantized into *score when score is not NULL;
   -1 before setup. For a classifier (kNumClasses > 0 in model_data.h) it indexes kClassLabels. */
int tinynas_runner_top_class(float *score);

#ifdef __cplusplus
}
#endif

#endif /* TINYNAS_RUNNER_H */
