"""One control tick of a ctbr path, compiled: the firmware's rate loop and the physics per vehicle in
one numba loop, for the Crazyflie (gyro low-pass, yaw-angle loop, rate PID, powerDistributionCap,
the motor command path) and for PX4 vehicles (mc_rate_control's PID with its anti-windup rules
and the allocator's desaturation).

It computes what ``sim.env.HoverTask._fly_rate_loop`` computes with the numpy pieces
(``sim.rate_control.Lpf2p``, ``YawAngleLoop``, ``RateController``, ``sim.command_path``) and
``QuadSim.step``: those stay the reference (the twins fly them), and
tests/sim/test_firmware_tick.py holds the two to 1e-9 on random airframes, stops and builds. Why
a second form: a Crazyflie tick is 10 physics steps, 10 gyro samples and 5 rate-loop updates, each
a handful of numpy calls on (N, 3) arrays; at the batch sizes training and evaluation fly (16-200)
those calls cost ~0.5 ms a tick in interpreter overhead, most of an env step (2026-12-07, issue
#23: docs/experiments/2026-12-07-fused-tick.md).

Order within a Crazyflie physics step (the reference's): the gyro sample goes through the
low-pass; on a rate-loop step the yaw-angle loop reads the yaw (true attitude, as the reference
does), the rate PID runs on the filtered gyro over the rate loop's period, the mixer and the cap
turn the wrench into firmware thrust, the command path into motor thrust, and a zero 16-bit thrust
stops the motors and resets every PID; then the physics advances one step holding that motor
thrust. PX4: on each rate-loop step the PID reads the true rates, mixes, and the physics holds the
result until the next.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from sim.dynamics import PARALLEL_MIN_BATCH, _substep
from sim.rate_control import _px4_rate_one

# numpy's np.degrees / np.radians constants (npy_rad2deg: x * (180 / pi))
_DEG_PER_RAD = 180.0 / math.pi
_RAD_PER_DEG = math.pi / 180.0


@numba.njit(cache=True, inline="always")
def _cap_angle_deg(a):
    # controller_pid.c capAngle, as sim.rate_control.cap_angle_deg (Python's float modulo)
    return (a + 180.0) % 360.0 - 180.0


def _crazyflie_tick_py(collective_n, stop, rate_sp, substeps, every, physics_dt,
                       lpf_d1, lpf_d2, b0, b1, b2, a1, a2,
                       yaw_des_deg, yaw_integ, yaw_prev_err, ykp, yki, ykd, y_ilim, ydt,
                       integral, prev_omega, kp, ki, kd, gain_scale, p_only, i_limit, out_limit, mixer, cap,
                       compensated, thrust_min_n, thrust_max_n, c0, c1, c2, thrust_work,
                       pos, vel, quat, omega, thrust_state, on_ground, crashed, mass, inertia,
                       rotor_pos, spin_sign, kappa, max_thrust, thrust_gain, tau_up, tau_down, drag,
                       crash_speed, wind_w, force_w, g, ground):
    n = pos.shape[0]
    for i in numba.prange(n):
        yaw_cmd_dps = rate_sp[i, 2] * _DEG_PER_RAD
        sp0 = rate_sp[i, 0]
        sp1 = rate_sp[i, 1]
        sp2 = rate_sp[i, 2]
        f = np.empty(3)
        tq = np.empty(3)
        for k in range(substeps):
            # filter.c lpf2pApply on the gyro sample (non-finite state does not propagate)
            for ax in range(3):
                w = omega[i, ax]
                d0 = w - lpf_d1[i, ax] * a1 - lpf_d2[i, ax] * a2
                if not math.isfinite(d0):
                    d0 = w
                f[ax] = d0 * b0 + lpf_d1[i, ax] * b1 + lpf_d2[i, ax] * b2
                lpf_d2[i, ax] = lpf_d1[i, ax]
                lpf_d1[i, ax] = d0
            if k % every == 0:
                dt = min(every, substeps - k) * physics_dt
                q0, q1, q2, q3 = quat[i, 0], quat[i, 1], quat[i, 2], quat[i, 3]
                yaw_deg = math.atan2(2 * (q0 * q3 + q1 * q2), 1 - 2 * (q2 * q2 + q3 * q3)) * _DEG_PER_RAD
                # controller_pid.c velocity-mode yaw: the rate moves an angle setpoint, a PID follows it
                yaw_des_deg[i] = _cap_angle_deg(yaw_des_deg[i] + yaw_cmd_dps * ydt)
                err = _cap_angle_deg(yaw_des_deg[i] - yaw_deg)
                yaw_integ[i] = min(max(yaw_integ[i] + err * ydt, -y_ilim), y_ilim)
                deriv = (err - yaw_prev_err[i]) / ydt
                yaw_prev_err[i] = err
                sp2 = (ykp * err + yki * yaw_integ[i] + ykd * deriv) * _RAD_PER_DEG
                # rate PID with D on the measured rate, per-vehicle gain scale and P-only switch
                gs = gain_scale[i]
                keep = 0.0 if p_only[i] else 1.0
                t0 = collective_n[i]
                for ax in range(3):
                    sp = sp0 if ax == 0 else (sp1 if ax == 1 else sp2)
                    e = sp - f[ax]
                    d_omega = (f[ax] - prev_omega[i, ax]) / dt
                    prev_omega[i, ax] = f[ax]
                    integral[i, ax] = min(max(integral[i, ax] + e * dt, -i_limit[ax]), i_limit[ax])
                    tau = kp[ax] * gs * e + ki[ax] * gs * keep * integral[i, ax] - kd[ax] * gs * keep * d_omega
                    tq[ax] = min(max(tau, -out_limit[ax]), out_limit[ax])
                # legacy mix, then powerDistributionCap: lower all by the top one's excess, floor at 0
                top = -np.inf
                for m in range(4):
                    thrust_work[i, m] = mixer[m, 0] * t0 + mixer[m, 1] * tq[0] + mixer[m, 2] * tq[1] + mixer[m, 3] * tq[2]
                    top = max(top, thrust_work[i, m])
                excess = max(top - cap[i], 0.0)
                for m in range(4):
                    t = min(max(thrust_work[i, m] - excess, 0.0), cap[i])
                    # motors.c: compensated builds cut below THRUST_MIN; others read the count as PWM
                    if compensated[i]:
                        t = 0.0 if t < thrust_min_n else t
                    else:
                        u = min(max(t / thrust_max_n, 0.0), 1.0)
                        t = (c2 * u * u + c1 * u + c0) if t > 0 else 0.0
                    thrust_work[i, m] = t
                if stop[i]:  # controllerPid's thrust == 0 branch: no output, every PID reset
                    for m in range(4):
                        thrust_work[i, m] = 0.0
                    for ax in range(3):
                        integral[i, ax] = 0.0
                        prev_omega[i, ax] = f[ax]
                    yaw_des_deg[i] = yaw_deg
                    yaw_integ[i] = 0.0
                    yaw_prev_err[i] = 0.0
            _substep(i, pos, vel, quat, omega, thrust_state, on_ground, crashed, thrust_work, mass, inertia,
                     rotor_pos, spin_sign, kappa, max_thrust, thrust_gain, tau_up, tau_down, drag,
                     crash_speed, wind_w, force_w, g, physics_dt, ground)


_crazyflie_tick = numba.njit(cache=True)(_crazyflie_tick_py)
_crazyflie_tick_parallel = numba.njit(cache=False, parallel=True)(_crazyflie_tick_py)


def _px4_tick_py(collective_n, rate_sp, substeps, every, physics_dt,
                 integral, prev_omega, kp, ki, kd, i_limit, out_limit, axes, allocation, torque_per_unit_nm,
                 rotor_max_thrust_n, saturated_pos, saturated_neg, err_w, d_omega_w, thrust_work,
                 pos, vel, quat, omega, thrust_state, on_ground, crashed, mass, inertia,
                 rotor_pos, spin_sign, kappa, max_thrust, thrust_gain, tau_up, tau_down, drag,
                 crash_speed, wind_w, force_w, g, ground):
    n = pos.shape[0]
    less_thrust = -axes[0]  # PX4's THRUST_Z axis points down (NED): "increase" = less thrust
    for i in numba.prange(n):
        u = np.empty(4)
        torque = np.empty(3)
        unalloc = np.empty(3)
        for k in range(0, substeps, every):
            held = min(every, substeps - k)
            dt = held * physics_dt
            for ax in range(3):  # RateController.update: D on the measured rate
                w = omega[i, ax]
                err_w[i, ax] = rate_sp[i, ax] - w
                d_omega_w[i, ax] = (w - prev_omega[i, ax]) / dt
                prev_omega[i, ax] = w
            _px4_rate_one(i, err_w, d_omega_w, collective_n, dt, kp, ki, kd, i_limit, out_limit, axes, less_thrust,
                          allocation, torque_per_unit_nm, rotor_max_thrust_n, integral, saturated_pos, saturated_neg,
                          thrust_work, u, torque, unalloc)
            for _ in range(held):
                _substep(i, pos, vel, quat, omega, thrust_state, on_ground, crashed, thrust_work, mass, inertia,
                         rotor_pos, spin_sign, kappa, max_thrust, thrust_gain, tau_up, tau_down, drag,
                         crash_speed, wind_w, force_w, g, physics_dt, ground)


_px4_tick = numba.njit(cache=True)(_px4_tick_py)
_px4_tick_parallel = numba.njit(cache=False, parallel=True)(_px4_tick_py)


def _own(obj, name: str, dtype=np.float64) -> np.ndarray:
    """``obj.name`` as a C-contiguous array of ``dtype`` the kernel may write in place (replaced on
    ``obj`` when it was not one already: the numpy forms rebind these arrays freely)."""
    a = getattr(obj, name)
    if not (isinstance(a, np.ndarray) and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable):
        a = np.ascontiguousarray(a, dtype=dtype).copy()
        setattr(obj, name, a)
    return a


def _physics(sim) -> tuple:
    """The state, parameters and disturbance of ``sim`` (sim.dynamics.QuadSim) in the order both
    kernels take them after their own arguments (those of sim.dynamics._substep)."""
    s, p, d = sim.state, sim.params, sim.disturbance
    return (s.pos_w, s.vel_w, s.quat_wb, s.omega_b, s.thrust_n, s.on_ground, s.crashed,
            p.mass_kg, p.inertia_kgm2, p.rotor_pos_m, p.spin_sign, p.torque_to_thrust_m,
            p.max_thrust_n, p.thrust_gain, p.tau_up_s, p.tau_down_s, p.drag_n_per_mps,
            p.crash_speed_mps, d.wind_w, d.force_w, sim.gravity_mps2, bool(sim.ground))


def can_fly(vehicle, rate_ctrl, yaw_loop) -> bool:
    """True where :func:`fly_crazyflie_tick` flies this vehicle's ctbr path (the Crazyflie's
    battery-compensated firmware path: gyro low-pass and yaw-angle loop present, not PX4)."""
    return (rate_ctrl is not None and not rate_ctrl._px4 and rate_ctrl.gyro_filter is not None
            and yaw_loop is not None and vehicle.command_path is not None and bool(vehicle.compensated))


def can_fly_px4(vehicle, rate_ctrl) -> bool:
    """True where :func:`fly_px4_tick` flies this vehicle's ctbr path (PX4's rate loop on the true
    rates, no command path of its own: the x500)."""
    return (rate_ctrl is not None and rate_ctrl._px4 and rate_ctrl.gyro_filter is None
            and vehicle.command_path is None and not bool(vehicle.compensated))


def fly_px4_tick(sim, rate_ctrl, collective_n: np.ndarray, rate_sp_b: np.ndarray, substeps: int,
                 rate_loop_every: int) -> None:
    """Advance ``sim`` (sim.dynamics.QuadSim) by ``substeps`` physics steps of a PX4 vehicle's rate
    loop (``rate_ctrl``, sim.rate_control.RateController, updated in place), which runs every
    ``rate_loop_every`` steps on the true body rates. ``collective_n`` (N,) collective thrust (N),
    ``rate_sp_b`` (N, 3) body-rate setpoint (rad/s, FLU)."""
    v, s, rc = sim.vehicle, sim.state, rate_ctrl
    if not can_fly_px4(v, rc):
        raise ValueError("fly_px4_tick flies a PX4 vehicle's rate loop only")
    n = s.n
    kp, ki, kd = (np.ascontiguousarray(g, dtype=np.float64) for g in rc._gains())
    kernel = _px4_tick_parallel if n >= PARALLEL_MIN_BATCH else _px4_tick
    kernel(np.ascontiguousarray(collective_n, dtype=np.float64), np.ascontiguousarray(rate_sp_b, dtype=np.float64),
           int(substeps), int(rate_loop_every), sim.dt_s,
           _own(rc, "integral"), _own(rc, "prev_omega_b"), kp, ki, kd,
           np.asarray(rc.integral_limit, dtype=np.float64), np.asarray(rc.output_limit, dtype=np.float64),
           rc._px4_axes, rc._allocation, np.asarray(rc._torque_per_unit_nm, dtype=np.float64), float(rc.max_thrust_n),
           _own(rc, "saturated_pos", np.bool_), _own(rc, "saturated_neg", np.bool_),
           np.empty((n, 3)), np.empty((n, 3)), np.empty((n, 4)), *_physics(sim))


def fly_crazyflie_tick(sim, rate_ctrl, yaw_loop, collective_n: np.ndarray, stop: np.ndarray, rate_sp_b: np.ndarray,
                       cap_n: np.ndarray, substeps: int, rate_loop_every: int) -> None:
    """Advance ``sim`` (sim.dynamics.QuadSim) by ``substeps`` physics steps of the Crazyflie's
    firmware path, updating ``rate_ctrl`` (sim.rate_control.RateController with its gyro filter)
    and ``yaw_loop`` (YawAngleLoop) in place.

    ``collective_n`` (N,) firmware collective thrust (N, rate-loop units, sim.command_path),
    ``stop`` (N,) bool zero-thrust setpoints, ``rate_sp_b`` (N, 3) commanded body rates (rad/s,
    FLU; the yaw column is the yaw-rate command the yaw-angle loop integrates), ``cap_n`` (N,)
    powerDistributionCap per vehicle (N). The rate loop runs every ``rate_loop_every`` steps."""
    v, s, p, rc, lpf = sim.vehicle, sim.state, sim.params, rate_ctrl, rate_ctrl.gyro_filter
    path = v.command_path
    if not can_fly(v, rc, yaw_loop):
        raise ValueError("fly_crazyflie_tick flies the Crazyflie's compensated firmware path only")
    n = s.n
    c0, c1, c2 = (float(c) for c in v.thrust_curve_n)
    kernel = _crazyflie_tick_parallel if n >= PARALLEL_MIN_BATCH else _crazyflie_tick
    kernel(np.ascontiguousarray(collective_n, dtype=np.float64), np.ascontiguousarray(stop, dtype=np.bool_),
           np.ascontiguousarray(rate_sp_b, dtype=np.float64), int(substeps), int(rate_loop_every), sim.dt_s,
           _own(lpf, "d1"), _own(lpf, "d2"), lpf.b0, lpf.b1, lpf.b2, lpf.a1, lpf.a2,
           _own(yaw_loop, "yaw_desired_deg"), _own(yaw_loop, "integ"), _own(yaw_loop, "prev_error"),
           yaw_loop.kp, yaw_loop.ki, yaw_loop.kd, yaw_loop.i_limit, yaw_loop.dt_s,
           _own(rc, "integral"), _own(rc, "prev_omega_b"), rc.kp, rc.ki, rc.kd,
           np.ascontiguousarray(rc.gain_scale, dtype=np.float64), np.ascontiguousarray(rc.p_only, dtype=np.bool_),
           np.asarray(rc.integral_limit, dtype=np.float64), np.asarray(rc.output_limit, dtype=np.float64),
           np.ascontiguousarray(rc.mixer), np.ascontiguousarray(cap_n, dtype=np.float64),
           np.ascontiguousarray(p.compensated, dtype=np.bool_), path.thrust_min_n, path.thrust_max_n, c0, c1, c2,
           np.empty((n, 4)), *_physics(sim))
