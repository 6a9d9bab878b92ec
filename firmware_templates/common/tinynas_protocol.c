/*
 * tinynas serial benchmarking protocol (docs/protocol.md): command parsing,
 * the `db` upload buffer, timed inference and result printing.
 *
 * Follows the MLPerf Tiny runner subset (mlcommons/tiny
 * benchmark/api/internally_implemented.cpp) so existing MLPerf tooling can
 * drive a tinynas board. Numbers are formatted by hand: newlib-nano's printf
 * has no %f or %llu unless the build links the float variant.
 */
#include "tinynas_protocol.h"

#include <string.h>

/* ---------------------------------------------------------------- output -- */

static void put(const tinynas_protocol *p, const char *text)
{
    p->board->write(p->board->ctx, text);
}

static void put_line(const tinynas_protocol *p, const char *text)
{
    put(p, text);
    put(p, "\r\n");
}

/* Decimal digits of v into buf (at least 21 bytes); returns buf. */
static char *format_u64(char *buf, uint64_t v)
{
    char tmp[21];
    size_t n = 0, i;
    do {
        tmp[n++] = (char)('0' + (v % 10u));
        v /= 10u;
    } while (v != 0u);
    for (i = 0; i < n; ++i) {
        buf[i] = tmp[n - 1 - i];
    }
    buf[n] = '\0';
    return buf;
}

static void put_u64(const tinynas_protocol *p, uint64_t v)
{
    char buf[21];
    put(p, format_u64(buf, v));
}

/* v with exactly 6 decimals, ties to even like printf's "%.6f", without libc. */
static void put_fixed6(const tinynas_protocol *p, double v)
{
    char buf[48];
    char digits[21];
    uint64_t micro, whole, frac;
    size_t len = 0, k;
    int negative = v < 0.0;
    double mag = negative ? -v : v;

    if (!(mag == mag)) { /* NaN */
        put(p, "nan");
        return;
    }
    if (mag > 9.0e12) { /* beyond what the int8 outputs of a model can hold */
        put(p, negative ? "-inf" : "inf");
        return;
    }
    {
        double scaled = mag * 1000000.0;
        double rest;
        micro = (uint64_t)scaled;
        rest = scaled - (double)micro;
        if (rest > 0.5 || (rest == 0.5 && (micro & 1u) != 0u)) {
            ++micro;
        }
    }
    whole = micro / 1000000u;
    frac = micro % 1000000u;
    if (negative && micro != 0u) {
        buf[len++] = '-';
    }
    format_u64(digits, whole);
    for (k = 0; digits[k] != '\0'; ++k) {
        buf[len++] = digits[k];
    }
    buf[len++] = '.';
    for (k = 0; k < 6; ++k) {
        buf[len + 5 - k] = (char)('0' + (frac % 10u));
        frac /= 10u;
    }
    len += 6;
    buf[len] = '\0';
    put(p, buf);
}

static void put_extension(const tinynas_protocol *p)
{
    const tinynas_board *b = p->board;
    put(p, "m-tinynas-[arena_used_bytes=");
    put_u64(p, (uint64_t)b->arena_used_bytes);
    put(p, ",model_id=");
    put(p, b->model_id != NULL ? b->model_id : "unknown");
    put(p, ",input_bytes=");
    put_u64(p, (uint64_t)b->input_bytes);
    put(p, ",output_bytes=");
    put_u64(p, (uint64_t)b->output_bytes);
    put_line(p, "]");
}

static void put_results(const tinynas_protocol *p)
{
    const tinynas_board *b = p->board;
    size_t i;
    put(p, "m-results-[");
    for (i = 0; i < b->output_count; ++i) {
        double value;
        if (b->output_value != NULL) {
            value = (double)b->output_value(b->ctx, i);
        } else {
            value = ((double)b->output[i] - (double)b->output_zero_point) * (double)b->output_scale;
        }
        if (i > 0) {
            put(p, ",");
        }
        put_fixed6(p, value);
    }
    put_line(p, "]");
}

/* --------------------------------------------------------------- parsing -- */

