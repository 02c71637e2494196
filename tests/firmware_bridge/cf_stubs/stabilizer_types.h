/* crazyflie-firmware src/modules/interface/stabilizer_types.h: the types quadhil_app.c touches, with the
 * members and layout found in the real header (checked at 7185a75f; 0640f1c2 adds a jerk member to
 * setpoint_t). Test stub: only the members, not the rest of the file. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
typedef uint32_t stabilizerStep_t;
typedef struct { float x; float y; float z; } Axis3f; /* imu_types.h */
typedef struct attitude_s { uint32_t timestamp; float roll; float pitch; float yaw; } attitude_t;
struct vec3_s { uint32_t timestamp; float x; float y; float z; };
typedef struct vec3_s point_t;
typedef struct vec3_s velocity_t;
typedef struct vec3_s acc_t;
/* no timestamp; q0..q3 alias x, y, z, w */
typedef struct quaternion_s {
  union {
    struct { float q0; float q1; float q2; float q3; };
    struct { float x; float y; float z; float w; };
  };
} quaternion_t;
typedef struct baro_s { float pressure; float temperature; float asl; } baro_t;
typedef struct sensorData_s {
  Axis3f acc;   /* Gs */
  Axis3f gyro;  /* deg/s */
  Axis3f mag;   /* gauss */
  baro_t baro;
  uint64_t interruptTimestamp;
} sensorData_t;
typedef struct state_s {
  attitude_t attitude;  /* deg, legacy CF2 frame (pitch inverted) */
  quaternion_t attitudeQuaternion;
  point_t position;     /* m */
  velocity_t velocity;  /* m/s */
  acc_t acc;            /* Gs */
} state_t;
#define STABILIZER_NR_OF_MOTORS 4
typedef enum control_mode_e { controlModeLegacy = 0, controlModeForceTorque = 1, controlModeForce = 2 } control_mode_t;
typedef struct control_s {
  union {
    struct { int16_t roll; int16_t pitch; int16_t yaw; float thrust; };
    struct { float thrustSi; union { float torque[3]; struct { float torqueX; float torqueY; float torqueZ; }; }; };
    float normalizedForces[STABILIZER_NR_OF_MOTORS]; /* 0.0 ... 1.0 */
  };
  control_mode_t controlMode;
} control_t;
typedef enum mode_e { modeDisable = 0, modeAbs, modeVelocity } stab_mode_t;
typedef struct setpoint_s {
  uint32_t timestamp;
  attitude_t attitude;
  attitude_t attitudeRate;
  quaternion_t attitudeQuaternion;
  float thrust;
  point_t position;
  velocity_t velocity;
  acc_t acceleration;
  bool velocity_body;
  struct { stab_mode_t x, y, z, roll, pitch, yaw, quat; } mode;
} setpoint_t;
#define RATE_1000_HZ 1000
#define RATE_MAIN_LOOP RATE_1000_HZ
#define RATE_DO_EXECUTE(RATE_HZ, TICK) ((TICK % (RATE_MAIN_LOOP / RATE_HZ)) == 0)
