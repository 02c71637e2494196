/* crazyflie-firmware param.h macros, reduced: each entry stores the variable's address (test stub) */
#pragma once
#define PARAM_UINT8 0x08
#define PARAM_UINT16 0x09
#define PARAM_FLOAT 0x06
#define PARAM_GROUP_START(NAME)
#define PARAM_GROUP_STOP(NAME)
#define PARAM_ADD(TYPE, NAME, ADDRESS) void *stub_param_##NAME = (void *)(ADDRESS);
