"""Multicopter controllers approximating PX4's cascade, and the controller interface.

Everything here works in quadhil's frames (world ENU, body FLU, SI); the MAVLink side converts
PX4's NED/FRD setpoints with ``sim.frames`` before they reach a controller. The cascade's
gains are PX4 parameters (``params.ParamStore``) and follow changes made over PARAM_SET:

* position (src/modules/mc_pos_control/PositionControl/PositionControl.cpp): P on position
  (MPC_XY_P, MPC_Z_P) -> velocity setpoint (+ feed-forward), limited by MPC_XY_VEL_MAX,
  MPC_Z_VEL_MAX_UP/DN; PID on velocity (MPC_*_VEL_{P,I,D}_ACC) -> acceleration; acceleration
  -> thrust direction with tilt limit MPC_TILTMAX_AIR and collective thrust scaled by the
  hover thrust MPC_THR_HOVER (PositionControl::_accelerationControl), clamped to
  [MPC_THR_MIN, MPC_THR_MAX]; thrust direction + yaw -> attitude (ControlMath::bodyzToAttitude).
* attitude (src/modules/mc_att_control/AttitudeControl/AttitudeControl.cpp): reduced
  attitude (tilt) first, yaw blended with MC_YAW_WEIGHT, P gains MC_{ROLL,PITCH,YAW}_P (yaw
  gain divided by the yaw weight, as setProportionalGain does), rate limits MC_*RATE_MAX.
* rate (src/modules/mc_rate_control): ``sim.rate_control.RateController`` with the vehicle
  file's gains, re-scaled when MC_*RATE_{P,I,D} / MC_*_INT_LIM change.

Collective thrust: SET_ATTITUDE_TARGET.thrust (0..1) is PX4's normalized collective thrust.
The allocator turns it (with the torques) into a normalized thrust per motor, and the output
module turns that into the motor command with PX4's thrust model THR_MDL_FAC
(src/lib/mixer_module/functions/FunctionMotors.hpp: rel_thrust = f u^2 + (1 - f) u, solved for
u); the motor then produces the vehicle's own thrust curve of u (the gz x500: 8.55 u^2 N). Only
with THR_MDL_FAC matched to that curve (1.0 for the x500) is the collective linear in thrust,
as ``sim.contract.act_to_command``'s ``collective_fraction`` assumes; with PX4's default 0 a
collective c gives c^2 of the maximum thrust on the x500.

Smooth takeoff (``takeoff.py``: spool-up COM_SPOOLUP_TIME, climb-rate ramp MPC_TKO_RAMP_T) and
the hover-thrust estimator (``hover_thrust.py``) shape position control as in mc_pos_control.

A controller is anything with ``reset(est)`` and ``motor_thrust_n(est, setpoint, dt_s)``
returning four motor thrusts (N, PX4 motor order): the twin calls it at the rate-loop rate.
An onboard neural controller (PX4 mc_nn_control) is one more class with that interface.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from sim.frames import quat_conjugate, quat_multiply, quat_normalize, quat_to_euler, quat_to_rotmat, rotmat_to_quat
from sim.rate_control import RateController
from sim.vehicle import GRAVITY_MPS2, Vehicle
from sim.sitl.px4.hover_thrust import HoverThrustEstimator
from sim.sitl.px4.params import ParamStore
from sim.sitl.px4.takeoff import TakeoffHandling, TakeoffState

_NAN3 = (math.nan, math.nan, math.nan)


@dataclass
class Estimate:
    """The state estimate controllers see: world ENU, body FLU, SI, 1-D arrays."""

    pos_w: np.ndarray
    vel_w: np.ndarray
    quat_wb: np.ndarray
    omega_b: np.ndarray

    @property
    def yaw_rad(self) -> float:
        """Heading in ENU (0 = east, counter-clockwise positive), rad."""
        return float(quat_to_euler(self.quat_wb)[2])


@dataclass
class Setpoint:
    """What the commander asks the controller for. kind selects the loop that is closed:

    * ``idle``: motors stopped (disarmed, or armed and landed in a hold mode: spinning at idle)
    * ``rates``: body rates ``rate_b`` (FLU, rad/s) + ``thrust_fraction`` of max total thrust
    * ``attitude``: ``quat_wb`` (body-to-ENU) + ``thrust_fraction``, yaw rate feed-forward
    * ``trajectory``: ``pos_w``/``vel_w``/``acc_w`` (ENU; NaN = not controlled) + ``yaw_rad``
      (ENU heading, NaN = hold) + ``yawspeed_rad_s``
    """

    kind: str = "idle"
    rate_b: np.ndarray = field(default_factory=lambda: np.zeros(3))
    thrust_fraction: float = 0.0
    quat_wb: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0, 0.0]))
    pos_w: np.ndarray = field(default_factory=lambda: np.array(_NAN3))
    vel_w: np.ndarray = field(default_factory=lambda: np.array(_NAN3))
    acc_w: np.ndarray = field(default_factory=lambda: np.array(_NAN3))
    yaw_rad: float = math.nan
    yawspeed_rad_s: float = math.nan


class FlightController(Protocol):
    """Interface of the twin's flight controller (the PX4 cascade, or an onboard policy)."""

    name: str

    def reset(self, est: Estimate) -> None:
        """Forget integrators and latch holds at the current state."""

    def motor_thrust_n(self, est: Estimate, sp: Setpoint, dt_s: float) -> np.ndarray:
        """(4,) motor thrust commands in N, PX4 motor order, for one rate-loop tick of dt_s."""


