"""The safety supervisor: a small explicit state machine, pure logic, no I/O.

States: IDLE -> PREFLIGHT -> ARMED -> FLYING -> LANDING -> DONE, and FAILSAFE from any state in
which the vehicle may be powered (ARMED, FLYING, LANDING). DONE and FAILSAFE are terminal. Every
transition is recorded with its time and reason; the bridge writes them to the flight log.

The supervisor decides; it never talks to a link. :func:`preflight_refusals` says why a vehicle
must not be armed, :func:`flight_violation` why a flight must end in failsafe, and
:func:`failsafe_action` which failsafe the link must carry out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from sim.frames import tilt_rad


class State(str, Enum):
    """Supervisor states."""

    IDLE = "IDLE"
    PREFLIGHT = "PREFLIGHT"
    ARMED = "ARMED"
    FLYING = "FLYING"
    LANDING = "LANDING"
    DONE = "DONE"
    FAILSAFE = "FAILSAFE"


# Allowed transitions (anything else is a bug in the caller and raises).
_ALLOWED = {
    State.IDLE: {State.PREFLIGHT, State.DONE},
    State.PREFLIGHT: {State.ARMED, State.DONE},
    State.ARMED: {State.FLYING, State.LANDING, State.FAILSAFE, State.DONE},
    State.FLYING: {State.LANDING, State.FAILSAFE},
    State.LANDING: {State.DONE, State.FAILSAFE},
    State.DONE: set(),
    State.FAILSAFE: set(),
}
POWERED = (State.ARMED, State.FLYING, State.LANDING)


class FailsafeAction(str, Enum):
    """What the link does when the supervisor enters FAILSAFE."""

    PX4_LAND = "px4_land"  # switch PX4 to AUTO.LAND (its own offboard-loss failsafe backs it up)
    CONTROLLED_DESCENT = "controlled_descent"  # Crazyflie: level attitude, thrust below hover, then stop
    MOTOR_STOP = "motor_stop"  # Crazyflie tumbling: a descent would only make it worse
    # Crazyflie whose mocap tracking is lost: its estimate only dead-reckons now, so level and ramp
    # the thrust down open loop rather than close on that estimate
    BLIND_DESCENT = "blind_descent"


@dataclass(frozen=True)
class Geofence:
    """Axis-aligned box in the world frame (ENU, m); no floor: the ground is the floor."""

    x_min_m: float
    x_max_m: float
    y_min_m: float
    y_max_m: float
    z_max_m: float

    @classmethod
    def parse(cls, text: str) -> "Geofence":
        """Parse ``xmin,xmax,ymin,ymax,zmax`` (m)."""
        try:
            vals = [float(v) for v in text.split(",")]
        except ValueError:
            raise ValueError(f"geofence must be 5 numbers xmin,xmax,ymin,ymax,zmax, got {text!r}") from None
        if len(vals) != 5 or not all(math.isfinite(v) for v in vals):
            raise ValueError(f"geofence must be 5 finite numbers xmin,xmax,ymin,ymax,zmax, got {text!r}")
        g = cls(*vals)
        if not (g.x_min_m < g.x_max_m and g.y_min_m < g.y_max_m and g.z_max_m > 0):
            raise ValueError(f"geofence needs xmin < xmax, ymin < ymax and zmax > 0, got {text!r}")
        return g

    def contains(self, pos_w: np.ndarray) -> bool:
        """True if ``pos_w`` (3,) m lies inside the fence."""
        return self.breach(pos_w) is None

    def breach(self, pos_w: np.ndarray) -> str | None:
        """Which face ``pos_w`` (3,) has crossed, as text, or None inside."""
        x, y, z = (float(v) for v in pos_w)
        if x < self.x_min_m:
            return f"x={x:.2f} m < xmin={self.x_min_m:g}"
        if x > self.x_max_m:
            return f"x={x:.2f} m > xmax={self.x_max_m:g}"
        if y < self.y_min_m:
            return f"y={y:.2f} m < ymin={self.y_min_m:g}"
        if y > self.y_max_m:
            return f"y={y:.2f} m > ymax={self.y_max_m:g}"
        if z > self.z_max_m:
            return f"z={z:.2f} m > zmax={self.z_max_m:g}"
        return None


@dataclass(frozen=True)
class Limits:
    """Thresholds of the supervisor. Defaults suit both the Crazyflie and the x500."""

    control_period_s: float
    battery_min_v: float
    geofence: Geofence | None = None
    tilt_max_rad: float = math.radians(75.0)  # in flight (hover policies train from 60 deg throws)
    tumble_rad: float = math.radians(90.0)  # beyond this a descent is pointless: stop motors
    body_rate_max_rad_s: float = 12.0  # |omega| in flight; the bridge sets 2 x |spec's rate range|
    # Telemetry older than this many control periods -> failsafe, but never less than the floor
    # (a 500 Hz loop on a 100 Hz radio). Radio links lose packets in bursts; 10 periods at 100 Hz
    # is a fifth of the Crazyflie's own 500 ms setpoint watchdog (commander.c) and a tenth of
    # PX4's default offboard-loss timeout COM_OF_LOSS_T (1 s).
    stale_periods: float = 10.0
    stale_min_s: float = 0.05
    # This many missed deadlines in a row -> failsafe (200 ms of a degraded loop at 100 Hz).
    missed_deadlines_max: int = 20
    level_max_rad: float = math.radians(10.0)  # preflight: level
    ground_height_max_m: float = 0.15  # preflight: on the ground (z of the estimate)
    ground_speed_max_mps: float = 0.25  # preflight: at rest
    # Mission time limits (firmware_bridge.mission), s after takeoff; None: not checked.
    transit_limit_s: float | None = None  # by then the vehicle must have reached its target once
    flight_time_max_s: float | None = None  # total flight

    @property
    def stale_s(self) -> float:
        """Telemetry age (s) beyond which the state counts as stale."""
        return max(self.stale_periods * self.control_period_s, self.stale_min_s)


@dataclass(frozen=True)
class StateSample:
    """One state estimate as the supervisor sees it (world ENU, body FLU, SI)."""

    pos_w: np.ndarray
    vel_w: np.ndarray
    quat_wb: np.ndarray
    omega_b: np.ndarray
    age_s: float  # now - arrival of this sample (monotonic clock)


@dataclass(frozen=True)
class PreflightInputs:
    """Everything the refuse-to-arm checks look at."""

    spec_vehicle: str  # spec.vehicle
    spec_firmware: str  # firmware of the spec's vehicle file
    spec_action_mode: str
    link_firmware: str  # what the link found at the other end
    link_action_modes: tuple[str, ...]  # action modes the link can carry to that vehicle
    state: StateSample | None  # None: no estimate received at all
    battery_v: float | None  # None: no battery reading
    handover: bool = False  # explicit in-air hand-over: skip the level-and-on-ground check
    mission_refusals: tuple[str, ...] = ()  # broken mission rules (firmware_bridge.mission.check_mission)
    param_refusals: tuple[str, ...] = ()  # firmware parameters the policy cannot fly (firmware_bridge.px4_preflight)
    mocap_refusals: tuple[str, ...] = ()  # --mocap given but the body is not tracked (firmware_bridge.mocap)


@dataclass(frozen=True)
class Transition:
    """One recorded state change."""

    t_s: float
    src: State
    dst: State
    reason: str


def _finite_state(s: StateSample) -> bool:
    return all(np.all(np.isfinite(np.asarray(a, dtype=np.float64))) for a in (s.pos_w, s.vel_w, s.quat_wb, s.omega_b))


def preflight_refusals(inp: PreflightInputs, limits: Limits) -> list[str]:
    """Reasons (empty list: may arm) why this vehicle must not be armed with this policy."""
    reasons: list[str] = []
    if inp.spec_firmware != inp.link_firmware:
        reasons.append(
            f"wrong vehicle: the policy was trained for {inp.spec_vehicle!r} ({inp.spec_firmware}) "
            f"but the link reaches a {inp.link_firmware} vehicle"
        )
    if inp.spec_action_mode not in inp.link_action_modes:
        reasons.append(
            f"the link cannot carry action mode {inp.spec_action_mode!r} to this vehicle "
            f"(it carries: {', '.join(inp.link_action_modes) or 'none'})"
        )
    s = inp.state
    if s is None:
        reasons.append("no state estimate received")
    elif not _finite_state(s):
        reasons.append("state estimate is not finite (NaN/inf)")
    elif s.age_s > limits.stale_s:
        reasons.append(f"state estimate is stale: {1e3 * s.age_s:.0f} ms old (limit {1e3 * limits.stale_s:.0f} ms)")
    elif not inp.handover:
        tilt = float(tilt_rad(np.asarray(s.quat_wb)))
        speed = float(np.linalg.norm(s.vel_w))
        z = float(np.asarray(s.pos_w)[2])
        if tilt > limits.level_max_rad:
            reasons.append(
                f"not level: tilt {math.degrees(tilt):.1f} deg > {math.degrees(limits.level_max_rad):.0f} deg "
                "(use --handover to take over a vehicle in the air)")
        if z > limits.ground_height_max_m or speed > limits.ground_speed_max_mps:
            reasons.append(
                f"not on the ground at rest: z={z:.2f} m, speed {speed:.2f} m/s "
                "(use --handover to take over a vehicle in the air)")
    if inp.battery_v is None or not math.isfinite(inp.battery_v):
        reasons.append("no battery reading")
    elif inp.battery_v < limits.battery_min_v:
        reasons.append(f"battery low: {inp.battery_v:.2f} V < {limits.battery_min_v:.2f} V")
    reasons.extend(inp.mission_refusals)
    reasons.extend(inp.param_refusals)
    reasons.extend(inp.mocap_refusals)
    return reasons


def flight_violation(s: StateSample | None, limits: Limits, missed_in_row: int = 0,
                     link_alive: bool = True, t_flight_s: float | None = None,
                     target_reached: bool = True, t_transit_s: float | None = None) -> str | None:
    """The first reason (or None) why a flight must go to failsafe, in priority order;
    ``t_flight_s``: seconds since takeoff; ``t_transit_s``: seconds of transit so far (since the
    policy took over; default ``t_flight_s``); ``target_reached``: the vehicle has been at its target."""
    if not link_alive:
        return "link lost"
    if s is None:
        return "no state estimate"
    if not _finite_state(s):
        return "non-finite state estimate"
    if s.age_s > limits.stale_s:
        return f"stale telemetry: {1e3 * s.age_s:.0f} ms old (limit {1e3 * limits.stale_s:.0f} ms)"
    if limits.geofence is not None:
        where = limits.geofence.breach(np.asarray(s.pos_w))
        if where is not None:
            return f"geofence breach: {where}"
    tilt = float(tilt_rad(np.asarray(s.quat_wb)))
    if tilt > limits.tilt_max_rad:
        return f"tilt {math.degrees(tilt):.0f} deg > limit {math.degrees(limits.tilt_max_rad):.0f} deg"
    rate = float(np.linalg.norm(s.omega_b))
    if rate > limits.body_rate_max_rad_s:
        return f"body rate {rate:.1f} rad/s > limit {limits.body_rate_max_rad_s:.1f} rad/s"
    if missed_in_row >= limits.missed_deadlines_max:
        return f"{missed_in_row} control deadlines missed in a row (limit {limits.missed_deadlines_max})"
    t_transit_s = t_flight_s if t_transit_s is None else t_transit_s
    if limits.transit_limit_s is not None and not target_reached and t_transit_s is not None \
            and t_transit_s > limits.transit_limit_s:
        return f"transit limit: target not reached after {t_transit_s:.1f} s of transit (limit {limits.transit_limit_s:.1f} s)"
    if limits.flight_time_max_s is not None and t_flight_s is not None and t_flight_s > limits.flight_time_max_s:
        return f"flight time limit: {t_flight_s:.1f} s > {limits.flight_time_max_s:.1f} s"
    return None


def failsafe_action(firmware: str, s: StateSample | None, limits: Limits,
                    tracking_lost: bool = False) -> FailsafeAction:
    """Which failsafe to carry out: PX4 lands itself (without a position source EKF2 drops to
    a descent on its own); a Crazyflie descends, blind if its mocap tracking is lost, or stops if
    tumbling."""
    if firmware == "px4":
        return FailsafeAction.PX4_LAND
    if s is not None and _finite_state(s) and float(tilt_rad(np.asarray(s.quat_wb))) > limits.tumble_rad:
        return FailsafeAction.MOTOR_STOP
    return FailsafeAction.BLIND_DESCENT if tracking_lost else FailsafeAction.CONTROLLED_DESCENT


@dataclass
class Supervisor:
    """The state machine. Methods move it and record why; illegal moves raise RuntimeError."""

    limits: Limits
    state: State = State.IDLE
    transitions: list[Transition] = field(default_factory=list)
    failsafe_reason: str | None = None
    refusals: list[str] = field(default_factory=list)

    def _go(self, t_s: float, dst: State, reason: str) -> Transition:
        if dst not in _ALLOWED[self.state]:
            raise RuntimeError(f"supervisor: illegal transition {self.state.value} -> {dst.value} ({reason})")
        tr = Transition(t_s, self.state, dst, reason)
        self.transitions.append(tr)
        self.state = dst
        return tr

    @property
    def terminal(self) -> bool:
        """True in DONE or FAILSAFE."""
        return self.state in (State.DONE, State.FAILSAFE)

    def start_preflight(self, t_s: float) -> Transition:
        """IDLE -> PREFLIGHT: the link is up, checks are about to run."""
        return self._go(t_s, State.PREFLIGHT, "link connected, running preflight checks")

    def request_arm(self, t_s: float, inputs: PreflightInputs) -> list[str]:
        """PREFLIGHT -> ARMED if every check passes; else -> DONE and return the refusals."""
        reasons = preflight_refusals(inputs, self.limits)
        if reasons:
            self.refusals = reasons
            self._go(t_s, State.DONE, "refused to arm: " + "; ".join(reasons))
        else:
            self._go(t_s, State.ARMED, "preflight checks passed")
        return reasons

    def takeoff(self, t_s: float, reason: str = "taking off") -> Transition:
        """ARMED -> FLYING."""
        return self._go(t_s, State.FLYING, reason)

    def land(self, t_s: float, reason: str) -> Transition:
        """ARMED/FLYING -> LANDING (a normal end of flight)."""
        return self._go(t_s, State.LANDING, reason)

    def landed(self, t_s: float, reason: str = "landed, motors stopped") -> Transition:
        """LANDING -> DONE."""
        return self._go(t_s, State.DONE, reason)

    def abort(self, t_s: float, reason: str) -> Transition:
        """End before anything was powered: IDLE/PREFLIGHT -> DONE."""
        return self._go(t_s, State.DONE, reason)

    def check(self, t_s: float, s: StateSample | None, missed_in_row: int = 0,
              link_alive: bool = True, t_flight_s: float | None = None,
              target_reached: bool = True, t_transit_s: float | None = None) -> str | None:
        """In ARMED/FLYING/LANDING: go to FAILSAFE on any violation; return its reason."""
        if self.state not in POWERED:
            return None
        reason = flight_violation(s, self.limits, missed_in_row, link_alive, t_flight_s, target_reached, t_transit_s)
        if reason is not None:
            self.failsafe(t_s, reason)
        return reason

    def check_tracking(self, t_s: float, lost_reason: str | None) -> str | None:
        """The mocap tracking input (firmware_bridge.mocap.MocapStream.lost_reason): in
        ARMED/FLYING/LANDING a loss goes to FAILSAFE; return its reason."""
        if self.state not in POWERED or lost_reason is None:
            return None
        self.failsafe(t_s, lost_reason)
        return lost_reason

    def failsafe(self, t_s: float, reason: str) -> Transition | None:
        """Enter FAILSAFE (from a powered state; elsewhere: end in DONE, nothing to make safe)."""
        if self.terminal:
            return None
        if self.state not in POWERED:
            return self._go(t_s, State.DONE, f"aborted before arming: {reason}")
        self.failsafe_reason = reason
        return self._go(t_s, State.FAILSAFE, reason)
