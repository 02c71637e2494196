/* crazyflie-firmware src/utils/interface/debug.h (test stub): DEBUG_PRINT goes to consolePrintf, which
 * console.h defines as eprintf(consolePutchar, ...); eprintf (eprintf.h) carries
 * __attribute__((format(printf, 2, 3))), so format strings are checked as in the firmware build.
 * The firmware's eprintf supports %s %c %d %i %u %x %X %f and the l / ll length modifiers. */
#pragma once
typedef int (*putc_t)(int c);
int eprintf(putc_t putcf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int consolePutchar(int ch);
#define consolePrintf(FMT, ...) eprintf(consolePutchar, FMT, ##__VA_ARGS__)
#ifdef DEBUG_MODULE
#define DEBUG_FMT(fmt) DEBUG_MODULE ": " fmt
#else
#define DEBUG_FMT(fmt) fmt
#endif
#define DEBUG_PRINT(fmt, ...) consolePrintf(DEBUG_FMT(fmt), ##__VA_ARGS__)