/* Strict unsigned decimal; 0 on success. */
static int parse_size(const char *text, size_t *out)
{
    size_t v = 0;
    if (text == NULL || *text == '\0') {
        return -1;
    }
    for (; *text != '\0'; ++text) {
        if (*text < '0' || *text > '9') {
            return -1;
        }
        if (v > ((size_t)-1 - 9u) / 10u) {
            return -1; /* would overflow */
        }
        v = v * 10u + (size_t)(*text - '0');
    }
    *out = v;
    return 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32) of one more byte; bitwise, no table in flash. */
static uint32_t crc32_update(uint32_t crc, uint8_t byte)
{
    int k;
    crc ^= byte;
    for (k = 0; k < 8; ++k) {
        crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return crc;
}

static void put_hex32(const tinynas_protocol *p, uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    char buf[9];
    int k;
    for (k = 7; k >= 0; --k) {
        buf[k] = digits[v & 0xFu];
        v >>= 4;
    }
    buf[8] = '\0';
    put(p, buf);
}

/* Split cmd in place at spaces; returns the number of words (at most max). */
static size_t split_words(char *cmd, char **words, size_t max)
{
    size_t n = 0;
    char *s = cmd;
    while (*s != '\0' && n < max) {
        while (*s == ' ') {
            *s++ = '\0';
        }
        if (*s == '\0') {
            break;
        }
        words[n++] = s;
        while (*s != '\0' && *s != ' ') {
            ++s;
        }
    }
    return n;
}

/* -------------------------------------------------------------- commands -- */

static void cmd_db_load(tinynas_protocol *p, const char *size_text)
{
    size_t n = 0;
    if (parse_size(size_text, &n) != 0 || n < 1u || n > p->board->input_bytes) {
        p->load_expected = 0;
        p->load_received = 0;
        put_line(p, "e-[db load size]");
        return;
    }
    p->load_expected = n;
    p->load_received = 0;
    p->load_crc = 0xFFFFFFFFu;
    put(p, "m-[Expecting ");
    put_u64(p, (uint64_t)n);
    put_line(p, " bytes]");
}

static void cmd_db_data(tinynas_protocol *p, const char *hex)
{
    size_t len = hex != NULL ? strlen(hex) : 0u;
    size_t i;
    if (p->load_expected == 0u) {
        put_line(p, "e-[db load first]");
        return;
    }
    /* Check the whole chunk before storing any of it, so a bad chunk leaves no trace. */
    if (len == 0u || (len % 2u) != 0u) {
        p->load_expected = p->load_received = 0;
        put_line(p, "e-[bad hex]");
        return;
    }
    for (i = 0; i < len; ++i) {
        if (hex_value(hex[i]) < 0) {
            p->load_expected = p->load_received = 0;
            put_line(p, "e-[bad hex]");
            return;
        }
    }
    if (p->load_received + len / 2u > p->load_expected) {
        p->load_expected = p->load_received = 0;
        put_line(p, "e-[db too many bytes]");
        return;
    }
    for (i = 0; i < len; i += 2u) {
        const uint8_t byte = (uint8_t)((hex_value(hex[i]) << 4) | hex_value(hex[i + 1u]));
        p->board->input[p->load_received++] = byte;
        p->load_crc = crc32_update(p->load_crc, byte);
    }
    if (p->load_received == p->load_expected) {
        p->load_expected = p->load_received = 0;
        p->last_crc = p->load_crc ^ 0xFFFFFFFFu;
        p->have_crc = 1;
        put_line(p, "m-load-done");
    }
}

static int run_once(const tinynas_protocol *p)
{
    const tinynas_board *b = p->board;
    if (b->set_input != NULL) {
        b->set_input(b->ctx, b->input, b->input_bytes);
    }
    return b->invoke(b->ctx);
}

/* `infer N W`: N >= 1 required; W defaults to 10 as in the MLPerf Tiny firmware. */
static void cmd_infer(tinynas_protocol *p, char **words, size_t nwords)
{
    size_t iterations = 0, warmups = 10, i;
    uint64_t t0, t1;
    if (nwords < 2u || nwords > 3u || parse_size(words[1], &iterations) != 0 ||
        (nwords == 3u && parse_size(words[2], &warmups) != 0) || iterations < 1u) {
        put_line(p, "e-[infer needs N >= 1 and W >= 0]");
        return;
    }
    put(p, "m-warmup-start-");
    put_u64(p, (uint64_t)warmups);
    put_line(p, "");
    for (i = 0; i < warmups; ++i) {
        if (run_once(p) != 0) {
            put_line(p, "e-[invoke failed]");
            return;
        }
    }
    put_line(p, "m-warmup-done");
    put(p, "m-infer-start-");
    put_u64(p, (uint64_t)iterations);
    put_line(p, "");
    /* Both timestamps are taken around the loop and printed after it, so the
       time the UART needs to send a line never counts as inference time. */
    t0 = p->board->micros(p->board->ctx);
    for (i = 0; i < iterations; ++i) {
        if (run_once(p) != 0) {
            put_line(p, "e-[invoke failed]");
            return;
        }
    }
    t1 = p->board->micros(p->board->ctx);
    p->have_results = 1;
    put(p, "m-lap-us-");
    put_u64(p, t0);
    put_line(p, "");
    put(p, "m-lap-us-");
    put_u64(p, t1);
    put_line(p, "");
    put_line(p, "m-infer-done");
    put_results(p);
}

static void run_command(tinynas_protocol *p)
{
    char *words[4];
    size_t nwords;
    char original[TINYNAS_CMD_MAX + 1];

    memcpy(original, p->cmd, p->cmd_len + 1u);
    nwords = split_words(p->cmd, words, 4);

    if (nwords == 1u && strcmp(words[0], "name") == 0) {
        put_line(p, "m-name-dut-[tinynas]");
    } else if (nwords == 1u && strcmp(words[0], "profile") == 0) {
        put_line(p, "m-profile-[tinynas]");
        put(p, "m-model-[");
        put(p, p->board->model_id != NULL ? p->board->model_id : "unknown");
        put_line(p, "]");
        put_extension(p);
    } else if (nwords == 2u && strcmp(words[0], "db") == 0 && strcmp(words[1], "crc") == 0) {
        if (p->have_crc) {
            put(p, "m-crc-[");
            put_hex32(p, p->last_crc);
            put_line(p, "]");
        } else {
            put_line(p, "e-[db crc no data]");
        }
    } else if (nwords >= 1u && strcmp(words[0], "db") == 0) {
        if (nwords >= 2u && strcmp(words[1], "load") == 0) {
            cmd_db_load(p, nwords == 3u ? words[2] : NULL);
        } else {
            cmd_db_data(p, nwords == 2u ? words[1] : NULL);
        }
    } else if (nwords >= 1u && strcmp(words[0], "infer") == 0) {
        cmd_infer(p, words, nwords);
    } else if (nwords == 1u && strcmp(words[0], "results") == 0) {
        if (p->have_results) {
            put_results(p); /* before any inference there is no last line: only m-ready */
        }
    } else {
        put(p, "e-[unknown command: ");
        put(p, original);
        put_line(p, "]");
    }
    put_line(p, "m-ready");
}

/* ------------------------------------------------------------ public API -- */

void tinynas_protocol_init(tinynas_protocol *p, const tinynas_board *board)
{
    memset(p, 0, sizeof(*p));
    p->board = board;
}

void tinynas_protocol_boot(tinynas_protocol *p)
{
    put_line(p, "m-timestamp-mode-performance");
    put_extension(p);
    put_line(p, "m-init-done");
    put_line(p, "m-ready");
}

void tinynas_protocol_feed(tinynas_protocol *p, char c)
{
    if (c == '\r' || c == '\n' || c == '\0') {
        return; /* line endings some terminals add between commands */
    }
    if (c != '%') {
        if (p->cmd_len < TINYNAS_CMD_MAX) {
            p->cmd[p->cmd_len++] = c;
        } else {
            p->cmd_overflow = 1;
        }
        return;
    }
    p->cmd[p->cmd_len] = '\0';
    if (p->cmd_overflow) {
        put_line(p, "e-[command too long]");
        put_line(p, "m-ready");
    } else {
        run_command(p);
    }
    p->cmd_len = 0;
    p->cmd_overflow = 0;
}

void tinynas_protocol_feed_bytes(tinynas_protocol *p, const char *data, size_t size)
{
    size_t i;
    for (i = 0; i < size; ++i) {
        tinynas_protocol_feed(p, data[i]);
    }
}
