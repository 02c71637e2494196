/* quadhil_app.c - quadhil's out-of-tree app for the Crazyflie 2.x: an out-of-tree controller that
 * commands the motors directly (controlModeForce), in one of two modes.
 *
 *   quadhil.mode = 1  motor relay: a client (quadhil fly, cflib) streams MOTORS packets on the
 *                     app channel (CRTP port 13, channel 2); each valid one is applied; without a
 *                     valid packet for quadhil.wdMs (default 50 ms) the motors drop to zero and the
 *                     app reports it (STATUS packet, log quadhil.state / quadhil.wdTrips).
 *   quadhil.mode = 2  onboard policy: the exported actor (policy_weights.h) runs at its control rate
 *                     from the onboard state estimate (and, for layout "integral", the position-error
 *                     integral the app keeps, zeroed when the policy starts); SETPOINT packets move
 *                     its target. Without a valid packet for quadhil.lossMs (default 500 ms) the app
 *                     lands by itself: state LINK_LOST, the target sinks at QH_LOSS_DESCENT_MPS, then
 *                     the motors are cut and stay off until quadhil.enable = 0; a SETPOINT before the
 *                     cut resumes.
 *   quadhil.enable = 0 (default) or mode 0: the stock PID controller flies, as in the firmware's
 *                     examples/app_out_of_tree_controller, so selecting this controller is harmless.
 *
 * Written against crazyflie-firmware (bitcraze/crazyflie-firmware, 2024-2025 master, release
 * 2025.02 API): out-of-tree build with tools/make/oot.mk (examples/app_color_led_effects/Makefile),
 * OOT controller hooks in src/modules/interface/controller/controller.h (controllerOutOfTree* with
 * stabilizerStep_t), control_t.normalizedForces + controlModeForce in
 * src/modules/interface/stabilizer_types.h, which power_distribution_quadrotor.c
 * (powerDistributionForce) maps to PWM = f * UINT16_MAX, and the app channel API of
 * src/modules/interface/app_channel.h (appchannelReceiveDataPacket / appchannelSendDataPacket).
 * Compiled against those real headers (crazyflie-firmware 7185a75f and neighbours, see
 * check_against_firmware.sh and docs/onboard.md) with the firmware's own flags and -Wextra -Werror.
 *
 * The supervisor (src/modules/src/supervisor.c) levels out and then locks a flying Crazyflie whose
 * commander has had no setpoint for 500 ms / 2 s. Relay packets are not commander setpoints, so
 * the app feeds the commander a neutral setpoint (commanderSetSetpoint, src/modules/src/commander.c)
 * for every valid relay packet, and every 100 ms while the onboard policy flies (its descent after a
 * link loss included: the supervisor would otherwise level out, then cut, a descending vehicle; the
 * app's own link watchdog replaces the commander's in mode 2). The setpoint's content is ignored by
 * this controller in modes 1 and 2.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "app.h"
#include "app_channel.h"
#include "FreeRTOS.h"
#include "task.h"

#include "commander.h"
#include "controller.h"
#include "controller_pid.h"
#include "log.h"
#include "param.h"
#include "pm.h"

#define DEBUG_MODULE "QUADHIL"
#include "debug.h"

#include "quadhil_nn.h"
#include "quadhil_packets.h"

#define QH_MODE_OFF 0u
#define QH_MODE_RELAY 1u
#define QH_MODE_POLICY 2u
#define QH_MAIN_LOOP_HZ 1000u /* RATE_MAIN_LOOP in stabilizer_types.h */
/* Link loss in mode 2: how fast the policy's target sinks. The bridge's own landing speed
 * (firmware_bridge SINK_MPS = 0.3), near cflib's MotionCommander.land default of 0.2 m/s
 * (crazyflie-lib-python cflib/positioning/motion_commander.py VELOCITY): a gentle sink for a hover
 * policy trained to hold a target, and down from 2 m in under 7 s. */
#define QH_LOSS_DESCENT_MPS 0.3f
#define QH_LOSS_GROUND_Z_M 0.05f    /* estimate below this: on the ground, motors off */
#define QH_LOSS_STUCK_GAP_M 0.3f    /* target this far below the estimate ... */
#define QH_LOSS_STUCK_MS 1000u      /* ... for this long: it cannot descend further, motors off */

/* --- parameters (group "quadhil") --- */
static uint8_t enable = 0;
static uint8_t mode = QH_MODE_RELAY;
static uint16_t wdMs = QH_DEFAULT_WATCHDOG_MS;
static uint16_t lossMs = QH_DEFAULT_LINK_LOSS_MS;
static float thrustScale = 1.0f;

