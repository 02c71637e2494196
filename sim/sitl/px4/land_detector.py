"""PX4's multicopter land detector, as the twin runs it (world ENU, SI, times in seconds).

Copied from PX4-Autopilot src/modules/land_detector/MulticopterLandDetector.cpp and .h (PX4
main): three stages, each a hysteresis that turns true only after its condition held for a
trigger time and turns false at once.

1. ground contact (350 ms, GROUND_CONTACT_TRIGGER_TIME_US): thrust at most
   MPC_THR_MIN + 0.3 (0.6 with a valid hover-thrust estimate) x (hover - MPC_THR_MIN), no
   vertical movement (|vz| <= min(0.5 x 0.9 x MPC_LAND_SPEED, LNDMC_Z_VEL_MAX), 2.5 x
   LNDMC_Z_VEL_MAX within 2 s of the last landing), no horizontal movement (LNDMC_XY_VEL_MAX),
   and, while the vehicle's climb rate is controlled, a commanded descent of at least 0.9 x
   MPC_LAND_SPEED ("ground contact requires commanded descent until landed");
2. maybe landed (250 ms, MAYBE_LAND_DETECTOR_TRIGGER_TIME_US): thrust at most MPC_THR_MIN +
   0.1 x (hover - MPC_THR_MIN) (MPC_MANTHR_MIN + 0.01 without climb-rate control), not in free
   fall (specific force < 2 m/s^2 for 300 ms), roll/pitch rate below LNDMC_ROT_MAX (x 2.5 just
   after landing), and ground contact;
3. landed (300 ms, LAND_DETECTOR_TRIGGER_TIME_US): maybe landed.

Disarmed, every stage is true. Commander then disarms COM_DISARM_LAND s after "landed".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GROUND_CONTACT_TRIGGER_S = 0.35
MAYBE_LAND_TRIGGER_S = 0.25
LAND_TRIGGER_S = 0.30
FREEFALL_TRIGGER_S = 0.30
LAND_PHASE_S = 2.0  # LAND_DETECTOR_LAND_PHASE_TIME_US: wider thresholds just after landing
FREEFALL_ACCEL_MPS2 = 2.0


class Hysteresis:
    """systemlib::Hysteresis with a delay from false to true only (true -> false at once)."""

    def __init__(self, state: bool, delay_to_true_s: float):
        self.state = state
        self.delay_s = delay_to_true_s
        self._pending_since: float | None = None

    def update(self, value: bool, now_s: float) -> bool:
        """Feed the instantaneous condition; return the filtered state."""
        if not value:
            self.state = False
            self._pending_since = None
        elif not self.state:
            if self._pending_since is None:
                self._pending_since = now_s
            if now_s - self._pending_since >= self.delay_s - 1e-9:
                self.state = True
        return self.state


@dataclass
class LandInputs:
    """What the land detector reads each cycle (ENU, SI)."""

    armed: bool
    vel_w: tuple[float, float, float]
    rate_roll_pitch_rad_s: float  # norm of the body roll and pitch rates
    specific_force_mps2: float  # norm of the accelerometer's specific force
    throttle: float  # collective thrust setpoint, 0..1
    climb_rate_controlled: bool  # the active mode closes a vertical velocity loop
    vz_setpoint_mps: float  # commanded vertical velocity (ENU, up +), NaN if none
    hover_thrust: float  # the hover thrust PX4 believes in (HTE if valid, else MPC_THR_HOVER)
    hover_estimate_valid: bool


class MulticopterLandDetector:
    """Ground contact -> maybe landed -> landed, from PX4's thresholds and trigger times."""

    def __init__(self, params):
        self.p = params
        self.ground_contact = Hysteresis(True, GROUND_CONTACT_TRIGGER_S)
        self.maybe_landed = Hysteresis(True, MAYBE_LAND_TRIGGER_S)
        self.landed = Hysteresis(True, LAND_TRIGGER_S)
        self.freefall = Hysteresis(False, FREEFALL_TRIGGER_S)
        self._landed_time: float | None = None
        self.in_descend = False

    def _land_phase(self, now: float) -> bool:
        return self._landed_time is not None and now - self._landed_time < LAND_PHASE_S

    def _ground_contact_now(self, now: float, x: LandInputs) -> bool:
        p = self.p
        land_speed_threshold = 0.9 * max(p["MPC_LAND_SPEED"], 0.1)
        max_climb = min(0.5 * land_speed_threshold, p["LNDMC_Z_VEL_MAX"])
        if self._land_phase(now):
            max_climb = 2.5 * p["LNDMC_Z_VEL_MAX"]
        vertical_movement = abs(x.vel_w[2]) > max_climb
        horizontal_movement = math.hypot(x.vel_w[0], x.vel_w[1]) > p["LNDMC_XY_VEL_MAX"]
        share = 0.6 if x.hover_estimate_valid else 0.3
        low_throttle = p["MPC_THR_MIN"] + (x.hover_thrust - p["MPC_THR_MIN"]) * share
        contact = x.throttle <= low_throttle
        if x.climb_rate_controlled:
            self.in_descend = math.isfinite(x.vz_setpoint_mps) and -x.vz_setpoint_mps >= land_speed_threshold
            if not self.maybe_landed.state and not self.landed.state:
                contact = contact and self.in_descend
        else:
            self.in_descend = False
        if not x.armed:
            return True
        return contact and not horizontal_movement and not vertical_movement

    def _maybe_landed_now(self, now: float, x: LandInputs) -> bool:
        if not x.armed:
            return True
        p = self.p
        if x.climb_rate_controlled:
            min_throttle = p["MPC_THR_MIN"] + (x.hover_thrust - p["MPC_THR_MIN"]) * 0.1
        else:
            min_throttle = p["MPC_MANTHR_MIN"] + 0.01
        if x.throttle > min_throttle or self.freefall.state:
            return False
        factor = 2.5 if self._land_phase(now) else 1.0
        if x.rate_roll_pitch_rad_s > math.radians(p["LNDMC_ROT_MAX"]) * factor:
            return False
        return self.ground_contact.state

    def update(self, now_s: float, x: LandInputs) -> bool:
        """One land-detector cycle; returns ``landed``."""
        self.freefall.update(x.specific_force_mps2 < FREEFALL_ACCEL_MPS2, now_s)
        self.ground_contact.update(self._ground_contact_now(now_s, x), now_s)
        self.maybe_landed.update(self._maybe_landed_now(now_s, x), now_s)
        if not self.maybe_landed.state:
            self._landed_time = None
        elif self._landed_time is None:
            self._landed_time = now_s
        return self.landed.update(self.maybe_landed.state if x.armed else True, now_s)
