"""Body-rate controller approximating the firmware's, for the ``ctbr`` action mode.

The Crazyflie's PID rate loop (crazyflie-firmware src/modules/src/controller/pid_attitude.c,
attitude_pid_controller.c) and PX4's mc_rate_control (src/modules/mc_rate_control/) are both
PID on body-rate error with an integrator limit, followed by a mixer. Gains are taken from the
vehicle file in the firmware's units and converted to SI torque gains in ``sim.vehicle``; the
mixer is the inverse of the vehicle's allocation matrix followed by what each firmware does when
a motor would saturate (a plain per-motor clip would distort the torque exactly when it matters):

* PX4 (``MC_AIRMODE`` 0, the default): ``ControlAllocationSequentialDesaturation::mixAirmodeDisabled``
  (src/modules/control_allocator/ControlAllocation/ControlAllocationSequentialDesaturation.cpp):
  mix thrust + roll + pitch; shift along the thrust axis, only ever reducing thrust; then shrink
  roll, then pitch, until the outputs fit; add yaw and shrink it (allowing 15 % over the top);
  reduce thrust once more; clip.
* Crazyflie: each axis' PID output saturates at int16 (``attitudeControllerCorrectRatePID`` in
  src/modules/src/controller/attitude_pid_controller.c, the vehicle file's ``output_limit``), then
  ``powerDistributionCap`` (src/modules/src/power_distribution_quadrotor.c): if the
  highest motor is over the maximum, every motor is lowered by the excess (torque differences
  kept, collective sacrificed), then floored at zero. The firmware does this on PWM after its
  legacy mix; here it is done on thrust in N, the same rule on a different scale.

D acts on the measured rate (as PX4 does) so rate-setpoint steps do not kick the motors.

Per vehicle, every gain can be scaled and I and D switched off (``set_gain_scale``): domain
randomization of loops users tune (issue #19). The Crazyflie's loop sees the gyro through the
firmware's 80 Hz 2-pole low-pass (:class:`Lpf2p`), and its yaw in velocity mode goes through the
yaw-angle loop of controller_pid.c (:class:`YawAngleLoop`), both in the vehicle file's
``[firmware]`` table.

PX4's torque setpoint is normalized the way its allocator normalizes its mix (roll or pitch 1 =
each motor +-1/sqrt(2) of its range on a quad-x, ``sim.vehicle.px4_torque_per_unit_nm``), and its
integrator has PX4's two anti-windup rules (``RateController._update_px4``). Until 2026-11-25 the
simulated PX4 loop had neither: its roll and pitch gains were 1/sqrt(2), its yaw gain 1/2 of
PX4's, and the integral wound up freely during a throw.
"""

from __future__ import annotations

import numba
import numpy as np

from sim.vehicle import Vehicle


PX4_I_FADE_RATE_RAD_S = np.deg2rad(400.0)  # rate_control.cpp: I gain fades out towards this error
PX4_FLT_EPSILON = 1.1920929e-07


