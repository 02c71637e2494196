"""Batched rigid-body quadrotor dynamics (N vehicles at once), world ENU, body FLU, SI units.

Physics, per vehicle::

    p' = v
    v' = (R @ [0, 0, sum(T_i)] + F_drag + F_ext) / m - [0, 0, g]
    q' = 0.5 * q (x) [0, omega_b]
    omega_b' = J^-1 (tau - omega_b x J omega_b)            (gyroscopic term of the rigid body)
    tau = sum_i (r_i - c) x [0, 0, T_i] + [0, 0, sum_i s_i kappa T_i]
    F_drag = R @ (-d (.) R^T (v - v_wind))                 (linear drag on body-frame airspeed)
    T_i' = (T_cmd,i - T_i) / tau_i,   tau_i = tau_up if T_cmd,i > T_i else tau_down

Integrator: the motor lag is integrated exactly (exponential of a first-order system with the
command held over the step); the rigid body with classical RK4 at the physics rate (1 kHz),
quaternion renormalized after each step. RK4 because a 1 kHz semi-implicit Euler drifts kinetic
energy of a tumbling body by ~1e-2 per second at 5 rad/s, which the conservation tests catch;
RK4 keeps it below 1e-8 and costs only a few hundred flops per vehicle in the compiled kernel.

Ground: the plane z = 0 (body origin height). A vehicle on the ground has no downward velocity
(no sinking, no bounce) and sticks (no sliding, no spin) until thrust exceeds weight. Touching the
ground faster than ``crash_speed_mps`` or more than 60 deg tilted marks the vehicle crashed.

The kernel is compiled with numba: one scalar loop per vehicle reads as physics and runs
~50x faster than the same model written as chains of small numpy ops (see ``quadhil bench sim``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numba
import numpy as np

from sim.vehicle import GRAVITY_MPS2, Vehicle

COS_60_DEG = 0.5


@dataclass
class QuadState:
    """Batched vehicle state. Shapes (N, ...); world ENU, body FLU, SI."""

    pos_w: np.ndarray  # (N, 3) m
    vel_w: np.ndarray  # (N, 3) m/s
    quat_wb: np.ndarray  # (N, 4) w, x, y, z, body-to-world
    omega_b: np.ndarray  # (N, 3) rad/s
    thrust_n: np.ndarray  # (N, 4) current motor thrusts, firmware motor order
    on_ground: np.ndarray  # (N,) bool
    crashed: np.ndarray  # (N,) bool

    @property
    def n(self) -> int:
        """Number of vehicles in the batch."""
        return self.pos_w.shape[0]

    @classmethod
    def zeros(cls, n: int) -> "QuadState":
        """N vehicles at the origin, level, at rest, motors off, on the ground."""
        quat = np.zeros((n, 4))
        quat[:, 0] = 1.0
        return cls(
            pos_w=np.zeros((n, 3)),
            vel_w=np.zeros((n, 3)),
            quat_wb=quat,
            omega_b=np.zeros((n, 3)),
            thrust_n=np.zeros((n, 4)),
            on_ground=np.ones(n, dtype=bool),
            crashed=np.zeros(n, dtype=bool),
        )

    def copy(self) -> "QuadState":
        """Deep copy of every array."""
        return QuadState(**{k: v.copy() for k, v in self.__dict__.items()})

    def take(self, idx) -> "QuadState":
        """State of the vehicles selected by ``idx`` (index array, slice or mask), copied."""
        return QuadState(**{k: np.array(v[idx]) for k, v in self.__dict__.items()})

    def put(self, idx, other: "QuadState") -> None:
        """Overwrite the vehicles selected by ``idx`` with ``other``'s."""
        for k, v in self.__dict__.items():
            v[idx] = getattr(other, k)


