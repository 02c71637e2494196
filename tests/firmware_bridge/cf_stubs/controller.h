/* crazyflie-firmware src/modules/interface/controller/controller.h (test stub). As in the real header the
 * out-of-tree hooks and ControllerTypeOot exist only with CONFIG_CONTROLLER_OOT (set by the app's
 * app-config through kbuild's autoconf.h; the test passes -DCONFIG_CONTROLLER_OOT=1). ControllerTypeOot
 * is 5 in the firmware checked (7185a75f; 0640f1c2 adds ControllerTypeLee after it). */
#pragma once
#include "stabilizer_types.h"
typedef enum {
  ControllerTypeAutoSelect,
  ControllerTypePID,
  ControllerTypeMellinger,
  ControllerTypeINDI,
  ControllerTypeBrescianini,
#ifdef CONFIG_CONTROLLER_OOT
  ControllerTypeOot,
#endif
  ControllerType_COUNT,
} ControllerType;
#ifdef CONFIG_CONTROLLER_OOT
void controllerOutOfTreeInit(void);
bool controllerOutOfTreeTest(void);
void controllerOutOfTree(control_t *control, const setpoint_t *setpoint, const sensorData_t *sensors, const state_t *state, const stabilizerStep_t stabilizerStep);
#endif
