"""The twin's commander: arming, modes, offboard entry and loss, failsafes, land detection,
takeoff/land/return, auto-disarm. World ENU, SI, times in seconds since boot.

Rules copied from PX4-Autopilot (files under src/modules/):
* commander/Commander.cpp handle_command: DO_SET_MODE maps (main, sub) to a navigation state;
  an unsupported AUTO sub mode is TEMPORARILY_REJECTED with "Unsupported auto mode"; a main mode
  Commander does not map leaves the state unchanged and is ACCEPTED; a refused switch is
  TEMPORARILY_REJECTED; AUTO.LAND is always allowed ("force"). ARM_DISARM: param1 must round to
  0 or 1 ("Unsupported ARM_DISARM param", result stays UNSUPPORTED); param2 == 21196 forces;
  arm() is called with run_preflight_checks = from_external || !forced, so a forced arm over
  MAVLink still runs the preflight checks, while a forced disarm skips the "not landed" check
  (disarm(): "Disarming denied: not landed"). Arm/disarm refusal is TEMPORARILY_REJECTED.
  NAV_TAKEOFF/NAV_LAND/NAV_RETURN_TO_LAUNCH switch to AUTO.TAKEOFF/LAND/RTL; unknown commands
  are UNSUPPORTED.
* commander/HealthAndArmingChecks/checks/offboardCheck.cpp: the offboard signal is present
  while the newest offboard_control_mode is younger than COM_OF_LOSS_T; OFFBOARD can only be
  entered (or armed into) while it is present; commander/failsafe/failsafe.cpp: losing it in
  OFFBOARD while armed triggers COM_OBL_RC_ACT.
* Land detection: PX4's multicopter land detector (``land_detector.py``: ground contact ->
  maybe landed -> landed, 0.35 + 0.25 + 0.3 s). Commander says "Takeoff detected" / "Landing
  detected" when its landed flag changes while armed.
* Auto-disarm (Commander.cpp checkForAutoDisarm-style logic): COM_DISARM_LAND s after landing,
  COM_DISARM_PRFLT s after arming without takeoff.
* navigator/takeoff.cpp: NAV_TAKEOFF param7 is an AMSL altitude; below home + MIS_TAKEOFF_ALT it
  is raised to that with "Using minimum takeoff altitude"; after takeoff the vehicle loiters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.sitl.px4.controllers import Estimate, Setpoint
from sim.sitl.px4.land_detector import LandInputs, MulticopterLandDetector
from sim.sitl.px4.modes import NavState, nav_state_from_custom, MAIN_AUTO, MODE_FLAG_CUSTOM_MODE_ENABLED
from sim.sitl.px4.params import ParamStore

# MAV_RESULT
ACCEPTED, TEMPORARILY_REJECTED, DENIED, UNSUPPORTED, FAILED, IN_PROGRESS = 0, 1, 2, 3, 4, 5
# MAV_SEVERITY
SEV_EMERGENCY, SEV_ALERT, SEV_CRITICAL, SEV_ERROR, SEV_WARNING, SEV_NOTICE, SEV_INFO = 0, 1, 2, 3, 4, 5, 6
# MAV_LANDED_STATE
LANDED_UNDEFINED, LANDED_ON_GROUND, LANDED_IN_AIR, LANDED_TAKEOFF, LANDED_LANDING = 0, 1, 2, 3, 4
# MAV_CMD ids handled by the commander
CMD_NAV_RETURN_TO_LAUNCH = 20
CMD_NAV_LAND = 21
CMD_NAV_TAKEOFF = 22
CMD_DO_SET_MODE = 176
CMD_COMPONENT_ARM_DISARM = 400
FORCE_MAGIC = 21196

# What the twin flies. Modes PX4 knows but that need RC sticks (MANUAL, STAB, ACRO) or a
# mission are refused as PX4 SITL without a joystick/mission refuses them.
FLYABLE = {NavState.POSCTL, NavState.ALTCTL, NavState.AUTO_LOITER, NavState.AUTO_TAKEOFF,
           NavState.AUTO_LAND, NavState.AUTO_RTL, NavState.OFFBOARD}
# COM_OBL_RC_ACT -> state (2 Manual has no sticks here: land, as PX4 falls back without RC)
OFFBOARD_LOSS_ACTION = {0: NavState.POSCTL, 1: NavState.ALTCTL, 2: NavState.AUTO_LAND, 3: NavState.AUTO_RTL,
                        4: NavState.AUTO_LAND, 5: NavState.AUTO_LOITER, 6: NavState.TERMINATION, 7: None}
TAKEOFF_DONE_M = 0.15  # altitude error at which takeoff is complete and the vehicle loiters


@dataclass
class OffboardInput:
    """The newest offboard setpoint (ENU) and when it arrived (s since boot)."""

    setpoint: Setpoint
    time_s: float


class Commander:
    """Vehicle state machine. Feed it commands and offboard setpoints; call ``update`` every
    control tick; drain ``messages`` (severity, text) into STATUSTEXT."""

    def __init__(self, params: ParamStore, home_w: np.ndarray, ekf_init_s: float = 1.0):
        self.p = params
        self.home_w = np.asarray(home_w, dtype=np.float64)
        self.ekf_init_s = ekf_init_s
        self.armed = False
        self.nav_state = NavState.POSCTL
        self.failsafe = False
        self.landed = True
        self.battery_fraction = 1.0
        self.offboard: OffboardInput | None = None
        self.messages: list[tuple[int, str]] = []
        self._now = 0.0
        self.land_detector = MulticopterLandDetector(params)
        self._armed_at = 0.0
        self._landed_at = 0.0
        self._took_off = False
        self._hold_w = self.home_w.copy()
        self._hold_yaw = 0.0
        self._takeoff_alt_w = 0.0
        self._estimate: Estimate | None = None
        self.counters = {"arm_denied": 0, "mode_rejected": 0, "failsafes": 0}

    # ---- helpers ---------------------------------------------------------------------------

    def _say(self, severity: int, text: str) -> None:
        self.messages.append((severity, text))

    def offboard_signal_present(self) -> bool:
        """offboardCheck.cpp: a setpoint newer than COM_OF_LOSS_T."""
        return self.offboard is not None and (self._now - self.offboard.time_s) <= self.p["COM_OF_LOSS_T"]

    def landed_state(self) -> int:
        """MAV_LANDED_STATE for EXTENDED_SYS_STATE."""
        if self.landed:
            return LANDED_ON_GROUND
        if self.nav_state == NavState.AUTO_TAKEOFF:
            return LANDED_TAKEOFF
        if self.nav_state == NavState.AUTO_LAND:
            return LANDED_LANDING
        return LANDED_IN_AIR

    def _latch_hold(self) -> None:
        if self._estimate is not None:
            self._hold_w = self._estimate.pos_w.copy()
            self._hold_yaw = self._estimate.yaw_rad

    def _enter(self, state: NavState) -> None:
        if state != self.nav_state:
            self.nav_state = state
            self._latch_hold()
            if state == NavState.AUTO_LAND:
                self._say(SEV_INFO, "Landing at current position")

    # ---- modes and arming ------------------------------------------------------------------

    def can_run(self, state: NavState) -> tuple[bool, str]:
        """Whether ``state`` may be entered now, and the reason if not (modeCheck.cpp)."""
        if state not in FLYABLE:
            return False, f"{state.label}: mode not available in this twin"
        if state == NavState.OFFBOARD and not self.offboard_signal_present():
            return False, "No offboard signal"
        if self._now < self.ekf_init_s and state != NavState.AUTO_LAND:
            return False, "No valid position estimate"
        return True, ""

    def request_mode(self, state: NavState, force: bool = False) -> bool:
        """User mode switch (UserModeIntention::change). Returns False when refused."""
        ok, reason = self.can_run(state)
        if not ok and not (force and state in FLYABLE):
            self.counters["mode_rejected"] += 1
            # Commander printRejectMode, then the failing mode requirement
            self._say(SEV_CRITICAL, f"Switching to {state.label} is currently not possible"[:50])
            self._say(SEV_CRITICAL, reason[:50])
            return False
        self.failsafe = False
        self._enter(state)
        return True

    def arm(self, run_preflight_checks: bool = True) -> bool:
        """Commander::arm. Returns False (with a STATUSTEXT) when denied."""
        if self.armed:
            return True
        if run_preflight_checks:
            reason = None
            if self._now < self.ekf_init_s:
                reason = "Preflight Fail: ekf2 not ready"
            elif self.battery_fraction < self.p["BAT_CRIT_THR"]:
                reason = "Preflight Fail: battery critically low"
            elif self.nav_state == NavState.OFFBOARD and not self.offboard_signal_present():
                reason = "Arming denied: no offboard signal"
            elif self.nav_state not in FLYABLE:
                reason = f"Arming denied: {self.nav_state.label} not available"
            elif not self.landed:
                reason = "Arming denied: not landed"
            if reason is not None:
                self.counters["arm_denied"] += 1
                self._say(SEV_CRITICAL, reason)
                return False
        self.armed = True
        self._armed_at = self._now
        self._took_off = False
        self.failsafe = False
        self._latch_hold()
        self._say(SEV_INFO, "Armed by external command")
        return True

    def disarm(self, forced: bool = False, reason: str = "external command") -> bool:
        """Commander::disarm: refused in the air unless forced."""
        if not self.armed:
            return True
        if not forced and not self.landed:
            self._say(SEV_CRITICAL, "Disarming denied: not landed")
            return False
        self.armed = False
        self.failsafe = False
        self._say(SEV_INFO, f"Disarmed by {reason}")
        return True

    def handle_command(self, command: int, params: tuple[float, ...]) -> int:
        """Execute a commander-owned MAV_CMD; returns the MAV_RESULT for COMMAND_ACK."""
        p1, p2, p3, p4, p5, p6, p7 = (list(params) + [math.nan] * 7)[:7]
        if command == CMD_COMPONENT_ARM_DISARM:
            action = round(p1) if math.isfinite(p1) else None
            if action not in (0, 1):
                self._say(SEV_CRITICAL, f"Unsupported ARM_DISARM param: {p1:.3f}")
                return UNSUPPORTED
            forced = math.isfinite(p2) and round(p2) == FORCE_MAGIC
            ok = self.arm(run_preflight_checks=True) if action == 1 else self.disarm(forced=forced)
            return ACCEPTED if ok else TEMPORARILY_REJECTED
        if command == CMD_DO_SET_MODE:
            base = int(p1) if math.isfinite(p1) else 0
            if not base & MODE_FLAG_CUSTOM_MODE_ENABLED:
                return ACCEPTED  # base-mode-only requests map to modes the twin has no sticks for
            main = int(p2) if math.isfinite(p2) else -1
            sub = int(p3) if math.isfinite(p3) else 0
            state = nav_state_from_custom(main, sub)
            if state is None:
                if main == MAIN_AUTO:
                    self._say(SEV_CRITICAL, "Unsupported auto mode")
                    return TEMPORARILY_REJECTED
                return ACCEPTED  # Commander leaves desired_nav_state at MAX: no change
            if state == NavState.TERMINATION:
                return ACCEPTED
            ok = self.request_mode(state, force=state == NavState.AUTO_LAND)
            return ACCEPTED if ok else TEMPORARILY_REJECTED
        if command == CMD_NAV_TAKEOFF:
            if not self.request_mode(NavState.AUTO_TAKEOFF):
                return TEMPORARILY_REJECTED
            self._set_takeoff_altitude(p7)
            return ACCEPTED
        if command == CMD_NAV_LAND:
            return ACCEPTED if self.request_mode(NavState.AUTO_LAND, force=True) else TEMPORARILY_REJECTED
        if command == CMD_NAV_RETURN_TO_LAUNCH:
            if self.request_mode(NavState.AUTO_RTL):
                self._say(SEV_INFO, "Returning to launch")
                return ACCEPTED
            return TEMPORARILY_REJECTED
        return UNSUPPORTED

    def _set_takeoff_altitude(self, alt_amsl_m: float, home_amsl_m: float | None = None) -> None:
        home_amsl = self.home_amsl_m if home_amsl_m is None else home_amsl_m
        min_rel = self.p["MIS_TAKEOFF_ALT"]
        rel = alt_amsl_m - home_amsl if math.isfinite(alt_amsl_m) else min_rel
        if rel < min_rel:
            if math.isfinite(alt_amsl_m):
                self._say(SEV_WARNING, f"Using minimum takeoff altitude: {min_rel:.2f} m")
            rel = min_rel
        self._takeoff_alt_w = self.home_w[2] + rel

    home_amsl_m = 488.0  # PX4 SITL default home altitude (PX4_HOME_ALT), m AMSL

    # ---- offboard ------------------------------------------------------------------------

    def offboard_setpoint(self, sp: Setpoint) -> None:
        """A valid offboard setpoint arrived (mavlink_receiver publishes offboard_control_mode
        for it whatever the mode; the setpoint itself is used only in OFFBOARD)."""
        self.offboard = OffboardInput(sp, self._now)

    # ---- periodic update -------------------------------------------------------------------

    def update(self, now_s: float, est: Estimate, land: LandInputs) -> Setpoint:
        """Advance land detection, failsafes, auto modes and auto-disarm; return the setpoint."""
        self._now = now_s
        self._estimate = est
        self._land_detector(now_s, land)
        if self.armed:
            self._failsafes()
            self._auto_disarm(now_s)
        return self._setpoint(est)

    def _land_detector(self, now: float, land: LandInputs) -> None:
        landed = self.land_detector.update(now, land)
        if landed and not self.landed:
            self.landed = True
            self._landed_at = now
            if self.armed:
                self._say(SEV_INFO, "Landing detected")
        elif not landed and self.landed:
            self.landed = False
            if self.armed:
                self._took_off = True
                self._say(SEV_INFO, "Takeoff detected")

    def _failsafes(self) -> None:
        if self.nav_state == NavState.OFFBOARD and not self.offboard_signal_present():
            action = int(self.p["COM_OBL_RC_ACT"])
            target = OFFBOARD_LOSS_ACTION.get(action, NavState.POSCTL)
            self.failsafe = True
            self.counters["failsafes"] += 1
            label = "Disarm" if target is None else target.label
            self._say(SEV_CRITICAL, f"Failsafe: no offboard signal, activating {label}"[:50])
            if target is None:
                self.disarm(forced=True, reason="failsafe")
            else:
                self._enter(target)

    def _auto_disarm(self, now: float) -> None:
        if not self.landed:
            return
        if self._took_off:
            delay = self.p["COM_DISARM_LAND"]
            if delay > 0 and now - max(self._landed_at, self._armed_at) >= delay:
                self.disarm(forced=True, reason="landing")
        else:
            delay = self.p["COM_DISARM_PRFLT"]
            if delay > 0 and now - self._armed_at >= delay:
                self.disarm(forced=True, reason="auto preflight disarming")

    def _hold(self, pos_w: np.ndarray, vel_w=(math.nan,) * 3) -> Setpoint:
        return Setpoint(kind="trajectory", pos_w=np.asarray(pos_w, dtype=np.float64),
                        vel_w=np.asarray(vel_w, dtype=np.float64), yaw_rad=self._hold_yaw)

    def _setpoint(self, est: Estimate) -> Setpoint:
        s = self.nav_state
        if not self.armed or s == NavState.TERMINATION:
            return Setpoint("idle")
        if s == NavState.OFFBOARD:
            return self.offboard.setpoint if self.offboard is not None else Setpoint("idle")
        if s == NavState.AUTO_TAKEOFF:
            dz = self._takeoff_alt_w - est.pos_w[2]
            if abs(dz) < TAKEOFF_DONE_M and not self.landed:
                self._hold_w = np.array([self._hold_w[0], self._hold_w[1], self._takeoff_alt_w])
                self.nav_state = NavState.AUTO_LOITER
                return self._hold(self._hold_w)
            vz = min(self.p["MPC_Z_P"] * dz, self.p["MPC_TKO_SPEED"])
            return self._hold([self._hold_w[0], self._hold_w[1], math.nan], [math.nan, math.nan, vz])
        if self.landed and s != NavState.AUTO_RTL:
            return Setpoint("idle")  # armed on the ground in a hold mode: motors at idle
        if s == NavState.AUTO_LAND:
            return self._hold([self._hold_w[0], self._hold_w[1], math.nan],
                              [math.nan, math.nan, -self.p["MPC_LAND_SPEED"]])
        if s == NavState.AUTO_RTL:
            if self.landed:
                return Setpoint("idle")
            target = np.array([self.home_w[0], self.home_w[1], self._hold_w[2]])
            if np.linalg.norm(est.pos_w[:2] - target[:2]) < 0.3:
                self._enter(NavState.AUTO_LAND)
            return self._hold(target)
        return self._hold(self._hold_w)  # POSCTL (sticks centred), ALTCTL, AUTO.LOITER
