/* crazyflie-firmware src/modules/interface/stabilizer_types.h, the parts quadhil_app.c uses (test stub) */
#pragma once
#include <stdbool.h>
#include <stdint.h>
typedef uint32_t stabilizerStep_t;
typedef struct { float x, y, z; } Axis3f;
typedef struct { uint32_t timestamp; float x, y, z, w; } quaternion_t;
typedef struct { uint32_t timestamp; float x, y, z; } point_t;
typedef struct { uint32_t timestamp; float x, y, z; } velocity_t;
typedef struct { Axis3f acc; Axis3f gyro; Axis3f mag; } sensorData_t;
typedef struct { quaternion_t attitudeQuaternion; point_t position; velocity_t velocity; } state_t;
typedef enum mode_e { modeDisable = 0, modeAbs, modeVelocity } stab_mode_t;
typedef struct setpoint_s { uint32_t timestamp; float thrust; struct { stab_mode_t x, y, z, roll, pitch, yaw, quat; } mode; } setpoint_t;
#define STABILIZER_NR_OF_MOTORS 4
typedef enum control_mode_e { controlModeLegacy = 0, controlModeForceTorque = 1, controlModeForce = 2 } control_mode_t;
typedef struct control_s {
  union {
    struct { int16_t roll; int16_t pitch; int16_t yaw; float thrust; };
    struct { float thrustSi; union { float torque[3]; struct { float torqueX; float torqueY; float torqueZ; }; }; };
    float normalizedForces[STABILIZER_NR_OF_MOTORS];
  };
  control_mode_t controlMode;
} control_t;
#define RATE_1000_HZ 1000
#define RATE_MAIN_LOOP RATE_1000_HZ
#define RATE_DO_EXECUTE(RATE_HZ, TICK) ((TICK % (RATE_MAIN_LOOP / RATE_HZ)) == 0)
