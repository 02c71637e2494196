"""The firmware supervisor: state machine, arming, emergency stop, flying/tumbled detection.

State transitions follow crazyflie-firmware src/modules/src/supervisor_state_machine.c:
PreFlChecksNotPassed -> PreFlChecksPassed (not tumbled) -> ReadyToFly (armed) -> Flying
(isFlying) -> WarningLevelOut (commander watchdog warning, 500 ms) -> ExceptFreeFall (watchdog
timeout 2000 ms, tumbled, emergency stop or disarmed) -> Locked (until reboot). Flying ->
Landed (not flying) -> Reset -> PreFlChecksNotPassed. Motors may run only in ReadyToFly,
Flying, WarningLevelOut and Landed (supervisorAreMotorsAllowedToRun).

The info bitfield (src/modules/src/crtp_supervisor.c, supervisorGetInfoBitfield) is
bit 0 can be armed, 1 is armed, 2 auto armed, 3 can fly, 4 is flying, 5 is tumbled,
6 is locked, 7 is crashed.
"""

from __future__ import annotations

from enum import IntEnum

IS_FLYING_HYSTERESIS_S = 2.0  # supervisor.c IS_FLYING_HYSTERESIS_THRESHOLD M2T(2000)
EMERGENCY_STOP_WATCHDOG_S = 1.0  # supervisor.c DEFAULT_EMERGENCY_STOP_WATCHDOG_TIMEOUT M2T(1000)
# Tumble check (supervisor.c isTumbledCheck): body z acceleration below 0.5 g for 1 s, or below
# -0.2 g (upside down) for 0.1 s. Approximates the firmware's defaults.
TUMBLE_ACC_Z_G = 0.5
TUMBLE_TIME_S = 1.0
UPSIDE_DOWN_ACC_Z_G = -0.2
UPSIDE_DOWN_TIME_S = 0.1


class State(IntEnum):
    """supervisorState_t, in the firmware's order."""

    NOT_INITIALIZED = 0
    PRE_FL_CHECKS_NOT_PASSED = 1
    PRE_FL_CHECKS_PASSED = 2
    READY_TO_FLY = 3
    FLYING = 4
    LANDED = 5
    RESET = 6
    WARNING_LEVEL_OUT = 7
    EXCEPT_FREE_FALL = 8
    LOCKED = 9


MOTORS_ALLOWED = {State.READY_TO_FLY, State.FLYING, State.WARNING_LEVEL_OUT, State.LANDED}
CAN_FLY = {State.READY_TO_FLY, State.FLYING, State.WARNING_LEVEL_OUT}


