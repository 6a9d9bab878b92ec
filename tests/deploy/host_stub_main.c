/*
 * Host test harness for firmware_templates/common/tinynas_protocol.c: the
 * protocol with a stub inference and a fake microsecond clock, speaking on
 * stdin/stdout (the tests connect those to a pseudo-terminal).
 *
 * Stub inference: output[i] = (sum of input bytes + 31 * i) mod 256, as int8;
 * every inference advances the fake clock by STUB_US_PER_INFERENCE, so the
 * host can check the latency it computes from the m-lap-us lines exactly.
 * Usage: host_stub [input_bytes [output_count]]
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tinynas_protocol.h"

#define STUB_US_PER_INFERENCE 1500u
#define STUB_MAX_BYTES 4096u

static uint8_t g_staging[STUB_MAX_BYTES];
static uint8_t g_input_tensor[STUB_MAX_BYTES];
static int8_t g_output[STUB_MAX_BYTES];
static uint64_t g_clock_us = 1000000u; /* boots "one second after reset" */
static size_t g_input_bytes = 490;
static size_t g_output_count = 12;

static void stub_write(void *ctx, const char *text)
{
    size_t left = strlen(text);
    (void)ctx;
    while (left > 0) {
        ssize_t n = write(1, text, left);
        if (n <= 0) {
            exit(2);
        }
        text += n;
        left -= (size_t)n;
    }
}

static uint64_t stub_micros(void *ctx)
{
    (void)ctx;
    return g_clock_us;
}

static void stub_set_input(void *ctx, const uint8_t *data, size_t size)
{
    (void)ctx;
    memcpy(g_input_tensor, data, size);
}

static int stub_invoke(void *ctx)
{
    uint32_t sum = 0;
    size_t i;
    (void)ctx;
    for (i = 0; i < g_input_bytes; ++i) {
        sum += g_input_tensor[i];
    }
    for (i = 0; i < g_output_count; ++i) {
        g_output[i] = (int8_t)(uint8_t)((sum + 31u * (uint32_t)i) & 0xffu);
    }
    g_clock_us += STUB_US_PER_INFERENCE;
    return 0;
}

int main(int argc, char **argv)
{
    tinynas_board board;
    tinynas_protocol protocol;
    char buf[64];

    if (argc > 1) g_input_bytes = (size_t)strtoul(argv[1], NULL, 10);
    if (argc > 2) g_output_count = (size_t)strtoul(argv[2], NULL, 10);
    if (g_input_bytes < 1 || g_input_bytes > STUB_MAX_BYTES || g_output_count < 1 ||
        g_output_count > STUB_MAX_BYTES) {
        return 64;
    }

    memset(&board, 0, sizeof(board));
    board.write = stub_write;
    board.micros = stub_micros;
    board.set_input = stub_set_input;
    board.invoke = stub_invoke;
    board.input = g_staging;
    board.input_bytes = g_input_bytes;
    board.output = g_output;
    board.output_count = g_output_count;
    board.output_bytes = g_output_count;
    board.output_scale = 0.00390625f; /* 1/256, zero point -128: a softmax output */
    board.output_zero_point = -128;
    board.arena_used_bytes = 23940;
    board.model_id = "3fa2c1d0e9b8";

    tinynas_protocol_init(&protocol, &board);
    tinynas_protocol_boot(&protocol);
    for (;;) {
        ssize_t n = read(0, buf, sizeof(buf));
        if (n <= 0) {
            return 0; /* the host closed its end */
        }
        tinynas_protocol_feed_bytes(&protocol, buf, (size_t)n);
    }
}
