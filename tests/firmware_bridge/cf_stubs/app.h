/* crazyflie-firmware src/modules/interface/app.h (test stub) */
#pragma once
void appMain();
