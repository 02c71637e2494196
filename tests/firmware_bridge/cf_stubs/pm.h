/* crazyflie-firmware src/hal/interface/pm.h (test stub): the one prototype the app uses. */
#pragma once
/** Returns the battery voltage in volts as a float */
float pmGetBatteryVoltage(void);
