/* FreeRTOS.h + crazyflie-firmware config.h M2T/T2M (1 kHz tick) (test stub) */
#pragma once
#include <stdint.h>
typedef uint32_t TickType_t;
#define M2T(X) ((unsigned int)(X))
#define T2M(X) ((unsigned int)(X))