@dataclass
class BatchParams:
    """Per-vehicle physical parameters (possibly randomized), shapes (N, ...)."""

    mass_kg: np.ndarray  # (N,)
    inertia_kgm2: np.ndarray  # (N, 3) diagonal
    rotor_pos_m: np.ndarray  # (N, 4, 3) relative to the CoM
    spin_sign: np.ndarray  # (4,)
    torque_to_thrust_m: np.ndarray  # (N,)
    max_thrust_n: np.ndarray  # (N, 4) after thrust scale and imbalance
    thrust_gain: np.ndarray  # (N, 4) true thrust / commanded thrust (1 = nominal)
    tau_up_s: np.ndarray  # (N, 4)
    tau_down_s: np.ndarray  # (N, 4)
    drag_n_per_mps: np.ndarray  # (N, 3)
    crash_speed_mps: np.ndarray  # (N,)
    # What the vehicle's firmware and estimator do, per vehicle (the physics kernel ignores these;
    # the env's rate loop, motor command stage and sensor model read them):
    rate_gain_scale: np.ndarray = None  # (N,) every rate-loop gain times this  # type: ignore[assignment]
    rate_p_only: np.ndarray = None  # (N,) bool: rate loop without I and D  # type: ignore[assignment]
    noise_scale: np.ndarray = None  # (N,) sensor-noise std times this  # type: ignore[assignment]
    compensated: np.ndarray = None  # (N,) bool: battery-compensated 16-bit commands  # type: ignore[assignment]
    # Uncompensated builds: thrust per PWM relative to the thrust curve, (V / V_curve)^2 (1 where
    # compensated), and what quadhil's motor-level app reads of it through pm.vbat, as the ratio
    # sensed / true (sim.command_path.app_battery_compensation).
    battery_thrust_scale: np.ndarray = None  # (N,)  # type: ignore[assignment]
    battery_sense_ratio: np.ndarray = None  # (N,)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = self.mass_kg.shape[0]
        if self.rate_gain_scale is None:
            self.rate_gain_scale = np.ones(n)
        if self.rate_p_only is None:
            self.rate_p_only = np.zeros(n, dtype=bool)
        if self.noise_scale is None:
            self.noise_scale = np.ones(n)
        if self.compensated is None:
            self.compensated = np.ones(n, dtype=bool)
        if self.battery_thrust_scale is None:
            self.battery_thrust_scale = np.ones(n)
        if self.battery_sense_ratio is None:
            self.battery_sense_ratio = np.ones(n)

    def __setstate__(self, state: dict) -> None:
        """Unpickle parameters saved before the per-vehicle firmware fields existed."""
        self.__dict__.update(state)
        for name in ("rate_gain_scale", "rate_p_only", "noise_scale", "compensated", "battery_thrust_scale",
                     "battery_sense_ratio"):
            self.__dict__.setdefault(name, None)
        self.__post_init__()

    @classmethod
    def nominal(cls, vehicle: Vehicle, n: int) -> "BatchParams":
        """N copies of the vehicle's nominal parameters."""
        return cls(
            mass_kg=np.full(n, vehicle.mass_kg),
            inertia_kgm2=np.tile(vehicle.inertia_kgm2, (n, 1)),
            rotor_pos_m=np.tile(vehicle.rotor_position_m, (n, 1, 1)),
            spin_sign=vehicle.spin_sign.copy(),
            torque_to_thrust_m=np.full(n, vehicle.torque_to_thrust_m),
            max_thrust_n=np.full((n, 4), vehicle.max_thrust_n),
            thrust_gain=np.ones((n, 4)),
            tau_up_s=np.full((n, 4), vehicle.tau_up_s),
            tau_down_s=np.full((n, 4), vehicle.tau_down_s),
            drag_n_per_mps=np.tile(vehicle.drag_n_per_mps, (n, 1)),
            crash_speed_mps=np.full(n, vehicle.crash_speed_mps),
            compensated=np.full(n, vehicle.compensated),
        )

    def take(self, idx) -> "BatchParams":
        """Parameters of the selected vehicles (spin_sign is shared)."""
        fields = {k: (v if k == "spin_sign" else np.array(v[idx])) for k, v in self.__dict__.items()}
        return BatchParams(**fields)

    def put(self, idx, other: "BatchParams") -> None:
        """Overwrite the selected vehicles' parameters with ``other``'s."""
        for k, v in self.__dict__.items():
            if k != "spin_sign":
                v[idx] = getattr(other, k)


