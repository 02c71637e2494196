/* quadhil_nn.c - observation builder, position-error integral and dense/tanh/relu forward pass over
 * the generated weights.
 * See quadhil_nn.h. policy_weights.h is written by `quadhil export --format c RUN --out ...`. */
#include "quadhil_nn.h"

#include <math.h>
#include <string.h>

#include "policy_weights.h"

#if QH_OBS_DIM > QH_OBS_DIM_MAX
#error "observation larger than QH_OBS_DIM_MAX"
#endif

/* export_c writes QH_POSITION_INTEGRAL and its constants only for layouts that hold the integral */
#ifndef QH_POSITION_INTEGRAL
#define QH_POSITION_INTEGRAL 0
#endif
#if QH_POSITION_INTEGRAL && !(defined(QH_INTEGRAL_RADIUS_M) && defined(QH_INTEGRAL_LIMIT_M_S))
#error "QH_POSITION_INTEGRAL needs QH_INTEGRAL_RADIUS_M and QH_INTEGRAL_LIMIT_M_S"
#endif

static float clampf_(float v, float lo, float hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

/* sim.frames.quat_to_rotmat: R (body-to-world) of a unit quaternion (w, x, y, z), row-major. */
static void quat_to_rotmat_(const float q[4], float r[9]) {
  const float w = q[0], x = q[1], y = q[2], z = q[3];
  r[0] = 1.0f - 2.0f * (y * y + z * z);
  r[1] = 2.0f * (x * y - w * z);
  r[2] = 2.0f * (x * z + w * y);
  r[3] = 2.0f * (x * y + w * z);
  r[4] = 1.0f - 2.0f * (x * x + z * z);
  r[5] = 2.0f * (y * z - w * x);
  r[6] = 2.0f * (x * z - w * y);
  r[7] = 2.0f * (y * z + w * x);
  r[8] = 1.0f - 2.0f * (x * x + y * y);
}

int qh_observe(const qh_state_t *s, const float target_w[3], const float *last_actions, const float *integral_w,
               float *obs) {
  int k = 0;
  float r[9];
  quat_to_rotmat_(s->quat_wb, r);
  for (unsigned f = 0; f < sizeof(qh_obs_fields) / sizeof(qh_obs_fields[0]); f++) {
    const qh_obs_field_t field = qh_obs_fields[f];
    switch (field.id) {
      case QH_FIELD_POSITION_ERROR_W:
        for (int i = 0; i < 3; i++) {
          obs[k++] = clampf_(s->pos_w[i] - target_w[i], -QH_POSITION_ERROR_CLIP_M, QH_POSITION_ERROR_CLIP_M);
        }
        break;
      case QH_FIELD_ROTATION_MATRIX_WB:
        for (int i = 0; i < 9; i++) obs[k++] = r[i];
        break;
      case QH_FIELD_ROTATION_MATRIX_ROWS01_WB:
        for (int i = 0; i < 6; i++) obs[k++] = r[i];
        break;
      case QH_FIELD_VELOCITY_W:
        for (int i = 0; i < 3; i++) obs[k++] = s->vel_w[i];
        break;
      case QH_FIELD_OMEGA_B:
        for (int i = 0; i < 3; i++) obs[k++] = s->omega_b[i];
        break;
      case QH_FIELD_LAST_ACTIONS:
        for (int i = 0; i < field.size; i++) obs[k++] = last_actions[i];
        break;
      case QH_FIELD_POSITION_ERROR_INTEGRAL_W:
        for (int i = 0; i < 3; i++) obs[k++] = integral_w[i];
        break;
      default:
        break; /* export_c only emits the ids above */
    }
  }
  return k;
}

void qh_integrate_position_error(float integral_w[3], const float pos_w[3], const float target_w[3]) {
#if QH_POSITION_INTEGRAL
  float err[3];
  for (int i = 0; i < 3; i++) err[i] = pos_w[i] - target_w[i];
  const bool near = sqrtf(err[0] * err[0] + err[1] * err[1] + err[2] * err[2]) < QH_INTEGRAL_RADIUS_M;
  for (int i = 0; i < 3; i++) {
    const float step = near ? err[i] / QH_CONTROL_RATE_HZ : 0.0f;
    integral_w[i] = clampf_(integral_w[i] + step, -QH_INTEGRAL_LIMIT_M_S, QH_INTEGRAL_LIMIT_M_S);
  }
#else
  (void)pos_w;
  (void)target_w;
  for (int i = 0; i < 3; i++) integral_w[i] = 0.0f;
#endif
}

static float activate_(float v, uint8_t activation) {
  switch (activation) {
    case QH_ACT_TANH:
      return tanhf(v);
    case QH_ACT_RELU:
      return v > 0.0f ? v : 0.0f;
    default:
      return v;
  }
}

void qh_forward(const float *obs, float *action) {
  /* two ping-pong buffers as wide as the widest layer */
  static float buf_a[QH_MAX_WIDTH];
  static float buf_b[QH_MAX_WIDTH];
  float *in = buf_a;
  float *out = buf_b;
  for (int i = 0; i < QH_OBS_DIM; i++) {
    /* keras Normalization: (x - mean) / max(sqrt(var), eps); export_c writes the divisor */
    in[i] = (obs[i] - qh_obs_mean[i]) / qh_obs_std[i];
  }
  for (unsigned l = 0; l < sizeof(qh_layers) / sizeof(qh_layers[0]); l++) {
    const qh_layer_t *layer = &qh_layers[l];
    for (int j = 0; j < layer->out; j++) out[j] = layer->bias[j];
    for (int i = 0; i < layer->in; i++) {
      const float x = in[i];
      const float *row = layer->kernel + (unsigned)i * layer->out;
      for (int j = 0; j < layer->out; j++) out[j] += x * row[j];
    }
    for (int j = 0; j < layer->out; j++) out[j] = activate_(out[j], layer->activation);
    float *t = in;
    in = out;
    out = t;
  }
  memcpy(action, in, 4 * sizeof(float));
}

float qh_action_to_pwm_ratio(float action, float thrust_scale, float supply_v) {
  if (!isfinite(action)) return 0.0f;
  const float a = clampf_(action, -1.0f, 1.0f);
  float thrust_n = 0.5f * (a + 1.0f) * QH_THRUST_MAX_N * thrust_scale;
#if QH_BATTERY_COMPENSATED
  /* Battery-compensated build: powerDistributionForce turns the force f into f * UINT16_MAX and
   * motorsCompensateBatteryVoltage (src/drivers/src/motors.c) reads that as f * THRUST_MAX newtons
   * (0 below THRUST_MIN), so f is thrust over THRUST_MAX. */
  (void)supply_v;
  return clampf_(thrust_n / QH_FW_THRUST_MAX_N, 0.0f, 1.0f);
#else
  const float c0 = QH_THRUST_CURVE_C0, c1 = QH_THRUST_CURVE_C1, c2 = QH_THRUST_CURVE_C2;
  const float t_max = c0 + c1 + c2;
  thrust_n = clampf_(thrust_n, c0, t_max);
  float u;
  if (c2 == 0.0f) {
    u = (thrust_n - c0) / c1;
  } else {
    u = (-c1 + sqrtf(c1 * c1 + 4.0f * c2 * (thrust_n - c0))) / (2.0f * c2);
  }
  /* Without the firmware's compensation a PWM duty drives the motor at duty x supply voltage, and
   * the curve above holds at QH_THRUST_CURVE_SUPPLY_V: ask for the voltage the thrust needs, as
   * motors.c does in the compensated build (PWM = volts needed / supply), up to full PWM. Below
   * 2 V the reading is not a battery (motors.c's own sanity bound): no compensation. */
  if (supply_v >= 2.0f) u *= QH_THRUST_CURVE_SUPPLY_V / supply_v;
  return clampf_(u, 0.0f, 1.0f);
#endif
}

const char *qh_policy_vehicle(void) { return QH_POLICY_VEHICLE; }

bool qh_policy_is_for_crazyflie(void) { return strcmp(QH_POLICY_VEHICLE, "crazyflie") == 0; }

bool qh_policy_is_motor_level(void) { return QH_POLICY_MOTOR_LEVEL != 0; }

float qh_policy_rate_hz(void) { return QH_CONTROL_RATE_HZ; }

int qh_policy_obs_dim(void) { return QH_OBS_DIM; }

int qh_policy_action_history(void) { return QH_ACTION_HISTORY; }

const float *qh_policy_hover_action(void) { return qh_hover_action; }
