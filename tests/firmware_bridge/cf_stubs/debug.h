/* crazyflie-firmware debug.h (test stub) */
#pragma once
int consolePrintf(const char *fmt, ...);
#define DEBUG_PRINT(fmt, ...) consolePrintf(DEBUG_MODULE ": " fmt, ##__VA_ARGS__)