@numba.njit(cache=True, fastmath=False, inline="always")
def _derivative(q0, q1, q2, q3, vx, vy, vz, wx, wy, wz, thrust, tx, ty, tz, m, jx, jy, jz, dx, dy, dz,
                windx, windy, windz, fx, fy, fz, g):
    # rotation matrix body -> world
    r00 = 1 - 2 * (q2 * q2 + q3 * q3)
    r01 = 2 * (q1 * q2 - q0 * q3)
    r02 = 2 * (q1 * q3 + q0 * q2)
    r10 = 2 * (q1 * q2 + q0 * q3)
    r11 = 1 - 2 * (q1 * q1 + q3 * q3)
    r12 = 2 * (q2 * q3 - q0 * q1)
    r20 = 2 * (q1 * q3 - q0 * q2)
    r21 = 2 * (q2 * q3 + q0 * q1)
    r22 = 1 - 2 * (q1 * q1 + q2 * q2)
    # airspeed in body frame, drag force in body then world
    ax_ = vx - windx
    ay_ = vy - windy
    az_ = vz - windz
    vbx = r00 * ax_ + r10 * ay_ + r20 * az_
    vby = r01 * ax_ + r11 * ay_ + r21 * az_
    vbz = r02 * ax_ + r12 * ay_ + r22 * az_
    fbx = -dx * vbx
    fby = -dy * vby
    fbz = -dz * vbz + thrust
    accx = (r00 * fbx + r01 * fby + r02 * fbz + fx) / m
    accy = (r10 * fbx + r11 * fby + r12 * fbz + fy) / m
    accz = (r20 * fbx + r21 * fby + r22 * fbz + fz) / m - g
    # quaternion kinematics q' = 0.5 q (x) [0, w]
    dq0 = 0.5 * (-q1 * wx - q2 * wy - q3 * wz)
    dq1 = 0.5 * (q0 * wx + q2 * wz - q3 * wy)
    dq2 = 0.5 * (q0 * wy - q1 * wz + q3 * wx)
    dq3 = 0.5 * (q0 * wz + q1 * wy - q2 * wx)
    # Euler's equations with the gyroscopic term omega x J omega
    dwx = (tx - (wy * jz * wz - wz * jy * wy)) / jx
    dwy = (ty - (wz * jx * wx - wx * jz * wz)) / jy
    dwz = (tz - (wx * jy * wy - wy * jx * wx)) / jz
    return accx, accy, accz, dq0, dq1, dq2, dq3, dwx, dwy, dwz


