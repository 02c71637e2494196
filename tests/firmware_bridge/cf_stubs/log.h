/* crazyflie-firmware src/modules/interface/log.h (test stub): as in the firmware, a log group is a
 * static table of {type, name, address} entries placed in a ".log.<group>" section, opened by a
 * group-start entry and closed by a group-stop entry; names are the stringified NAME. */
#pragma once
#include <stdint.h>
struct log_s { uint8_t type; char *name; void *address; };
#define LOG_UINT8 1
#define LOG_UINT16 2
#define LOG_UINT32 3
#define LOG_FLOAT 7
#define LOG_GROUP 0x80
#define LOG_START 1
#define LOG_STOP 0
#define LOG_ADD(TYPE, NAME, ADDRESS) {.type = TYPE, .name = #NAME, .address = (void *)(ADDRESS)},
#define LOG_GROUP_START(NAME) \
  static const struct log_s quadhil_stub_logs_##NAME[] __attribute__((section(".log." #NAME), used)) = { \
      {.type = LOG_GROUP | LOG_START, .name = #NAME, .address = 0},
#define LOG_GROUP_STOP(NAME) {.type = LOG_GROUP | LOG_STOP, .name = "stop_" #NAME, .address = 0}, };
