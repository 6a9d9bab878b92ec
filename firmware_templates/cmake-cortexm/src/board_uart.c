/*
 * Serial port of the board: polled byte I/O for the tinynas protocol.
 *
 * The default drives a PL011-compatible UART (ARM PrimeCell UART, as on TI Stellaris
 * LM3S6965, the board QEMU's lm3s6965evb machine emulates: UART0 at 0x4000C000), which
 * needs no set-up there. On any other board, define these three functions with your
 * vendor's HAL (e.g. STM32 HAL_UART_Transmit / LL_USART, nrfx_uarte) in a file of your own:
 * these are weak, so yours win.
 */
#include <stdint.h>

#ifndef TINYNAS_UART_BASE
#define TINYNAS_UART_BASE 0x4000C000u
#endif

#define UART_DR (*(volatile uint32_t *)(TINYNAS_UART_BASE + 0x000u))
#define UART_FR (*(volatile uint32_t *)(TINYNAS_UART_BASE + 0x018u))
#define UART_FR_RXFE (1u << 4)
#define UART_FR_TXFF (1u << 5)

__attribute__((weak)) void tinynas_uart_init(uint32_t baud)
{
    (void)baud; /* clocks, pins and baud divisors are board-specific: set them up here */
}

__attribute__((weak)) void tinynas_uart_putc(char c)
{
    while ((UART_FR & UART_FR_TXFF) != 0u) {
    }
    UART_DR = (uint32_t)(unsigned char)c;
}

__attribute__((weak)) int tinynas_uart_getc(void)
{
    if ((UART_FR & UART_FR_RXFE) != 0u) {
        return -1;
    }
    return (int)(UART_DR & 0xFFu);
}