@numba.njit(cache=True, inline="always")
def _substep(i, pos, vel, quat, omega, thrust_state, on_ground, crashed, thrust_cmd, mass, inertia,
             rotor_pos, spin_sign, kappa, max_thrust, thrust_gain, tau_up, tau_down, drag,
             crash_speed, wind_w, force_w, g, dt, ground):
    """One physics step of vehicle ``i`` holding its row of ``thrust_cmd`` (N): motor lag, RK4,
    ground. Shared by the physics kernel and the firmware-tick kernels (sim.firmware_tick)."""
    m = mass[i]
    jx = inertia[i, 0]
    jy = inertia[i, 1]
    jz = inertia[i, 2]
    # motor lag, exact for a command held over dt
    total = 0.0
    tx = 0.0
    ty = 0.0
    tz = 0.0
    for k in range(4):
        cmd = min(max(thrust_cmd[i, k], 0.0), max_thrust[i, k] / thrust_gain[i, k])
        cmd = cmd * thrust_gain[i, k]
        cur = thrust_state[i, k]
        tau = tau_up[i, k] if cmd > cur else tau_down[i, k]
        cur = cmd + (cur - cmd) * math.exp(-dt / tau)
        thrust_state[i, k] = cur
        total += cur
        tx += rotor_pos[i, k, 1] * cur
        ty -= rotor_pos[i, k, 0] * cur
        tz += spin_sign[k] * kappa[i] * cur
    # RK4 on (p, v, q, w) with thrust and torque held over the step
    px, py, pz = pos[i, 0], pos[i, 1], pos[i, 2]
    vx, vy, vz = vel[i, 0], vel[i, 1], vel[i, 2]
    q0, q1, q2, q3 = quat[i, 0], quat[i, 1], quat[i, 2], quat[i, 3]
    wx, wy, wz = omega[i, 0], omega[i, 1], omega[i, 2]
    dx, dy, dz = drag[i, 0], drag[i, 1], drag[i, 2]
    wdx, wdy, wdz = wind_w[i, 0], wind_w[i, 1], wind_w[i, 2]
    fx, fy, fz = force_w[i, 0], force_w[i, 1], force_w[i, 2]

    a1 = _derivative(q0, q1, q2, q3, vx, vy, vz, wx, wy, wz, total, tx, ty, tz, m, jx, jy, jz,
                     dx, dy, dz, wdx, wdy, wdz, fx, fy, fz, g)
    h = 0.5 * dt
    a2 = _derivative(q0 + h * a1[3], q1 + h * a1[4], q2 + h * a1[5], q3 + h * a1[6],
                     vx + h * a1[0], vy + h * a1[1], vz + h * a1[2],
                     wx + h * a1[7], wy + h * a1[8], wz + h * a1[9], total, tx, ty, tz,
                     m, jx, jy, jz, dx, dy, dz, wdx, wdy, wdz, fx, fy, fz, g)
    a3 = _derivative(q0 + h * a2[3], q1 + h * a2[4], q2 + h * a2[5], q3 + h * a2[6],
                     vx + h * a2[0], vy + h * a2[1], vz + h * a2[2],
                     wx + h * a2[7], wy + h * a2[8], wz + h * a2[9], total, tx, ty, tz,
                     m, jx, jy, jz, dx, dy, dz, wdx, wdy, wdz, fx, fy, fz, g)
    a4 = _derivative(q0 + dt * a3[3], q1 + dt * a3[4], q2 + dt * a3[5], q3 + dt * a3[6],
                     vx + dt * a3[0], vy + dt * a3[1], vz + dt * a3[2],
                     wx + dt * a3[7], wy + dt * a3[8], wz + dt * a3[9], total, tx, ty, tz,
                     m, jx, jy, jz, dx, dy, dz, wdx, wdy, wdz, fx, fy, fz, g)
    s = dt / 6.0
    # position: its derivative is velocity, whose RK4 stages are v, v+h a1, v+h a2, v+dt a3
    px += s * (6 * vx + 2 * h * a1[0] + 2 * h * a2[0] + dt * a3[0])
    py += s * (6 * vy + 2 * h * a1[1] + 2 * h * a2[1] + dt * a3[1])
    pz += s * (6 * vz + 2 * h * a1[2] + 2 * h * a2[2] + dt * a3[2])
    vx += s * (a1[0] + 2 * a2[0] + 2 * a3[0] + a4[0])
    vy += s * (a1[1] + 2 * a2[1] + 2 * a3[1] + a4[1])
    vz += s * (a1[2] + 2 * a2[2] + 2 * a3[2] + a4[2])
    q0 += s * (a1[3] + 2 * a2[3] + 2 * a3[3] + a4[3])
    q1 += s * (a1[4] + 2 * a2[4] + 2 * a3[4] + a4[4])
    q2 += s * (a1[5] + 2 * a2[5] + 2 * a3[5] + a4[5])
    q3 += s * (a1[6] + 2 * a2[6] + 2 * a3[6] + a4[6])
    wx += s * (a1[7] + 2 * a2[7] + 2 * a3[7] + a4[7])
    wy += s * (a1[8] + 2 * a2[8] + 2 * a3[8] + a4[8])
    wz += s * (a1[9] + 2 * a2[9] + 2 * a3[9] + a4[9])
    qn = math.sqrt(q0 * q0 + q1 * q1 + q2 * q2 + q3 * q3)
    q0 /= qn
    q1 /= qn
    q2 /= qn
    q3 /= qn

    grounded = False
    if ground and pz <= 0.0:
        grounded = True
        up_z = 1 - 2 * (q1 * q1 + q2 * q2)  # body z axis, world-z component
        if -vz > crash_speed[i] or up_z < COS_60_DEG:
            crashed[i] = True
        pz = 0.0
        # resting on the ground: no sinking, no bounce, no sliding, no spin
        vx = 0.0
        vy = 0.0
        vz = 0.0
        wx = 0.0
        wy = 0.0
        wz = 0.0
    on_ground[i] = grounded
    pos[i, 0], pos[i, 1], pos[i, 2] = px, py, pz
    vel[i, 0], vel[i, 1], vel[i, 2] = vx, vy, vz
    quat[i, 0], quat[i, 1], quat[i, 2], quat[i, 3] = q0, q1, q2, q3
    omega[i, 0], omega[i, 1], omega[i, 2] = wx, wy, wz