class Supervisor:
    """Evaluated at the supervisor rate with the commander's inactivity and the motor outputs."""

    def __init__(self, auto_arm: bool = True):
        self.auto_arm = auto_arm
        self.state = State.PRE_FL_CHECKS_NOT_PASSED
        self.arm_requested = False
        self.is_flying = False
        self.is_tumbled = False
        self.crashed = False
        self.crtp_emergency_stop = False
        self.param_emergency_stop = False
        self.estop_watchdog_last_s: float | None = None
        self.wdt_warning = False
        self.wdt_timeout = False
        self._last_motors_running_s = -1e9
        self._flying_seen = False
        self._tilt_since_s: float | None = None
        self._upside_since_s: float | None = None
        self.transitions: list[tuple[float, State]] = []

    @property
    def armed(self) -> bool:
        """The ARMED condition: auto-arming platforms are always armed."""
        return self.auto_arm or self.arm_requested

    def request_arming(self, do_arm: bool) -> bool:
        """supervisorRequestArming: arming only from PreFlChecksPassed; disarm always works."""
        if do_arm:
            if self.arm_requested:
                return True
            if self.state != State.PRE_FL_CHECKS_PASSED:
                return False
            self.arm_requested = True
            return True
        self.arm_requested = False
        return True

    def request_crash_recovery(self) -> bool:
        """Clear the crashed flag unless the vehicle is still tumbled."""
        if self.is_tumbled:
            return False
        self.crashed = False
        return True

    def emergency_stop(self) -> None:
        """CRTP emergency stop: the next update goes to ExceptFreeFall, then Locked."""
        self.crtp_emergency_stop = True

    def feed_emergency_stop_watchdog(self, now_s: float) -> None:
        """Arm or feed the emergency-stop watchdog (must be fed within 1 s once started)."""
        self.estop_watchdog_last_s = now_s

    @property
    def motors_allowed(self) -> bool:
        """supervisorAreMotorsAllowedToRun."""
        return self.state in MOTORS_ALLOWED

    @property
    def can_fly(self) -> bool:
        """sys.canfly."""
        return self.state in CAN_FLY

    @property
    def is_locked(self) -> bool:
        """Locked until the twin restarts."""
        return self.state == State.LOCKED

    def info_bitfield(self) -> int:
        """supervisor.info / CMD_GET_STATE_BITFIELD."""
        bits = 0
        bits |= (self.state == State.PRE_FL_CHECKS_PASSED) << 0
        bits |= self.armed << 1
        bits |= self.auto_arm << 2
        bits |= self.can_fly << 3
        bits |= self.is_flying << 4
        bits |= self.is_tumbled << 5
        bits |= self.is_locked << 6
        bits |= self.crashed << 7
        return bits

    def update(self, now_s: float, inactivity_s: float, motors_running: bool, acc_z_g: float) -> None:
        """One supervisor step: refresh conditions, then take at most one transition."""
        if motors_running:
            self._last_motors_running_s = now_s
            self._flying_seen = True
        self.is_flying = self._flying_seen and (now_s - self._last_motors_running_s) < IS_FLYING_HYSTERESIS_S
        self._update_tumble(now_s, acc_z_g)
        self.wdt_warning = inactivity_s > 0.5
        self.wdt_timeout = inactivity_s > 2.0
        if self.estop_watchdog_last_s is not None and now_s - self.estop_watchdog_last_s > EMERGENCY_STOP_WATCHDOG_S:
            self.crtp_emergency_stop = True
        estop = self.crtp_emergency_stop or self.param_emergency_stop
        new = self._next(estop)
        if new != self.state:
            self._enter(new, now_s)

    def _update_tumble(self, now_s: float, acc_z_g: float) -> None:
        if acc_z_g < TUMBLE_ACC_Z_G:
            self._tilt_since_s = now_s if self._tilt_since_s is None else self._tilt_since_s
        else:
            self._tilt_since_s = None
        if acc_z_g < UPSIDE_DOWN_ACC_Z_G:
            self._upside_since_s = now_s if self._upside_since_s is None else self._upside_since_s
        else:
            self._upside_since_s = None
        self.is_tumbled = bool(
            (self._tilt_since_s is not None and now_s - self._tilt_since_s >= TUMBLE_TIME_S)
            or (self._upside_since_s is not None and now_s - self._upside_since_s >= UPSIDE_DOWN_TIME_S))
        if self.is_tumbled:
            self.crashed = True

    def _next(self, estop: bool) -> State:
        s = self.state
        if s in (State.PRE_FL_CHECKS_NOT_PASSED, State.PRE_FL_CHECKS_PASSED, State.READY_TO_FLY) and estop:
            return State.EXCEPT_FREE_FALL
        if s == State.PRE_FL_CHECKS_NOT_PASSED:
            return s if self.is_tumbled else State.PRE_FL_CHECKS_PASSED
        if s == State.PRE_FL_CHECKS_PASSED:
            if self.is_tumbled:
                return State.PRE_FL_CHECKS_NOT_PASSED
            return State.READY_TO_FLY if self.armed else s
        if s == State.READY_TO_FLY:
            if self.is_tumbled or not self.armed:
                return State.PRE_FL_CHECKS_NOT_PASSED
            return State.FLYING if self.is_flying else s
        if s in (State.FLYING, State.WARNING_LEVEL_OUT):
            if self.wdt_timeout or self.is_tumbled or estop or not self.armed:
                return State.EXCEPT_FREE_FALL
            if s == State.FLYING:
                if self.wdt_warning:
                    return State.WARNING_LEVEL_OUT
                return s if self.is_flying else State.LANDED
            return State.FLYING if not self.wdt_warning else s
        if s == State.LANDED:
            return State.RESET
        if s == State.RESET:
            return State.PRE_FL_CHECKS_NOT_PASSED
        if s == State.EXCEPT_FREE_FALL:
            return State.LOCKED
        return s  # LOCKED (and NOT_INITIALIZED, never used) stay

    def _enter(self, new: State, now_s: float) -> None:
        if new == State.RESET:
            self.arm_requested = False  # a landed vehicle has to be armed again
        self.state = new
        self.transitions.append((now_s, new))