class RateController:
    """Batched PID rate loop plus mixer: (collective thrust, body-rate setpoint) -> motor thrusts.

    Uses the vehicle's *nominal* parameters, as firmware does: it never knows the randomized
    airframe it flies.
    """

    def __init__(self, vehicle: Vehicle, n: int):
        rc = vehicle.rate_controller
        self.vehicle = vehicle
        self.rate_hz = rc.rate_hz
        self.kp = rc.kp_nm_per_rad_s
        self.ki = rc.ki_nm_per_rad
        self.kd = rc.kd_nm_s_per_rad
        self.integral_limit = rc.integral_limit_rad
        self.output_limit = rc.output_limit_nm
        self.max_thrust_n = vehicle.max_thrust_n
        self.mixer = np.linalg.inv(vehicle.allocation_matrix())  # (4, 4): [T, tau] -> thrusts
        # PX4 desaturates in outputs normalized to the motor's max: row j is the change of the four
        # outputs per unit of wrench axis j (contiguous rows for the compiled kernel)
        self._px4_axes = np.ascontiguousarray(self.mixer.T / self.max_thrust_n)
        self._px4 = vehicle.firmware == "px4"
        self._allocation = vehicle.allocation_matrix()
        self._torque_per_unit_nm = rc.torque_per_unit_nm
        self.integral = np.zeros((n, 3))
        self.prev_omega_b = np.zeros((n, 3))
        self.gain_scale = np.ones(n)
        self.p_only = np.zeros(n, dtype=bool)
        path = vehicle.command_path
        self.gyro_filter = (Lpf2p(n, path.gyro_lpf_sample_hz, path.gyro_lpf_cutoff_hz)
                            if path is not None else None)
        # PX4: which torque axes the allocator could not deliver last tick (+ / - direction)
        self.saturated_pos = np.zeros((n, 3), dtype=bool)
        self.saturated_neg = np.zeros((n, 3), dtype=bool)
        if self._px4:
            # numba compiles the kernel on its first call (about 3 s with a cold cache): do it here,
            # not inside a real-time twin's first armed tick. Zero error, thrust and rates leave
            # the integral and the allocator flags as they are.
            self._update_px4(np.zeros((1, 3)), np.zeros((1, 3)), np.zeros(1), 1.0 / self.rate_hz,
                             self.kp[None], self.ki[None], self.kd[None])

    def __setstate__(self, state: dict) -> None:
        """Unpickle (training checkpoints), filling state that older versions did not have."""
        self.__dict__.update(state)
        n = self.integral.shape[0]
        if "saturated_pos" not in state:
            self.saturated_pos = np.zeros((n, 3), dtype=bool)
            self.saturated_neg = np.zeros((n, 3), dtype=bool)
            self._allocation = self.vehicle.allocation_matrix()
            self._torque_per_unit_nm = self.vehicle.rate_controller.torque_per_unit_nm
        if "gain_scale" not in state:
            self.gain_scale = np.ones(n)
            self.p_only = np.zeros(n, dtype=bool)
            self.gyro_filter = None

    def set_gain_scale(self, mask: np.ndarray | None, scale: np.ndarray, p_only: np.ndarray) -> None:
        """Scale every gain of the selected vehicles by ``scale`` (k,), I and D off where ``p_only``."""
        idx = slice(None) if mask is None else mask
        self.gain_scale[idx] = scale
        self.p_only[idx] = p_only

    def _gains(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, 3) kp, ki, kd of every vehicle (SI), after the per-vehicle scale and P-only switch."""
        g = self.gain_scale[:, None]
        keep = (~self.p_only)[:, None]
        return self.kp * g, self.ki * g * keep, self.kd * g * keep

    def reset(self, mask: np.ndarray | None = None, omega_b: np.ndarray | None = None) -> None:
        """Zero the integrator (and seed the D term with ``omega_b``) for the selected vehicles."""
        idx = slice(None) if mask is None else mask
        self.integral[idx] = 0.0
        self.prev_omega_b[idx] = 0.0 if omega_b is None else omega_b
        self.saturated_pos[idx] = False
        self.saturated_neg[idx] = False

    def filter_gyro(self, omega_b: np.ndarray) -> np.ndarray:
        """(N, 3) gyro as the firmware's rate loop sees it (its low-pass, where it has one), rad/s.
        Call once per gyro sample (the filter's ``sample_hz``)."""
        return omega_b if self.gyro_filter is None else self.gyro_filter.apply(omega_b)

    def update(self, omega_b: np.ndarray, rate_sp_b: np.ndarray, collective_thrust_n: np.ndarray,
               dt_s: float, cap_n: np.ndarray | None = None) -> np.ndarray:
        """One rate-loop tick. omega_b (already filtered, see :meth:`filter_gyro`), rate_sp_b:
        (N, 3) rad/s FLU; collective thrust (N,) in N.

        Returns (N, 4) motor thrust commands in N, firmware motor order. ``cap_n`` (N,): where the
        Crazyflie's powerDistributionCap limits each vehicle (default: the motor's full thrust).
        """
        err = rate_sp_b - omega_b
        d_omega = (omega_b - self.prev_omega_b) / dt_s
        self.prev_omega_b = omega_b.copy()
        kp, ki, kd = self._gains()
        if self._px4:
            return self._update_px4(err, d_omega, collective_thrust_n, dt_s, kp, ki, kd)
        self.integral = np.clip(self.integral + err * dt_s, -self.integral_limit, self.integral_limit)
        torque = kp * err + ki * self.integral - kd * d_omega
        torque = np.clip(torque, -self.output_limit, self.output_limit)
        return self.mix(collective_thrust_n, torque, cap_n)

    def _update_px4(self, err: np.ndarray, d_omega: np.ndarray, collective_thrust_n: np.ndarray,
                    dt_s: float, kp: np.ndarray | None = None, ki: np.ndarray | None = None,
                    kd: np.ndarray | None = None) -> np.ndarray:
        """PX4 ``RateControl::update`` (src/lib/rate_control/rate_control.cpp): the torque uses the
        integral as it stood, then the integral advances with PX4's two anti-windup rules.

        * No integration further into an axis' direction the allocator could not deliver last tick
          (mc_rate_control reads ``control_allocator_status.unallocated_torque``).
        * The I gain fades with the rate error, 1 - (error / 400 deg/s)^2: without it the integral
          builds up during a flip or a throw and bounces the vehicle back after it.
        """
        thrust = np.empty((err.shape[0], 4))
        if kp is None:
            kp, ki, kd = (g[: err.shape[0]] for g in self._gains())
        _px4_rate_kernel(np.ascontiguousarray(err), np.ascontiguousarray(d_omega),
                         np.ascontiguousarray(collective_thrust_n, dtype=np.float64), dt_s, np.ascontiguousarray(kp),
                         np.ascontiguousarray(ki), np.ascontiguousarray(kd), self.integral_limit, self.output_limit, self._px4_axes, self._allocation,
                         self._torque_per_unit_nm, self.max_thrust_n, self.integral, self.saturated_pos,
                         self.saturated_neg, thrust)
        return thrust

    def mix(self, collective_thrust_n: np.ndarray, torque_b: np.ndarray, cap_n: np.ndarray | None = None) -> np.ndarray:
        """(N,) collective thrust in N and (N, 3) body torque in N*m (FLU) -> (N, 4) motor thrusts
        in N within [0, max], desaturated the way the vehicle's firmware does it (module docstring).
        ``cap_n`` (N,): the Crazyflie's per-vehicle cap (default the motor's full thrust)."""
        wrench = np.concatenate([np.asarray(collective_thrust_n, dtype=np.float64)[:, None],
                                 np.asarray(torque_b, dtype=np.float64)], axis=1)
        if self._px4:
            return px4_mix_airmode_disabled(self._px4_axes, wrench) * self.max_thrust_n
        cap = self.max_thrust_n if cap_n is None else np.asarray(cap_n, dtype=np.float64)[:, None]
        return crazyflie_cap(wrench @ self.mixer.T, cap)


def crazyflie_cap(thrust_n: np.ndarray, max_thrust_n) -> np.ndarray:
    """Crazyflie ``powerDistributionCap``: lower all four motors by the top one's excess over
    ``max_thrust_n`` (a number, or (N, 1)), then floor at 0. (N, 4) N -> (N, 4) N."""
    excess = np.maximum(thrust_n.max(axis=1, keepdims=True) - max_thrust_n, 0.0)
    return np.clip(thrust_n - excess, 0.0, max_thrust_n)


@numba.njit(cache=True)
def _desaturation_gain(u: np.ndarray, v: np.ndarray, upper: float) -> float:
    """PX4 ``computeDesaturationGain`` for one vehicle: outputs u (4,) wanted in [0, upper],
    direction v (4,) -> gain k such that u + k v is as unsaturated as one shift along v makes it."""
    k_min = 0.0
    k_max = 0.0
    for i in range(u.shape[0]):
        # PX4 also skips |v_i| < 0.2 in its own normalized units; for a symmetric quad every motor
        # has the same |v_i| on each axis, so only the exact zero guard carries over
        if v[i] == 0.0:
            continue
        k = 0.0
        if u[i] < 0.0:
            k = -u[i] / v[i]
        elif u[i] > upper:
            k = (upper - u[i]) / v[i]
        else:
            continue
        k_min = min(k_min, k)
        k_max = max(k_max, k)
    return k_min + k_max


@numba.njit(cache=True)
def _desaturate(u: np.ndarray, v: np.ndarray, increase_only: bool, upper: float) -> None:
    """PX4 ``desaturateActuators`` in place: one full and one half step along v (nothing at all
    when ``increase_only`` and the first gain is negative)."""
    gain = _desaturation_gain(u, v, upper)
    if increase_only and gain < 0.0:
        return
    u += gain * v
    u += 0.5 * _desaturation_gain(u, v, upper) * v


@numba.njit(cache=True)
def _px4_mix_one(axes: np.ndarray, less_thrust: np.ndarray, thrust_n: float, tau_x: float, tau_y: float,
                 tau_z: float, u: np.ndarray) -> None:
    """One vehicle's wrench (N, N*m FLU) -> ``u`` (4,) normalized outputs in [0, 1], written in
    place: thrust + roll + pitch, desaturated; yaw added last with its own headroom; clip."""
    for i in range(u.shape[0]):
        u[i] = axes[0, i] * thrust_n + axes[1, i] * tau_x + axes[2, i] * tau_y
    _desaturate(u, less_thrust, True, 1.0)
    _desaturate(u, axes[1], False, 1.0)
    _desaturate(u, axes[2], False, 1.0)
    for i in range(u.shape[0]):
        u[i] += axes[3, i] * tau_z
    _desaturate(u, axes[3], False, 1.15)  # some yaw authority at full thrust
    _desaturate(u, less_thrust, True, 1.0)
    for i in range(u.shape[0]):
        u[i] = min(max(u[i], 0.0), 1.0)


@numba.njit(cache=True)
def _px4_mix_kernel(axes: np.ndarray, wrench: np.ndarray, out: np.ndarray) -> None:
    less_thrust = -axes[0]  # PX4's THRUST_Z axis points down (NED): "increase" = less thrust
    for n in range(wrench.shape[0]):
        _px4_mix_one(axes, less_thrust, wrench[n, 0], wrench[n, 1], wrench[n, 2], wrench[n, 3], out[n])


@numba.njit(cache=True, inline="always")
def _px4_rate_one(n, err, d_omega, collective_n, dt_s, kp, ki, kd, integral_limit, output_limit, axes, less_thrust,
                  allocation, torque_per_unit_nm, max_thrust_n, integral, saturated_pos, saturated_neg, thrust_out,
                  u, torque, unalloc):
    """Vehicle ``n``'s row of :func:`_px4_rate_kernel` (``u``, ``torque``, ``unalloc``: scratch);
    shared with the compiled x500 tick (sim.firmware_tick)."""
    for j in range(3):
        t = kp[n, j] * err[n, j] + ki[n, j] * integral[n, j] - kd[n, j] * d_omega[n, j]
        torque[j] = min(max(t, -output_limit[j]), output_limit[j])
        e = err[n, j]
        if saturated_pos[n, j]:
            e = min(e, 0.0)
        if saturated_neg[n, j]:
            e = max(e, 0.0)
        fade = max(0.0, 1.0 - (e / PX4_I_FADE_RATE_RAD_S) ** 2)
        integral[n, j] = min(max(integral[n, j] + fade * e * dt_s, -integral_limit[j]), integral_limit[j])
    _px4_mix_one(axes, less_thrust, collective_n[n], torque[0], torque[1], torque[2], u)
    for i in range(4):
        thrust_out[n, i] = u[i] * max_thrust_n
    # ControlAllocator: unallocated = setpoint - allocated, in normalized torque; "achieved"
    # when its squared norm is below 1e-6, else each axis is flagged by its sign
    sq = 0.0
    for j in range(3):
        allocated = 0.0
        for i in range(4):
            allocated += allocation[j + 1, i] * thrust_out[n, i]
        unalloc[j] = (torque[j] - allocated) / torque_per_unit_nm[j]
        sq += unalloc[j] ** 2
    missed = sq >= 1e-6
    for j in range(3):
        saturated_pos[n, j] = missed and unalloc[j] > PX4_FLT_EPSILON
        saturated_neg[n, j] = missed and unalloc[j] < -PX4_FLT_EPSILON


@numba.njit(cache=True)
def _px4_rate_kernel(err, d_omega, collective_n, dt_s, kp, ki, kd, integral_limit, output_limit, axes, allocation,
                     torque_per_unit_nm, max_thrust_n, integral, saturated_pos, saturated_neg, thrust_out):
    """``RateController._update_px4`` for every vehicle, compiled: PID torque from the integral as
    it stood, the integral advanced under PX4's anti-windup rules, the mix, and the allocator's
    unallocated-torque flags for the next tick. ``integral`` and the flags are updated in place."""
    u = np.empty(4)
    torque = np.empty(3)
    unalloc = np.empty(3)
    less_thrust = -axes[0]  # PX4's THRUST_Z axis points down (NED): "increase" = less thrust
    for n in range(err.shape[0]):
        _px4_rate_one(n, err, d_omega, collective_n, dt_s, kp, ki, kd, integral_limit, output_limit, axes, less_thrust,
                      allocation, torque_per_unit_nm, max_thrust_n, integral, saturated_pos, saturated_neg, thrust_out,
                      u, torque, unalloc)


def px4_mix_airmode_disabled(axes: np.ndarray, wrench: np.ndarray) -> np.ndarray:
    """PX4 ``mixAirmodeDisabled`` + ``mixYaw`` + clip.

    axes (4, 4): row j = change of the four normalized outputs per unit of wrench axis j
    ([T N, tau_x, tau_y, tau_z N*m], FLU); wrench (N, 4). Returns (N, 4) outputs in [0, 1] of the
    motor's max thrust. Compiled (numba): it runs at the rate loop's rate for every vehicle of a
    training batch.
    """
    out = np.empty((wrench.shape[0], 4))
    _px4_mix_kernel(axes, np.ascontiguousarray(wrench), out)
    return out


def lpf2p_coefficients(sample_hz: float, cutoff_hz: float) -> tuple[float, float, float, float, float]:
    """(b0, b1, b2, a1, a2) of the firmware's 2-pole Butterworth low-pass, crazyflie-firmware
    src/utils/src/filter.c ``lpf2pSetCutoffFreq`` (bilinear transform, tan pre-warping)."""
    ohm = np.tan(np.pi * cutoff_hz / sample_hz)
    c = 1.0 + 2.0 * np.cos(np.pi / 4.0) * ohm + ohm * ohm
    b0 = ohm * ohm / c
    return b0, 2.0 * b0, b0, 2.0 * (ohm * ohm - 1.0) / c, (1.0 - 2.0 * np.cos(np.pi / 4.0) * ohm + ohm * ohm) / c


class Lpf2p:
    """filter.c ``lpf2pApply`` on (N, 3) samples (direct form II, two delay elements per channel)."""

    def __init__(self, n: int, sample_hz: float, cutoff_hz: float):
        self.sample_hz = sample_hz
        self.cutoff_hz = cutoff_hz
        self.b0, self.b1, self.b2, self.a1, self.a2 = lpf2p_coefficients(sample_hz, cutoff_hz)
        self.d1 = np.zeros((n, 3))
        self.d2 = np.zeros((n, 3))

    def settle(self, idx, value: np.ndarray) -> None:
        """Delay elements of the selected rows as after a long constant input ``value`` (k, 3):
        the firmware's filter runs from boot, so a vehicle starting an episode mid-air has one."""
        d = np.asarray(value, dtype=np.float64) / (1.0 + self.a1 + self.a2)
        self.d1[idx] = d
        self.d2[idx] = d

    def apply(self, sample: np.ndarray) -> np.ndarray:
        """One sample (N, 3) in, one filtered sample out."""
        d0 = sample - self.d1 * self.a1 - self.d2 * self.a2
        d0 = np.where(np.isfinite(d0), d0, sample)  # lpf2pApply: bad values do not propagate
        out = d0 * self.b0 + self.d1 * self.b1 + self.d2 * self.b2
        self.d2 = self.d1
        self.d1 = d0
        return out


def cap_angle_deg(angle):
    """controller_pid.c ``capAngle``: wrap degrees to [-180, 180] (number or array)."""
    return (np.asarray(angle, dtype=np.float64) + 180.0) % 360.0 - 180.0


class YawAngleLoop:
    """The Crazyflie's yaw in velocity mode, batched (src/modules/src/controller/controller_pid.c,
    attitude_pid_controller.c): the yaw-rate setpoint moves a yaw-angle setpoint
    (``attitudeDesired.yaw = capAngle(attitudeDesired.yaw + rate * dt)``; yawMaxDelta 0, the
    default, leaves it unbounded), and the yaw attitude PID (pid.c, error wrapped to +-180 deg,
    D on the error, integral clamped) turns the angle error into the rate PID's yaw setpoint.
    Units are the firmware's: degrees and deg/s.
    """

    def __init__(self, n: int, kp: float, ki: float, kd: float, integral_limit_deg: float, dt_s: float):
        self.kp, self.ki, self.kd, self.i_limit, self.dt_s = kp, ki, kd, integral_limit_deg, dt_s
        self.yaw_desired_deg = np.zeros(n)
        self.integ = np.zeros(n)
        self.prev_error = np.zeros(n)

    @classmethod
    def for_vehicle(cls, vehicle, n: int, dt_s: float) -> "YawAngleLoop":
        """The loop with the vehicle file's ``[firmware]`` gains."""
        path = vehicle.command_path
        return cls(n, *path.yaw_attitude_pid, path.yaw_attitude_integral_limit_deg, dt_s)

    def reset(self, mask, yaw_deg: np.ndarray) -> None:
        """Zero-thrust branch of controllerPid: pidReset and ``attitudeDesired.yaw = state yaw``."""
        idx = slice(None) if mask is None else mask
        self.yaw_desired_deg[idx] = yaw_deg
        self.integ[idx] = 0.0
        self.prev_error[idx] = 0.0

    def update(self, yaw_rate_cmd_dps: np.ndarray, yaw_deg: np.ndarray) -> np.ndarray:
        """(N,) commanded yaw rate and estimated yaw (deg/s, deg) -> (N,) yaw-rate setpoint, deg/s."""
        self.yaw_desired_deg = cap_angle_deg(self.yaw_desired_deg + yaw_rate_cmd_dps * self.dt_s)
        error = cap_angle_deg(self.yaw_desired_deg - yaw_deg)
        self.integ = np.clip(self.integ + error * self.dt_s, -self.i_limit, self.i_limit)
        deriv = (error - self.prev_error) / self.dt_s
        self.prev_error = error
        return self.kp * error + self.ki * self.integ + self.kd * deriv