/* --- shared between the app task (packets) and the stabilizer task (controller) --- */
typedef struct {
  float motors[4];          /* last valid relayed commands, [-1, 1] */
  float target_w[3];        /* policy target, m ENU */
  bool have_target;
  TickType_t last_rx_tick;  /* tick of the last valid MOTORS packet */
  TickType_t link_rx_tick;  /* tick of the last valid packet of any kind (mode 2's link watchdog) */
  uint32_t setpoints;       /* valid SETPOINT packets so far (one during a descent resumes) */
  bool have_motors;
  uint16_t last_seq;
  bool have_seq;
} shared_t;

static shared_t shared;

/* --- state for log and STATUS (written by the controller, read by the app task). Word-sized,
 * so reads and writes are single instructions on the Cortex-M4; not volatile because LOG_ADD
 * stores their address as a plain pointer (log.h), and the app task re-reads them after each
 * call into the app channel anyway. --- */
static uint8_t appState = QH_STATE_IDLE;
static uint8_t lastEvent = QH_EVENT_NONE;
static uint32_t watchdogTrips = 0;
static uint32_t rejected = 0;
static volatile bool statusDirty = false;
static float pwmRatio[4];
static float lastAction[4];

/* policy state (stabilizer task only) */
static float history[4 * 8];
static float positionIntegral[3]; /* m*s world ENU, for layouts that observe it (qh_integrate_position_error) */
static bool policyStarted = false;
static uint32_t lossSetpoints = 0; /* shared.setpoints when the link was lost */
static bool lossCut = false;       /* landed after a link loss: motors off until quadhil.enable = 0 */
static bool lossStuck = false;     /* the target is QH_LOSS_STUCK_GAP_M below the estimate ... */
static TickType_t lossStuckTick;   /* ... since this tick */

static void setState(uint8_t state, uint8_t event) {
  if (state != appState || event != lastEvent) {
    appState = state;
    lastEvent = event;
    statusDirty = true;
  }
}

static void sendStatus(void) {
  qh_status_packet_t s;
  memset(&s, 0, sizeof(s));
  taskENTER_CRITICAL();
  s.sequence = shared.last_seq;
  taskEXIT_CRITICAL();
  s.state = appState;
  s.event = lastEvent;
  s.watchdog_trips = watchdogTrips;
  s.rejected = rejected;
  s.time_ms = (uint32_t)T2M(xTaskGetTickCount());
  uint8_t buf[QH_PACKET_SIZE];
  qh_encode_status(&s, buf);
  /* appchannelSendDataPacket does not block: it returns 0 (errQUEUE_FULL) when the CRTP TX queue is
   * full and drops the packet, so mark the status dirty again to retry on the next loop. */
  if (appchannelSendDataPacket(buf, QH_PACKET_SIZE) == 0) statusDirty = true;
}

static void feedCommander(void) {
  static setpoint_t keepAlive; /* zeroed: modeDisable everywhere, thrust 0 */
  commanderSetSetpoint(&keepAlive, COMMANDER_PRIORITY_CRTP);
}

static void handlePacket(const uint8_t *buf, size_t len) {
  const uint8_t kind = qh_packet_kind(buf, (uint32_t)len);
  if (kind == QH_KIND_MOTORS) {
    qh_motor_packet_t p;
    if (qh_decode_motors(buf, (uint32_t)len, &p) != QH_OK) {
      rejected++;
      return;
    }
    taskENTER_CRITICAL();
    const bool newer = qh_sequence_is_newer(p.sequence, shared.last_seq, shared.have_seq);
    if (newer) {
      shared.motors[0] = p.m1;
      shared.motors[1] = p.m2;
      shared.motors[2] = p.m3;
      shared.motors[3] = p.m4;
      shared.last_rx_tick = xTaskGetTickCount();
      shared.link_rx_tick = shared.last_rx_tick;
      shared.have_motors = true;
      shared.last_seq = p.sequence;
      shared.have_seq = true;
    }
    taskEXIT_CRITICAL();
    if (newer) {
      if (enable && mode == QH_MODE_RELAY) feedCommander();
    } else {
      rejected++;
    }
  } else if (kind == QH_KIND_SETPOINT) {
    qh_setpoint_packet_t p;
    if (qh_decode_setpoint(buf, (uint32_t)len, &p) != QH_OK) {
      rejected++;
      return;
    }
    taskENTER_CRITICAL();
    const bool newer = qh_sequence_is_newer(p.sequence, shared.last_seq, shared.have_seq);
    if (newer) {
      shared.target_w[0] = p.x_m;
      shared.target_w[1] = p.y_m;
      shared.target_w[2] = p.z_m;
      shared.have_target = true;
      shared.link_rx_tick = xTaskGetTickCount();
      shared.setpoints++;
      shared.last_seq = p.sequence;
      shared.have_seq = true;
    }
    taskEXIT_CRITICAL();
    if (!newer) rejected++;
  } else {
    rejected++;
  }
}

