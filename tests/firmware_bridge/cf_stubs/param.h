/* crazyflie-firmware src/modules/interface/param.h (test stub): as in the firmware, a parameter group is
 * a static table of {type, extended_type, name, address, callback, getter} entries in a
 * ".param.<group>" section, opened by a group-start entry and closed by a group-stop entry. Type
 * codes: bits 0-1 size (0: 1 byte, 1: 2, 2: 4), bit 2 float, bit 3 unsigned. */
#pragma once
#include <stdint.h>
struct param_s {
  uint8_t type;
  uint8_t extended_type;
  char *name;
  void *address;
  void (*callback)(void);
  void *(*getter)(void);
};
#define PARAM_UINT8 0x08
#define PARAM_UINT16 0x09
#define PARAM_FLOAT 0x06
#define PARAM_GROUP 0x80
#define PARAM_START 1
#define PARAM_STOP 0
#define PARAM_ADD(TYPE, NAME, ADDRESS) \
  {.type = TYPE, .extended_type = 0, .name = #NAME, .address = (void *)(ADDRESS), .callback = 0, .getter = 0},
#define PARAM_GROUP_START(NAME) \
  static struct param_s quadhil_stub_params_##NAME[] __attribute__((section(".param." #NAME), used)) = { \
      {.type = PARAM_GROUP | PARAM_START, .name = #NAME, .address = 0, .callback = 0, .getter = 0},
#define PARAM_GROUP_STOP(NAME) \
  {.type = PARAM_GROUP | PARAM_STOP, .name = "stop_" #NAME, .address = 0, .callback = 0, .getter = 0}, };