def _step_kernel_py(pos, vel, quat, omega, thrust_state, on_ground, crashed, thrust_cmd, mass, inertia,
                 rotor_pos, spin_sign, kappa, max_thrust, thrust_gain, tau_up, tau_down, drag,
                 crash_speed, wind_w, force_w, g, dt, n_sub, ground):
    n = pos.shape[0]
    for i in numba.prange(n):
        for _ in range(n_sub):
            _substep(i, pos, vel, quat, omega, thrust_state, on_ground, crashed, thrust_cmd, mass, inertia,
                     rotor_pos, spin_sign, kappa, max_thrust, thrust_gain, tau_up, tau_down, drag,
                     crash_speed, wind_w, force_w, g, dt, ground)


# The same loop compiled twice: serially for small batches (no thread start-up per call) and
# across cores for large ones. Vehicles are independent, so both give bit-identical results.
_step_kernel = numba.njit(cache=True)(_step_kernel_py)
_step_kernel_parallel = numba.njit(cache=False, parallel=True)(_step_kernel_py)
PARALLEL_MIN_BATCH = 512


@dataclass
class Disturbance:
    """External influences, world ENU, shapes (N, 3): wind velocity (m/s) and a force (N)."""

    wind_w: np.ndarray
    force_w: np.ndarray

    @classmethod
    def none(cls, n: int) -> "Disturbance":
        """No wind, no external force."""
        return cls(np.zeros((n, 3)), np.zeros((n, 3)))


@dataclass
class QuadSim:
    """N quadrotors stepped together at ``physics_rate_hz``.

    ``step(thrust_cmd_n, n_substeps)`` holds the per-motor thrust command (N, 4) in newtons for
    ``n_substeps`` physics steps. The command is what the motor is asked for; the thrust produced
    follows it with the motor lag, scaled by the (randomized) ``thrust_gain``.
    """

    vehicle: Vehicle
    params: BatchParams
    state: QuadState
    physics_rate_hz: float = 1000.0
    gravity_mps2: float = GRAVITY_MPS2
    ground: bool = True
    disturbance: Disturbance = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.disturbance is None:
            self.disturbance = Disturbance.none(self.state.n)

    @classmethod
    def create(cls, vehicle: Vehicle, n: int, physics_rate_hz: float = 1000.0, ground: bool = True) -> "QuadSim":
        """N nominal vehicles at rest on the ground at the origin."""
        return cls(vehicle, BatchParams.nominal(vehicle, n), QuadState.zeros(n), physics_rate_hz, ground=ground)

    @property
    def dt_s(self) -> float:
        """Physics step, s."""
        return 1.0 / self.physics_rate_hz

    def step(self, thrust_cmd_n: np.ndarray, n_substeps: int = 1) -> None:
        """Advance every vehicle by ``n_substeps`` physics steps holding the thrust command (N)."""
        s, p, d = self.state, self.params, self.disturbance
        cmd = np.ascontiguousarray(thrust_cmd_n, dtype=np.float64)
        if cmd.shape != (s.n, 4):
            raise ValueError(f"thrust command must have shape ({s.n}, 4), got {cmd.shape}")
        kernel = _step_kernel_parallel if s.n >= PARALLEL_MIN_BATCH else _step_kernel
        kernel(
            s.pos_w, s.vel_w, s.quat_wb, s.omega_b, s.thrust_n, s.on_ground, s.crashed, cmd,
            p.mass_kg, p.inertia_kgm2, p.rotor_pos_m, p.spin_sign, p.torque_to_thrust_m,
            p.max_thrust_n, p.thrust_gain, p.tau_up_s, p.tau_down_s, p.drag_n_per_mps,
            p.crash_speed_mps, d.wind_w, d.force_w, self.gravity_mps2, self.dt_s, int(n_substeps),
            self.ground,
        )

    def hover_thrust_n(self) -> np.ndarray:
        """(N, 4) motor thrust commands that exactly balance gravity for each (randomized) vehicle
        with its CoM at the geometric center; what a perfect controller would command."""
        per_motor = self.params.mass_kg * self.gravity_mps2 / 4.0
        return per_motor[:, None] / self.params.thrust_gain

    def with_params(self, params: BatchParams) -> "QuadSim":
        """A copy of this simulator using other parameters (same state arrays)."""
        return replace(self, params=params)