void appMain(void) {
  DEBUG_PRINT("quadhil app: relay on port 13 ch 2, policy for '%s' (%s, %d Hz)\n", qh_policy_vehicle(),
              qh_policy_is_motor_level() ? "motors" : "ctbr", (int)qh_policy_rate_hz());
  uint8_t buf[32];
  TickType_t lastFeed = 0;
  while (1) {
    /* a short timeout so that status changes found by the controller go out promptly */
    const size_t len = appchannelReceiveDataPacket(buf, sizeof(buf), 5);
    if (len > 0) handlePacket(buf, len);
    /* after the cut the feed stops: the supervisor's own watchdog then locks the landed vehicle */
    const bool flying = appState == QH_STATE_POLICY || (appState == QH_STATE_LINK_LOST && !lossCut);
    if (enable && mode == QH_MODE_POLICY && flying && T2M(xTaskGetTickCount() - lastFeed) >= 100u) {
      lastFeed = xTaskGetTickCount();
      feedCommander();
    }
    if (statusDirty) {
      statusDirty = false;
      sendStatus();
    }
  }
}

/* --- the out-of-tree controller ------------------------------------------------------------- */

void controllerOutOfTreeInit(void) {
  controllerPidInit();
  memset(&shared, 0, sizeof(shared));
  policyStarted = false;
}

bool controllerOutOfTreeTest(void) {
  return controllerPidTest();
}

static void motorsOff(control_t *control) {
  control->controlMode = controlModeForce;
  for (int i = 0; i < 4; i++) {
    control->normalizedForces[i] = 0.0f;
    pwmRatio[i] = 0.0f;
  }
}

static void applyActions(control_t *control, const float action[4]) {
  const float supplyV = pmGetBatteryVoltage(); /* used only by a build without battery compensation */
  control->controlMode = controlModeForce;
  for (int i = 0; i < 4; i++) {
    lastAction[i] = action[i];
    pwmRatio[i] = qh_action_to_pwm_ratio(action[i], thrustScale, supplyV);
    control->normalizedForces[i] = pwmRatio[i];
  }
}

static void runRelay(control_t *control) {
  float motors[4];
  bool have;
  TickType_t last;
  taskENTER_CRITICAL();
  have = shared.have_motors;
  last = shared.last_rx_tick;
  memcpy(motors, shared.motors, sizeof(motors));
  taskEXIT_CRITICAL();
  if (!have) {
    motorsOff(control);
    setState(QH_STATE_IDLE, QH_EVENT_NONE);
    return;
  }
  const uint32_t age_ms = (uint32_t)T2M(xTaskGetTickCount() - last);
  if (age_ms >= wdMs) {
    if (appState != QH_STATE_RELAY_TIMEOUT) {
      watchdogTrips++;
      DEBUG_PRINT("relay watchdog: no valid packet for %lu ms, motors off\n", (unsigned long)age_ms);
    }
    motorsOff(control);
    setState(QH_STATE_RELAY_TIMEOUT, QH_EVENT_WATCHDOG);
    return;
  }
  const uint8_t event = appState == QH_STATE_RELAY_TIMEOUT ? QH_EVENT_RESUMED
                        : (appState == QH_STATE_RELAY ? lastEvent : QH_EVENT_STARTED);
  setState(QH_STATE_RELAY, event);
  applyActions(control, motors);
}

static bool policyAcceptable(void) {
  const float rate = qh_policy_rate_hz();
  const int rate_i = (int)rate;
  return qh_policy_is_for_crazyflie() && qh_policy_is_motor_level() && rate_i > 0 && (float)rate_i == rate &&
         (QH_MAIN_LOOP_HZ % (unsigned)rate_i) == 0u && qh_policy_action_history() <= 8;
}

