/* crazyflie-firmware log.h macros, reduced: each entry stores the variable's address (test stub) */
#pragma once
#define LOG_UINT8 1
#define LOG_UINT32 3
#define LOG_FLOAT 7
#define LOG_GROUP_START(NAME)
#define LOG_GROUP_STOP(NAME)
#define LOG_ADD(TYPE, NAME, ADDRESS) void *stub_log_##NAME = (void *)(ADDRESS);
