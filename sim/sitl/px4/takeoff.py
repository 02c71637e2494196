"""PX4's smooth takeoff (spool-up, then a climb-rate ramp), as the twin's position control runs it.

Copied from PX4-Autopilot src/modules/mc_pos_control/Takeoff/Takeoff.cpp (TakeoffHandling) and
its use in src/modules/mc_pos_control/MulticopterPositionControl.cpp:

* states disarmed -> spoolup -> ready_for_takeoff -> rampup -> flight; arming starts the
  spool-up, which lasts COM_SPOOLUP_TIME (a hysteresis on ``armed``); ready_for_takeoff waits
  for a setpoint that wants to go up (a position above, or a climb velocity/acceleration);
  landing detected in flight goes back to ready_for_takeoff; disarming to disarmed. A mode
  without climb-rate control (OFFBOARD body rates) skips straight to flight.
* before rampup the position controller holds zero thrust and resets its integrators; during
  rampup the upward velocity limit rises linearly over MPC_TKO_RAMP_T from
  -g / MPC_Z_VEL_P_ACC (the value that makes the velocity loop ask for zero thrust) to the
  climb speed; below ``flight`` the thrust floor is 0 instead of MPC_THR_MIN.
"""

from __future__ import annotations

from enum import IntEnum

from sim.vehicle import GRAVITY_MPS2


class TakeoffState(IntEnum):
    """TakeoffState in Takeoff.hpp (ordered: comparisons mean 'before/after')."""

    DISARMED = -1
    SPOOLUP = 0
    READY_FOR_TAKEOFF = 1
    RAMPUP = 2
    FLIGHT = 3


class TakeoffHandling:
    """The takeoff state machine and its climb-rate ramp (ENU: up is positive)."""

    def __init__(self, params):
        self.p = params
        self.state = TakeoffState.DISARMED
        self.progress = 0.0
        self._armed_since: float | None = None

    def update_state(self, now_s: float, armed: bool, landed: bool, want_takeoff: bool, skip: bool) -> TakeoffState:
        """TakeoffHandling::updateTakeoffState."""
        if armed and self._armed_since is None:
            self._armed_since = now_s
        if not armed:
            self._armed_since = None
        spooled = armed and now_s - self._armed_since >= self.p["COM_SPOOLUP_TIME"] - 1e-9
        s = self.state
        if s == TakeoffState.DISARMED and armed:
            s = TakeoffState.SPOOLUP
        if s == TakeoffState.SPOOLUP and spooled:
            s = TakeoffState.READY_FOR_TAKEOFF
        if s == TakeoffState.READY_FOR_TAKEOFF and want_takeoff:
            s = TakeoffState.RAMPUP
            self.progress = 0.0
        if s == TakeoffState.RAMPUP and self.progress >= 1.0:
            s = TakeoffState.FLIGHT
        if s == TakeoffState.FLIGHT and landed:
            s = TakeoffState.READY_FOR_TAKEOFF
        if armed and skip:
            s = TakeoffState.FLIGHT
        if not armed:
            s = TakeoffState.DISARMED
        self.state = s
        return s

    def ramp_initial_mps(self) -> float:
        """generateInitialRampValue: the climb-rate limit at which velocity control asks for no thrust."""
        return -GRAVITY_MPS2 / max(self.p["MPC_Z_VEL_P_ACC"], 0.01)

    def update_ramp(self, dt_s: float, climb_speed_mps: float) -> float:
        """TakeoffHandling::updateRamp: the upward velocity limit for this cycle, m/s."""
        if self.state < TakeoffState.RAMPUP:
            return self.ramp_initial_mps()
        if self.state == TakeoffState.RAMPUP:
            ramp_s = self.p["MPC_TKO_RAMP_T"]
            self.progress = self.progress + dt_s / ramp_s if ramp_s > dt_s else 1.0
            if self.progress < 1.0:
                v0 = self.ramp_initial_mps()
                return v0 + self.progress * (climb_speed_mps - v0)
        return climb_speed_mps
