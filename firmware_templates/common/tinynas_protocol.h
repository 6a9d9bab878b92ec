/*
 * tinynas serial benchmarking protocol: the MLPerf Tiny / EEMBC runner subset
 * described in tinynas docs/protocol.md, plus the tinynas extension line.
 *
 * Plain C99 with no TensorFlow Lite Micro and no libc beyond <string.h>, so it
 * builds on its own (host gcc in the tests, any Cortex-M or Xtensa toolchain in
 * the firmware) and the whole protocol can be read in one place. The board glue
 * fills a tinynas_board with callbacks and feeds received bytes one at a time,
 * so it works with any UART driver (polled, interrupt or DMA).
 */
#ifndef TINYNAS_PROTOCOL_H
#define TINYNAS_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest command before the '%' (docs/protocol.md); longer ones are refused. */
#define TINYNAS_CMD_MAX 80

typedef struct tinynas_board {
    void *ctx; /* passed back to every callback */

    /* Send text as-is (the protocol adds "\r\n" itself). Required. */
    void (*write)(void *ctx, const char *text);

    /* Microseconds from a free-running timer (DWT, SysTick, esp_timer_get_time,
       time_us_64, micros). Only differences are used. Required. */
    uint64_t (*micros)(void *ctx);

    /* Copy the staged input into the model's input tensor: called before every
       inference, because TFLite Micro may reuse the input tensor's arena bytes
       for later activations. NULL when `input` already is the tensor buffer. */
    void (*set_input)(void *ctx, const uint8_t *data, size_t size);

    /* Run one inference; 0 on success. Required. */
    int (*invoke)(void *ctx);

    /* Dequantized output i. NULL: computed from `output`, `output_scale` and
       `output_zero_point` as (q - zero_point) * scale (int8 outputs). */
    float (*output_value)(void *ctx, size_t index);

    uint8_t *input;           /* staging buffer that `db` fills: input_bytes long */
    size_t input_bytes;       /* size of the int8 input tensor */
    const int8_t *output;     /* the int8 output tensor's data */
    size_t output_count;      /* number of output values */
    size_t output_bytes;      /* size of the output tensor in bytes */
    float output_scale;
    int32_t output_zero_point;

    size_t arena_used_bytes;  /* interpreter.arena_used_bytes() after AllocateTensors() */
    const char *model_id;     /* Arch id or the first 12 hex digits of the model's SHA-1 */
} tinynas_board;

typedef struct tinynas_protocol {
    const tinynas_board *board;
    char cmd[TINYNAS_CMD_MAX + 1];
    size_t cmd_len;
    int cmd_overflow;        /* more than TINYNAS_CMD_MAX characters before '%' */
    size_t load_expected;    /* bytes announced by `db load N`; 0: no upload under way */
    size_t load_received;
    uint32_t load_crc;       /* running CRC-32 of the upload under way */
    uint32_t last_crc;       /* CRC-32 of the last complete upload (`db crc%`) */
    int have_crc;            /* an upload has completed since boot */
    int have_results;        /* an inference has run since boot */
} tinynas_protocol;

/* Bind the protocol to a board; prints nothing. */
void tinynas_protocol_init(tinynas_protocol *p, const tinynas_board *board);

/* Print the boot banner: m-timestamp-mode-performance, the extension line,
   m-init-done, m-ready. Call once the interpreter has allocated its tensors. */
void tinynas_protocol_boot(tinynas_protocol *p);

/* Feed one received byte; a command runs (and answers) when its '%' arrives. */
void tinynas_protocol_feed(tinynas_protocol *p, char c);

/* Feed several bytes (convenience for drivers that receive in blocks). */
void tinynas_protocol_feed_bytes(tinynas_protocol *p, const char *data, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* TINYNAS_PROTOCOL_H */