/* Mode 2's link watchdog, once per policy tick (rate Hz). Returns false when the motors must be cut
 * (landed after a link loss). Trips after lossMs without a valid packet: the target sinks from
 * wherever is lower, the target or the estimate (never climb on a lost link), until the estimate is
 * on the ground or the target has been far below it for a while (the vehicle stands on something). */
static bool followLink(const state_t *state, uint32_t rate) {
  const TickType_t now = xTaskGetTickCount();
  bool resumed = false;
  bool tripped = false;
  taskENTER_CRITICAL();
  const uint32_t age_ms = (uint32_t)T2M(now - shared.link_rx_tick);
  if (appState == QH_STATE_LINK_LOST) {
    if (shared.setpoints != lossSetpoints) {
      resumed = true; /* the packet's target stands */
    } else {
      shared.target_w[2] -= QH_LOSS_DESCENT_MPS / (float)rate;
    }
  } else if (lossMs > 0u && age_ms >= lossMs) {
    tripped = true;
    lossSetpoints = shared.setpoints;
    if (state->position.z < shared.target_w[2]) shared.target_w[2] = state->position.z;
  }
  const float target_z = shared.target_w[2];
  taskEXIT_CRITICAL();
  if (resumed) {
    lossStuck = false;
    setState(QH_STATE_POLICY, QH_EVENT_RESUMED);
    return true;
  }
  if (tripped) {
    watchdogTrips++;
    lossStuck = false;
    DEBUG_PRINT("link watchdog: no valid packet for %lu ms, descending\n", (unsigned long)age_ms);
    setState(QH_STATE_LINK_LOST, QH_EVENT_WATCHDOG);
    return true;
  }
  if (appState != QH_STATE_LINK_LOST) return true;
  if (target_z < state->position.z - QH_LOSS_STUCK_GAP_M) {
    if (!lossStuck) {
      lossStuck = true;
      lossStuckTick = now;
    }
  } else {
    lossStuck = false;
  }
  if (state->position.z < QH_LOSS_GROUND_Z_M || (lossStuck && T2M(now - lossStuckTick) >= QH_LOSS_STUCK_MS)) {
    lossCut = true;
    DEBUG_PRINT("link watchdog: down (z %d mm), motors off until quadhil.enable = 0\n",
                (int)(state->position.z * 1000.0f));
    return false;
  }
  return true;
}

static void runPolicy(control_t *control, const sensorData_t *sensors, const state_t *state,
                      const stabilizerStep_t step) {
  if (!policyAcceptable()) {
    /* the embedded network was not made for a Crazyflie's motors at a rate the 1 kHz loop runs */
    if (appState != QH_STATE_REFUSED) {
      DEBUG_PRINT("refusing policy for '%s' (%s, %d Hz): need crazyflie, motors, a divisor of 1000 Hz\n",
                  qh_policy_vehicle(), qh_policy_is_motor_level() ? "motors" : "ctbr", (int)qh_policy_rate_hz());
    }
    motorsOff(control);
    setState(QH_STATE_REFUSED, QH_EVENT_NONE);
    return;
  }
  if (lossCut) {
    motorsOff(control); /* landed after a link loss: only quadhil.enable = 0 lets the motors run again */
    return;
  }
  const uint32_t rate = (uint32_t)qh_policy_rate_hz();
  if (!RATE_DO_EXECUTE(rate, step)) {
    return; /* control keeps the last normalizedForces between policy ticks */
  }
  if (!policyStarted) {
    /* the action history starts at hover, as in training (sim/env.py HoverTask) */
    const float *hover = qh_policy_hover_action();
    for (int h = 0; h < qh_policy_action_history(); h++) memcpy(&history[4 * h], hover, 4 * sizeof(float));
    memset(positionIntegral, 0, sizeof(positionIntegral)); /* zero at the take-over, as sim/env.py's reset */
    taskENTER_CRITICAL();
    if (!shared.have_target) {
      shared.target_w[0] = state->position.x;
      shared.target_w[1] = state->position.y;
      shared.target_w[2] = state->position.z;
      shared.have_target = true;
    }
    shared.link_rx_tick = xTaskGetTickCount(); /* the link watchdog counts from the start */
    taskEXIT_CRITICAL();
    policyStarted = true;
    setState(QH_STATE_POLICY, QH_EVENT_STARTED);
  }
  if (!followLink(state, rate)) {
    motorsOff(control);
    return;
  }
  float target[3];
  taskENTER_CRITICAL();
  memcpy(target, shared.target_w, sizeof(target));
  taskEXIT_CRITICAL();

  qh_state_t s;
  s.pos_w[0] = state->position.x;
  s.pos_w[1] = state->position.y;
  s.pos_w[2] = state->position.z;
  s.vel_w[0] = state->velocity.x;
  s.vel_w[1] = state->velocity.y;
  s.vel_w[2] = state->velocity.z;
  s.quat_wb[0] = state->attitudeQuaternion.w;
  s.quat_wb[1] = state->attitudeQuaternion.x;
  s.quat_wb[2] = state->attitudeQuaternion.y;
  s.quat_wb[3] = state->attitudeQuaternion.z;
  const float deg2rad = 0.0174532925f; /* sensorData_t gyro is deg/s, body x fwd y left z up */
  s.omega_b[0] = sensors->gyro.x * deg2rad;
  s.omega_b[1] = sensors->gyro.y * deg2rad;
  s.omega_b[2] = sensors->gyro.z * deg2rad;

  /* once per policy tick, from this tick's estimate and target, before its observation (sim/env.py observe) */
  qh_integrate_position_error(positionIntegral, s.pos_w, target);
  float obs[QH_OBS_DIM_MAX];
  float action[4];
  qh_observe(&s, target, history, positionIntegral, obs);
  qh_forward(obs, action);
  for (int i = 0; i < 4; i++) {
    if (!isfinite(action[i])) {
      motorsOff(control);
      return;
    }
  }
  /* newest first, as sim.contract.push_action_history */
  const int h = qh_policy_action_history();
  if (h > 0) {
    memmove(&history[4], &history[0], (size_t)(4 * (h - 1)) * sizeof(float));
    memcpy(&history[0], action, 4 * sizeof(float));
  }
  applyActions(control, action);
}

