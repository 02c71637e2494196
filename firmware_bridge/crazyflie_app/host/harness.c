/* harness.c - host build of the app's portable parts, driven by tests/firmware_bridge.
 *
 *   harness forward N     stdin: N * QH_OBS_DIM float32    stdout: N * 4 float32 actions
 *   harness observe N     stdin: N records of pos3 vel3 quat4 omega3 target3 last_actions(4h)
 *                         float32                           stdout: N * QH_OBS_DIM float32
 *                         The records are N consecutive control ticks of one flight, as quadhil_app.c
 *                         runPolicy sees them: the position-error integral starts at zero and each
 *                         record advances it (qh_integrate_position_error) before its observation.
 *   harness pwm N S       stdin: N float32 actions          stdout: N float32 PWM ratios (scale S)
 *   harness packets N     stdin: N * QH_PACKET_SIZE bytes   stdout: one text line per packet
 *   harness status SEQ STATE EVENT TRIPS REJECTED TIME      stdout: the 20 status bytes
 *   harness info          stdout: vehicle, motor-level, rate, obs dim
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quadhil_nn.h"
#include "quadhil_packets.h"

static int read_floats(float *dst, size_t n) {
  return fread(dst, sizeof(float), n, stdin) == n ? 0 : -1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: harness forward|observe|pwm|packets|status|info ...\n");
    return 2;
  }
  const char *cmd = argv[1];
  const long n = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
  const int dim = qh_policy_obs_dim();
  const int hist = 4 * qh_policy_action_history();
  if (strcmp(cmd, "info") == 0) {
    printf("%s %d %g %d %d\n", qh_policy_vehicle(), qh_policy_is_motor_level() ? 1 : 0,
           (double)qh_policy_rate_hz(), dim, qh_policy_is_for_crazyflie() ? 1 : 0);
    return 0;
  }
  if (strcmp(cmd, "forward") == 0) {
    float obs[256], act[4];
    for (long i = 0; i < n; i++) {
      if (read_floats(obs, (size_t)dim)) return 3;
      qh_forward(obs, act);
      fwrite(act, sizeof(float), 4, stdout);
    }
    return 0;
  }
  if (strcmp(cmd, "observe") == 0) {
    float rec[19 + 256], obs[256];
    float integral[3] = {0.0f, 0.0f, 0.0f};
    const size_t rec_len = (size_t)(16 + hist);
    for (long i = 0; i < n; i++) {
      if (read_floats(rec, rec_len)) return 3;
      qh_state_t s;
      memcpy(s.pos_w, rec, 3 * sizeof(float));
      memcpy(s.vel_w, rec + 3, 3 * sizeof(float));
      memcpy(s.quat_wb, rec + 6, 4 * sizeof(float));
      memcpy(s.omega_b, rec + 10, 3 * sizeof(float));
      qh_integrate_position_error(integral, s.pos_w, rec + 13);
      const int k = qh_observe(&s, rec + 13, rec + 16, integral, obs);
      if (k != dim) return 4;
      fwrite(obs, sizeof(float), (size_t)dim, stdout);
    }
    return 0;
  }
  if (strcmp(cmd, "pwm") == 0) {
    const float scale = argc > 3 ? strtof(argv[3], NULL) : 1.0f;
    const float supply_v = argc > 4 ? strtof(argv[4], NULL) : 0.0f;
    for (long i = 0; i < n; i++) {
      float a;
      if (read_floats(&a, 1)) return 3;
      const float u = qh_action_to_pwm_ratio(a, scale, supply_v);
      fwrite(&u, sizeof(float), 1, stdout);
    }
    return 0;
  }
  if (strcmp(cmd, "packets") == 0) {
    uint8_t buf[QH_PACKET_SIZE];
    for (long i = 0; i < n; i++) {
      if (fread(buf, 1, QH_PACKET_SIZE, stdin) != QH_PACKET_SIZE) return 3;
      const uint8_t kind = qh_packet_kind(buf, QH_PACKET_SIZE);
      if (kind == QH_KIND_SETPOINT) {
        qh_setpoint_packet_t p;
        memset(&p, 0, sizeof(p));
        const int err = qh_decode_setpoint(buf, QH_PACKET_SIZE, &p);
        printf("setpoint %d %u %.9g %.9g %.9g\n", err, (unsigned)p.sequence, (double)p.x_m, (double)p.y_m,
               (double)p.z_m);
      } else {
        qh_motor_packet_t p;
        memset(&p, 0, sizeof(p));
        const int err = qh_decode_motors(buf, QH_PACKET_SIZE, &p);
        printf("motors %d %u %.9g %.9g %.9g %.9g\n", err, (unsigned)p.sequence, (double)p.m1, (double)p.m2,
               (double)p.m3, (double)p.m4);
      }
    }
    return 0;
  }
  if (strcmp(cmd, "status") == 0 && argc == 8) {
    qh_status_packet_t s;
    memset(&s, 0, sizeof(s));
    s.sequence = (uint16_t)strtoul(argv[2], NULL, 10);
    s.state = (uint8_t)strtoul(argv[3], NULL, 10);
    s.event = (uint8_t)strtoul(argv[4], NULL, 10);
    s.watchdog_trips = (uint32_t)strtoul(argv[5], NULL, 10);
    s.rejected = (uint32_t)strtoul(argv[6], NULL, 10);
    s.time_ms = (uint32_t)strtoul(argv[7], NULL, 10);
    uint8_t buf[QH_PACKET_SIZE];
    qh_encode_status(&s, buf);
    fwrite(buf, 1, QH_PACKET_SIZE, stdout);
    return 0;
  }
  fprintf(stderr, "unknown command %s\n", cmd);
  return 2;
}
