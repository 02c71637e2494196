/* quadhil_nn.h - the onboard policy in plain C11: observation builder and MLP forward pass.
 *
 * No firmware dependency: the same two files (quadhil_nn.h/.c) build into the Crazyflie app and
 * into the host test harness (tests/firmware_bridge/test_onboard_*.py), which checks them against
 * the .tflite (LiteRT) and against sim.contract.observe.
 *
 * Frames and units follow quadhil's contract (sim/contract.py): world ENU, body FLU, quaternion
 * body-to-world scalar-first (w, x, y, z), SI units. The Crazyflie's own state estimate is already
 * in these frames (crazyflie-firmware src/modules/interface/stabilizer_types.h: state_t position
 * m, velocity m/s, attitudeQuaternion x/y/z/w body-to-world; sensorData_t gyro deg/s body).
 */
#ifndef QUADHIL_NN_H
#define QUADHIL_NN_H

#include <stdbool.h>
#include <stdint.h>

/* Observation fields, in the names of sim.contract (the generated weights list them in order). */
#define QH_FIELD_POSITION_ERROR_W 1u         /* 3: p - target, clipped to +-clip (m) */
#define QH_FIELD_ROTATION_MATRIX_WB 2u       /* 9: R body-to-world, row-major */
#define QH_FIELD_ROTATION_MATRIX_ROWS01_WB 3u /* 6: first two rows of R */
#define QH_FIELD_VELOCITY_W 4u               /* 3: m/s world */
#define QH_FIELD_OMEGA_B 5u                  /* 3: rad/s body */
#define QH_FIELD_LAST_ACTIONS 6u             /* 4*h: newest first */
#define QH_FIELD_POSITION_ERROR_INTEGRAL_W 7u /* 3: m*s world, held by the caller (qh_integrate_position_error) */

/* Largest observation the app reserves stack for (policy_weights.h is checked against it). */
#define QH_OBS_DIM_MAX 64

#define QH_ACT_LINEAR 0u
#define QH_ACT_TANH 1u
#define QH_ACT_RELU 2u

typedef struct {
  uint16_t in;          /* inputs */
  uint16_t out;         /* outputs */
  uint8_t activation;   /* QH_ACT_* */
  const float *kernel;  /* (in, out) row-major, as keras Dense stores it */
  const float *bias;    /* (out,) */
} qh_layer_t;

typedef struct {
  uint8_t id;    /* QH_FIELD_* */
  uint8_t size;  /* floats */
} qh_obs_field_t;

/* A state estimate in the contract's frames. */
typedef struct {
  float pos_w[3];    /* m, world ENU */
  float vel_w[3];    /* m/s, world ENU */
  float quat_wb[4];  /* w, x, y, z body-to-world, unit */
  float omega_b[3];  /* rad/s, body FLU */
} qh_state_t;

/* Build the observation exactly as sim.contract.observe does (raw, unnormalized).
 * last_actions: 4*h floats newest first (may be NULL when h == 0); integral_w: the position-error
 * integral, 3 floats m*s world ENU, already advanced for this tick (may be NULL when the layout holds
 * none). Returns the length written. */
int qh_observe(const qh_state_t *state, const float target_w[3], const float *last_actions, const float *integral_w,
               float *obs);

/* One control tick of the position-error integral, in place, as sim.contract.integrate_position_error:
 * integral_w (m*s, world ENU) += (pos_w - target_w) / QH_CONTROL_RATE_HZ while |pos_w - target_w| <
 * QH_INTEGRAL_RADIUS_M (m), then each axis clipped to +-QH_INTEGRAL_LIMIT_M_S. The caller holds the
 * integral, zeroes it when the policy takes over, and calls this once per control tick, before
 * qh_observe, from the same estimate. A network whose layout holds no integral leaves it at zero. */
void qh_integrate_position_error(float integral_w[3], const float pos_w[3], const float target_w[3]);

/* Run the network on one raw observation (normalization is inside, as in the .tflite).
 * action: 4 floats. */
void qh_forward(const float *obs, float *action);

/* Per-motor PWM ratio in [0, 1] (what control_t.normalizedForces carries in controlModeForce,
 * crazyflie-firmware power_distribution_quadrotor.c powerDistributionForce) for a "motors"
 * action in [-1, 1]: thrust fraction (a + 1) / 2 of the nominal max thrust, times thrust_scale,
 * through the inverse of the vehicle's thrust curve (sim.vehicle.Vehicle.thrust_to_command). On a
 * build without battery compensation the PWM is scaled by QH_THRUST_CURVE_SUPPLY_V / supply_v
 * (pm.vbat, V), as sim.command_path.app_battery_compensation models; ignored when compensated. */
float qh_action_to_pwm_ratio(float action, float thrust_scale, float supply_v);

/* Vehicle, action mode and size of the embedded network (from the generated weights). */
const char *qh_policy_vehicle(void);
bool qh_policy_is_for_crazyflie(void);
bool qh_policy_is_motor_level(void);
float qh_policy_rate_hz(void);
int qh_policy_obs_dim(void);
int qh_policy_action_history(void);
/* The hover action the history starts with (as sim.env does), 4 floats. */
const float *qh_policy_hover_action(void);

#endif /* QUADHIL_NN_H */