void controllerOutOfTree(control_t *control, const setpoint_t *setpoint, const sensorData_t *sensors,
                         const state_t *state, const stabilizerStep_t stabilizerStep) {
  if (!enable || mode == QH_MODE_OFF) {
    policyStarted = false;
    lossCut = false;
    if (appState != QH_STATE_IDLE) setState(QH_STATE_IDLE, QH_EVENT_DISABLED);
    controllerPid(control, setpoint, sensors, state, stabilizerStep);
    return;
  }
  if (mode == QH_MODE_RELAY) {
    policyStarted = false;
    runRelay(control);
  } else if (mode == QH_MODE_POLICY) {
    runPolicy(control, sensors, state, stabilizerStep);
  } else {
    motorsOff(control);
  }
}

PARAM_GROUP_START(quadhil)
/** @brief 1 to let quadhil command the motors (0: the PID controller flies) */
PARAM_ADD(PARAM_UINT8, enable, &enable)
/** @brief 1 motor relay over the app channel, 2 onboard policy */
PARAM_ADD(PARAM_UINT8, mode, &mode)
/** @brief relay watchdog (ms): without a valid packet for this long the motors stop */
PARAM_ADD(PARAM_UINT16, wdMs, &wdMs)
/** @brief onboard policy link watchdog (ms): without a valid packet for this long it lands; 0 = off (unsafe:
 * a vehicle that loses its client hovers until the battery is flat) */
PARAM_ADD(PARAM_UINT16, lossMs, &lossMs)
/** @brief scale of every motor thrust command (1 = nominal) */
PARAM_ADD(PARAM_FLOAT, thrustScale, &thrustScale)
PARAM_GROUP_STOP(quadhil)

LOG_GROUP_START(quadhil)
LOG_ADD(LOG_UINT8, state, &appState)
LOG_ADD(LOG_UINT8, event, &lastEvent)
LOG_ADD(LOG_UINT32, wdTrips, &watchdogTrips)
LOG_ADD(LOG_UINT32, rejected, &rejected)
LOG_ADD(LOG_FLOAT, m1, &pwmRatio[0])
LOG_ADD(LOG_FLOAT, m2, &pwmRatio[1])
LOG_ADD(LOG_FLOAT, m3, &pwmRatio[2])
LOG_ADD(LOG_FLOAT, m4, &pwmRatio[3])
LOG_ADD(LOG_FLOAT, a1, &lastAction[0])
LOG_ADD(LOG_FLOAT, a2, &lastAction[1])
LOG_ADD(LOG_FLOAT, a3, &lastAction[2])
LOG_ADD(LOG_FLOAT, a4, &lastAction[3])
LOG_GROUP_STOP(quadhil)
