/* crazyflie-firmware src/modules/interface/commander.h (test stub) */
#pragma once
#include "stabilizer_types.h"
#define COMMANDER_PRIORITY_DISABLE 0
#define COMMANDER_PRIORITY_CRTP 1
#define COMMANDER_PRIORITY_EXTRX 2
void commanderSetSetpoint(setpoint_t *setpoint, int priority);