def thrust_model_to_esc(u: np.ndarray, fac: float) -> np.ndarray:
    """PX4's THR_MDL_FAC model (FunctionMotors.hpp): normalized thrust u = fac e^2 + (1 - fac) e
    -> motor command e, both in [0, 1]."""
    u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
    if fac <= 0.0:
        return u
    b = 1.0 - fac
    return (-b + np.sqrt(b * b + 4.0 * fac * u)) / (2.0 * fac)


def _quat_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shortest rotation taking unit vector a to unit vector b (world frame), (w, x, y, z)."""
    c = float(np.dot(a, b))
    axis = np.cross(a, b)
    if c < -1.0 + 1e-9:  # opposite: pi about any axis orthogonal to a
        ortho = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(ortho) < 1e-6:
            ortho = np.cross(a, [0.0, 1.0, 0.0])
        return np.concatenate([[0.0], ortho / np.linalg.norm(ortho)])
    return quat_normalize(np.concatenate([[1.0 + c], axis]))


def attitude_from_thrust_dir(body_z_w: np.ndarray, yaw_rad: float) -> np.ndarray:
    """Body-to-world quaternion whose z axis is ``body_z_w`` (ENU, up) and heading ``yaw_rad``
    (ControlMath::bodyzToAttitude, written for FLU/ENU)."""
    z = body_z_w / np.linalg.norm(body_z_w)
    x_c = np.array([math.cos(yaw_rad), math.sin(yaw_rad), 0.0])
    y = np.cross(z, x_c)
    if np.linalg.norm(y) < 1e-6:  # thrust horizontal along the heading: keep any valid frame
        y = np.array([-math.sin(yaw_rad), math.cos(yaw_rad), 0.0])
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    return rotmat_to_quat(np.stack([x, y, z], axis=1))


class AttitudeControl:
    """PX4 AttitudeControl: quaternion attitude error -> body-rate setpoint (FLU, rad/s)."""

    def __init__(self, params: ParamStore):
        self.p = params

    def update(self, q: np.ndarray, qd: np.ndarray, yawspeed_ff: float = 0.0) -> np.ndarray:
        """Rate setpoint that turns attitude q toward qd (both body-to-ENU quaternions)."""
        p = self.p
        yaw_w = min(max(p["MC_YAW_WEIGHT"], 0.0), 1.0)
        gains = np.array([p["MC_ROLL_P"], p["MC_PITCH_P"], p["MC_YAW_P"]])
        if yaw_w > 1e-4:
            gains[2] /= yaw_w
        e_z = quat_to_rotmat(q)[:, 2]
        e_z_d = quat_to_rotmat(qd)[:, 2]
        qd_red = _quat_between(e_z, e_z_d)
        if abs(qd_red[1]) > 1 - 1e-5 or abs(qd_red[2]) > 1 - 1e-5:
            qd_red = qd  # thrust exactly opposite: full attitude control handles it
        else:
            qd_red = quat_multiply(qd_red, q)
        q_mix = quat_multiply(quat_conjugate(qd_red), qd)
        q_mix = q_mix * (1.0 if q_mix[0] >= 0 else -1.0)
        w = min(max(q_mix[0], -1.0), 1.0)
        z = min(max(q_mix[3], -1.0), 1.0)
        qd_full = quat_multiply(qd_red, np.array([math.cos(yaw_w * math.acos(w)), 0.0, 0.0,
                                                  math.sin(yaw_w * math.asin(z))]))
        qe = quat_multiply(quat_conjugate(q), qd_full)
        eq = 2.0 * qe[1:] * (1.0 if qe[0] >= 0 else -1.0)
        rate_sp = eq * gains
        if math.isfinite(yawspeed_ff):
            rate_sp = rate_sp + quat_to_rotmat(q).T[:, 2] * yawspeed_ff  # world-z rate in body
        lim = np.radians([p["MC_ROLLRATE_MAX"], p["MC_PITCHRATE_MAX"], p["MC_YAWRATE_MAX"]])
        return np.clip(rate_sp, -lim, lim)


class PositionControl:
    """PX4 PositionControl: position/velocity/acceleration setpoints -> thrust vector (ENU)."""

    def __init__(self, params: ParamStore):
        self.p = params
        self.vel_int = np.zeros(3)
        self.prev_vel = None

    def reset(self) -> None:
        """Zero the velocity integrator."""
        self.vel_int[:] = 0.0
        self.prev_vel = None

    def update_hover_thrust(self, new_hover: float, old_hover: float) -> None:
        """PositionControl::updateHoverThrust: move the integrator so that the collective stays
        the same when the hover thrust changes (collective = hover (g + a_z) / g)."""
        if old_hover > 0 and new_hover > 0 and new_hover != old_hover:
            a_z = self.last_acc_z
            self.vel_int[2] += (GRAVITY_MPS2 + a_z) * old_hover / new_hover - (GRAVITY_MPS2 + a_z)

    last_acc_z = 0.0

    def update(self, est: Estimate, sp: Setpoint, dt_s: float, hover: float | None = None,
               climb_limit_mps: float | None = None, thrust_floor: float | None = None,
               tilt_max_deg: float | None = None) -> tuple[np.ndarray, float]:
        """(unit thrust direction ENU, collective thrust fraction) for the setpoint. ``hover``
        overrides MPC_THR_HOVER (the hover-thrust estimate), ``climb_limit_mps`` lowers the
        upward velocity limit (takeoff ramp), ``thrust_floor`` replaces MPC_THR_MIN (0 before
        the takeoff is complete)."""
        p = self.p
        g = GRAVITY_MPS2
        kp = np.array([p["MPC_XY_P"], p["MPC_XY_P"], p["MPC_Z_P"]])
        pos_err = sp.pos_w - est.pos_w
        vel_from_pos = np.where(np.isfinite(pos_err), pos_err * kp, 0.0)
        vel_ff = np.where(np.isfinite(sp.vel_w), sp.vel_w, 0.0)
        vel_sp = vel_from_pos + vel_ff
        xy = np.linalg.norm(vel_sp[:2])
        if xy > p["MPC_XY_VEL_MAX"]:
            vel_sp[:2] *= p["MPC_XY_VEL_MAX"] / xy
        up_max = p["MPC_Z_VEL_MAX_UP"] if climb_limit_mps is None else min(climb_limit_mps, p["MPC_Z_VEL_MAX_UP"])
        vel_sp[2] = min(max(vel_sp[2], -p["MPC_Z_VEL_MAX_DN"]), up_max) if up_max >= -p["MPC_Z_VEL_MAX_DN"] \
            else up_max
        vel_err = vel_sp - est.vel_w
        vel_dot = np.zeros(3) if self.prev_vel is None else (est.vel_w - self.prev_vel) / dt_s
        self.prev_vel = est.vel_w.copy()
        kvp = np.array([p["MPC_XY_VEL_P_ACC"], p["MPC_XY_VEL_P_ACC"], p["MPC_Z_VEL_P_ACC"]])
        kvi = np.array([p["MPC_XY_VEL_I_ACC"], p["MPC_XY_VEL_I_ACC"], p["MPC_Z_VEL_I_ACC"]])
        kvd = np.array([p["MPC_XY_VEL_D_ACC"], p["MPC_XY_VEL_D_ACC"], p["MPC_Z_VEL_D_ACC"]])
        acc_sp = vel_err * kvp + self.vel_int - vel_dot * kvd
        acc_sp += np.where(np.isfinite(sp.acc_w), sp.acc_w, 0.0)
        hover = p["MPC_THR_HOVER"] if hover is None else hover
        floor = p["MPC_THR_MIN"] if thrust_floor is None else thrust_floor
        # PositionControl::_velocityControl anti-windup: no vertical integration while the thrust
        # sits at a limit and the error pushes further into it
        collective_raw = hover * (g + acc_sp[2]) / g
        int_err = vel_err.copy()
        if (collective_raw <= floor and int_err[2] <= 0) or (collective_raw >= p["MPC_THR_MAX"] and int_err[2] >= 0):
            int_err[2] = 0.0
        self.vel_int = np.clip(self.vel_int + int_err * kvi * dt_s, -g, g)
        self.last_acc_z = float(acc_sp[2])
        # _accelerationControl: tilt from horizontal acceleration against gravity
        body_z = np.array([acc_sp[0], acc_sp[1], g])
        body_z /= np.linalg.norm(body_z)
        tilt_max = math.radians(p["MPC_TILTMAX_AIR"] if tilt_max_deg is None else tilt_max_deg)
        tilt = math.acos(min(max(body_z[2], -1.0), 1.0))
        if tilt > tilt_max:
            h = body_z[:2] / max(np.linalg.norm(body_z[:2]), 1e-9)
            body_z = np.array([h[0] * math.sin(tilt_max), h[1] * math.sin(tilt_max), math.cos(tilt_max)])
        collective = hover * (g + acc_sp[2]) / g / max(body_z[2], 1e-3)
        collective = min(max(collective, floor), p["MPC_THR_MAX"])
        return body_z, collective


class Px4Cascade:
    """PX4's multicopter cascade: position -> attitude (at 1/``outer_every`` of the rate-loop
    rate) -> rate loop (every call), producing motor thrusts."""

    name = "px4"

    def __init__(self, vehicle: Vehicle, params: ParamStore, outer_every: int = 2):
        self.vehicle = vehicle
        self.p = params
        self.outer_every = outer_every
        self.rate = RateController(vehicle, 1)
        # N*m per unit of PX4's normalized torque, per axis (sim.vehicle.px4_torque_per_unit_nm)
        self._torque_per_unit = vehicle.rate_controller.torque_per_unit_nm
        self.att = AttitudeControl(params)
        self.pos = PositionControl(params)
        self._tick = 0
        self._rate_sp = np.zeros(3)
        self._thrust_fraction = 0.0
        self._yaw_hold = 0.0
        self._last_kind = "idle"
        self.takeoff = TakeoffHandling(params)
        self.hte = HoverThrustEstimator(params)
        self.hover_thrust = float(params["MPC_THR_HOVER"])
        self._climb_limit_mps: float | None = None
        self.climb_rate_controlled = False
        self.vz_setpoint_mps = math.nan
        self.ground_contact = False
        self.landed = True
        self.apply_rate_gains()
        params.on_change(lambda name, value: self.apply_rate_gains() if name.startswith("MC_") else None)

    def apply_rate_gains(self) -> None:
        """Load MC_*RATE_P/I/D and MC_*_INT_LIM into the rate loop (SI through the vehicle)."""
        p = self.p
        kp = np.array([p["MC_ROLLRATE_P"], p["MC_PITCHRATE_P"], p["MC_YAWRATE_P"]])
        ki = np.array([p["MC_ROLLRATE_I"], p["MC_PITCHRATE_I"], p["MC_YAWRATE_I"]])
        kd = np.array([p["MC_ROLLRATE_D"], p["MC_PITCHRATE_D"], p["MC_YAWRATE_D"]])
        lim = np.array([p["MC_RR_INT_LIM"], p["MC_PR_INT_LIM"], p["MC_YR_INT_LIM"]])
        self.rate.kp = kp * self._torque_per_unit
        self.rate.ki = ki * self._torque_per_unit
        self.rate.kd = kd * self._torque_per_unit
        self.rate.integral_limit = np.divide(lim, ki, out=np.full(3, np.inf), where=ki > 0)

    @property
    def throttle(self) -> float:
        """The collective thrust setpoint (0..1) the land detector watches."""
        return self._thrust_fraction

    def update_status(self, now_s: float, dt_s: float, armed: bool, landed: bool, sp: Setpoint, est: Estimate,
                      height_m: float, accel_up_mps2: float, ground_contact: bool = False) -> None:
        """Once per commander cycle: the takeoff state machine, its climb-rate ramp and the
        hover-thrust estimate (MulticopterPositionControl::Run's order). ``ground_contact`` is
        the land detector's first stage."""
        self.ground_contact = ground_contact
        self.landed = landed
        pos_z, vel_z, acc_z = (float(v[2]) for v in (sp.pos_w, sp.vel_w, sp.acc_w))
        self.climb_rate_controlled = sp.kind == "trajectory" and any(math.isfinite(v) for v in (pos_z, vel_z, acc_z))
        self.vz_setpoint_mps = vel_z if self.climb_rate_controlled and math.isfinite(vel_z) else (
            self.p["MPC_Z_P"] * (pos_z - est.pos_w[2]) if self.climb_rate_controlled and math.isfinite(pos_z)
            else math.nan)
        want_takeoff = armed and ((math.isfinite(pos_z) and pos_z > est.pos_w[2]) or (math.isfinite(vel_z) and vel_z > 0)
                                  or (math.isfinite(acc_z) and acc_z > 0))
        self.takeoff.update_state(now_s, armed, landed, want_takeoff, skip=not self.climb_rate_controlled)
        self._climb_limit_mps = self.takeoff.update_ramp(dt_s, self.p["MPC_Z_VEL_MAX_UP"])
        hover = self.hte.update(now_s, dt_s, armed, landed, height_m, self._thrust_fraction, accel_up_mps2)
        if hover != self.hover_thrust:
            self.pos.update_hover_thrust(hover, self.hover_thrust)
            self.hover_thrust = hover

    def reset(self, est: Estimate) -> None:
        """Zero integrators, hold the current heading."""
        self.rate.reset(omega_b=est.omega_b[None, :])
        self.pos.reset()
        self._yaw_hold = est.yaw_rad
        self._tick = 0

    def motor_thrust_n(self, est: Estimate, sp: Setpoint, dt_s: float) -> np.ndarray:
        """One rate-loop tick; the outer loops run every ``outer_every`` ticks."""
        if sp.kind != self._last_kind:
            if sp.kind == "idle" or self._last_kind == "idle":
                self.reset(est)
            self._last_kind = sp.kind
        if sp.kind == "idle":
            self._thrust_fraction = 0.0
            return np.zeros(4)
        if self._tick % self.outer_every == 0:
            self._outer(est, sp, dt_s * self.outer_every)
        self._tick += 1
        collective_n = self._thrust_fraction * 4.0 * self.vehicle.max_thrust_n
        thrust = self.rate.update(est.omega_b[None, :], self._rate_sp[None, :], np.array([collective_n]), dt_s)
        if self.landed:  # mc_rate_control RateControl::update: no integration while landed
            self.rate.integral[:] = 0.0
        # per-motor normalized thrust -> motor command through THR_MDL_FAC -> the motor's own curve
        esc = thrust_model_to_esc(thrust[0] / self.vehicle.max_thrust_n, self.p["THR_MDL_FAC"])
        return np.asarray(self.vehicle.command_to_thrust(esc), dtype=np.float64)

    def _outer(self, est: Estimate, sp: Setpoint, dt_s: float) -> None:
        if sp.kind == "rates":
            self._rate_sp = np.asarray(sp.rate_b, dtype=np.float64)
            self._thrust_fraction = float(np.clip(sp.thrust_fraction, 0.0, 1.0))
            self._yaw_hold = est.yaw_rad
            return
        if sp.kind == "attitude":
            self._rate_sp = self.att.update(est.quat_wb, sp.quat_wb, sp.yawspeed_rad_s)
            self._thrust_fraction = float(np.clip(sp.thrust_fraction, 0.0, 1.0))
            self._yaw_hold = est.yaw_rad
            return
        # trajectory
        if math.isfinite(sp.yaw_rad):
            self._yaw_hold = sp.yaw_rad
        elif math.isfinite(sp.yawspeed_rad_s):
            self._yaw_hold += sp.yawspeed_rad_s * dt_s
        if self.takeoff.state < TakeoffState.RAMPUP:
            # not taken off: zero thrust, no corrections, integrators held at zero
            self.pos.reset()
            self._rate_sp = np.zeros(3)
            self._thrust_fraction = 0.0
            self._yaw_hold = est.yaw_rad
            return
        if self.takeoff.state >= TakeoffState.FLIGHT and self.ground_contact:
            # MulticopterPositionControl: flying but ground contact -> an acceleration setpoint of
            # 100 m/s^2 down (no thrust) and the integrators reset, so the land detector can go on
            self.pos.reset()
            self._rate_sp = np.zeros(3)
            self._thrust_fraction = 0.0
            self.vz_setpoint_mps = -100.0
            return
        floor = None if self.takeoff.state >= TakeoffState.FLIGHT else 0.0
        # below flight the tilt is limited to MPC_TILTMAX_LND ("limit tilt during takeoff ramp-up")
        tilt_max = None if self.takeoff.state >= TakeoffState.FLIGHT else self.p["MPC_TILTMAX_LND"]
        body_z, collective = self.pos.update(est, sp, dt_s, hover=self.hover_thrust, climb_limit_mps=self._climb_limit_mps,
                                             thrust_floor=floor, tilt_max_deg=tilt_max)
        qd = attitude_from_thrust_dir(body_z, self._yaw_hold)
        ff = sp.yawspeed_rad_s if math.isfinite(sp.yawspeed_rad_s) else 0.0
        self._rate_sp = self.att.update(est.quat_wb, qd, ff)
        self._thrust_fraction = collective
