"""A hand-written cascade flown through the ctbr interface: the classical reference for the hover task.

Position PID (integral on altitude only, and only near the target) -> a desired acceleration ->
the collective that gives its vertical part at the current tilt (nominal mass as feed-forward) and
body rates that turn the thrust axis toward it (gain ``k_tilt``), zero yaw rate (or, with
``CascadeGains.yaw_yield_thrust_fraction``, the observed yaw rate while the collective is near
saturation). It reads only the observation a policy reads (position error, R_wb, velocity, body
rates; ENU/FLU, SI) and returns normalized
ctbr actions, so :func:`train.evaluate.evaluate_policy` flies it exactly as it flies an actor, on
the same throws, randomized airframes, noise and action latency.

What it is for: the ceiling and the delay sensitivity a learned policy can be compared with. On
the firmware-faithful Crazyflie path with the vehicle file's full ranges (2026-12-06, 1,000
episodes, seed 5) it recovers 95.9 % of throws, 95.4 % with a tick of action latency and 93.8 %
with two: the latency barely matters to it, where the DDPG actors of preset v6 fall from 61 % to
14 % (docs/experiments/2026-12-06-a-tick-of-delay.md). It is not tuned to be deployed. Read through
the observation's altitude integral (:class:`ObservedIntegralCascade`) it is also the teacher a run
can start from (``train.teacher``; Crazyflie ctbr preset v8).

Why the integral is conditional: without one the thrust-to-weight spread (1.33-3.1) leaves a
steady altitude error of up to 15 cm (the success radius is 10 cm); integrating through the throw
winds it up and the 2 s hold is missed. Why ``k_tilt`` is low (5 /s): at 8-10 /s the firmware's
rate loop behind it rings on airframes with slow spin-down and P-only loops (12-17 % crashes).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from sim.contract import PolicySpec
from sim.vehicle import GRAVITY_MPS2, Vehicle


@dataclass(frozen=True)
class CascadeGains:
    """Gains of the cascade: ``kp`` 1/s^2 and ``kd`` 1/s (position, velocity -> acceleration),
    ``ki`` 1/s^3 (altitude integral), ``k_tilt`` 1/s (thrust-axis error -> body rate),
    ``k_omega`` (measured roll/pitch rate -> rate setpoint, subtracted), ``max_tilt_rad``
    (horizontal acceleration demand capped at g tan(this))."""

    kp: float = 12.0
    kd: float = 6.0
    ki: float = 15.0
    k_tilt: float = 5.0
    max_tilt_rad: float = 0.6
    # 1/s^3 on the horizontal position-error integral. 0 behind a firmware rate loop, whose own
    # integrator takes out a torque bias; a motor-level law has none, and a CoM offset or a weak
    # motor then leaves a tilt and a position offset that only this term removes.
    ki_xy: float = 0.0
    # 1/s^2 and 1/s on the vertical axis where it differs from the horizontal (None: kp, kd). A
    # weak airframe sags kp_z / deficit below the target; past the integral's 0.3 m radius the
    # integral cannot start (the x500, thrust-to-weight 1.33 at the spread's end).
    kp_z: float | None = None
    kd_z: float | None = None
    # m/s^2: the most downward acceleration the law asks for (None: unlimited, down to zero thrust).
    # From 1 m above the target the position term alone asks for free fall, and slow motors
    # (100 ms spin-up) then cannot stop a 2 kg airframe before the ground.
    max_down_acc_mps2: float | None = None
    # Fraction of the nominal maximum collective (4 x spec.thrust_max_n) above which the yaw-rate
    # setpoint is the observed yaw rate (no yaw torque asked; None: always zero yaw rate). PX4's
    # allocator (MC_REDUCE_THRUST 1, the default: src/lib/mixer_module/params.c; mixYaw in
    # ControlAllocationSequentialDesaturation.cpp) takes collective to make room for yaw, so a
    # throw's yaw spin (up to 5 rad/s) stopped at full collective costs a weak x500 ~15 % of its
    # thrust for a second while it falls (docs/experiments/2026-12-06-x500-yaw-yield.md).
    yaw_yield_thrust_fraction: float | None = None
    # Roll/pitch rate setpoint per rad/s of measured body rate (dimensionless; 0: none). Behind a
    # rate loop the tilt follows the setpoint with a lag (PX4's rate P 0.15 with 38-100 ms motor
    # spin-up on the x500), so per horizontal axis the plant is position, velocity, tilt and tilt
    # rate; without a term on the rate the law places three of those four poles, and a faster
    # tilt loop (k_tilt) rings. With it the x500's teacher settles faster on every airframe
    # (docs/experiments/2026-12-07-x500-tilt-rate-damping.md).
    k_omega: float = 0.0


@dataclass
class CascadeHover:
    """Stateful cascade controller for N vehicles (one episode each, started together).

    Call it once per control tick with the (N, obs_dim) raw observations; :meth:`reset` forgets
    the integral, which accumulates only within ``integral_zone_m`` of the target and below
    0.5 m/s, clipped to ``integral_limit_m_s``.
    """

    spec: PolicySpec
    vehicle: Vehicle
    gains: CascadeGains = CascadeGains()
    integral_zone_m: float = 0.3
    integral_limit_m_s: float = 3.0
    integral_m_s: np.ndarray | None = field(default=None, repr=False)

    def reset(self) -> None:
        """Forget the altitude integral (a new set of episodes)."""
        self.integral_m_s = None

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """(N, obs_dim) raw observations -> (N, 4) normalized ctbr actions."""
        sl = self.spec.obs_slice
        e = obs[:, sl("position_error_w")].astype(np.float64)
        vel = obs[:, sl("velocity_w")].astype(np.float64)
        dt_s = 1.0 / self.spec.control_rate_hz
        if self.integral_m_s is None or self.integral_m_s.shape[0] != e.shape[0]:
            self.integral_m_s = np.zeros(e.shape[0])
        near = (np.abs(e[:, 2]) < self.integral_zone_m) & (np.abs(vel[:, 2]) < 0.5)
        self.integral_m_s = np.clip(self.integral_m_s + np.where(near, e[:, 2], 0.0) * dt_s,
                                    -self.integral_limit_m_s, self.integral_limit_m_s)
        return cascade_actions(obs, self.integral_m_s, self.spec, self.vehicle, self.gains)


def cascade_setpoint(obs: np.ndarray, altitude_integral_m_s: np.ndarray, spec: PolicySpec, vehicle: Vehicle,
                     gains: CascadeGains = CascadeGains(),
                     horizontal_integral_m_s: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The cascade's law, memoryless: (N, obs_dim) raw observations, (N,) altitude-error integral
    (m*s, world up) and, for ``gains.ki_xy``, (N, 2) horizontal integral (m*s, world EN) ->
    (N,) collective thrust (N) and (N, 3) body-rate setpoint (rad/s, FLU), neither clipped."""
    sl = spec.obs_slice
    e = obs[:, sl("position_error_w")].astype(np.float64)
    rot = obs[:, sl("rotation_matrix_wb")].astype(np.float64).reshape(-1, 3, 3)
    vel = obs[:, sl("velocity_w")].astype(np.float64)
    kp_z = gains.kp if gains.kp_z is None else gains.kp_z
    kd_z = gains.kd if gains.kd_z is None else gains.kd_z
    acc = -np.array([gains.kp, gains.kp, kp_z]) * e - np.array([gains.kd, gains.kd, kd_z]) * vel
    acc[:, 2] -= gains.ki * np.asarray(altitude_integral_m_s, dtype=np.float64)
    if gains.max_down_acc_mps2 is not None:
        acc[:, 2] = np.maximum(acc[:, 2], -gains.max_down_acc_mps2)
    if gains.ki_xy:
        acc[:, :2] -= gains.ki_xy * np.asarray(horizontal_integral_m_s, dtype=np.float64)
    horiz = np.linalg.norm(acc[:, :2], axis=1, keepdims=True)
    cap = GRAVITY_MPS2 * math.tan(gains.max_tilt_rad)
    acc[:, :2] *= np.minimum(1.0, cap / np.maximum(horiz, 1e-9))
    acc[:, 2] += GRAVITY_MPS2
    zb = rot[:, :, 2]
    thrust_n = vehicle.mass_kg * np.maximum(acc[:, 2], 0.0) / np.maximum(zb[:, 2], 0.5)
    z_des = acc / np.linalg.norm(acc, axis=1, keepdims=True)
    rates = gains.k_tilt * np.einsum("nji,nj->ni", rot, np.cross(zb, z_des))  # world -> body
    if gains.k_omega:
        rates[:, :2] -= gains.k_omega * obs[:, sl("omega_b")][:, :2].astype(np.float64)
    if gains.yaw_yield_thrust_fraction is None:
        rates[:, 2] = 0.0
    else:
        saturated = thrust_n > gains.yaw_yield_thrust_fraction * 4.0 * spec.thrust_max_n
        rates[:, 2] = np.where(saturated, obs[:, sl("omega_b")][:, 2].astype(np.float64), 0.0)
    return thrust_n, rates


def cascade_actions(obs: np.ndarray, altitude_integral_m_s: np.ndarray, spec: PolicySpec, vehicle: Vehicle,
                    gains: CascadeGains = CascadeGains(),
                    horizontal_integral_m_s: np.ndarray | None = None) -> np.ndarray:
    """The cascade's law, memoryless: (N, obs_dim) raw observations, (N,) altitude-error integral
    (m*s, world up) and, for ``gains.ki_xy``, (N, 2) horizontal integral -> (N, 4) normalized ctbr
    actions (collective, body FLU rates)."""
    thrust_n, rates = cascade_setpoint(obs, altitude_integral_m_s, spec, vehicle, gains, horizontal_integral_m_s)
    # never the exact bottom: a zero 16-bit thrust stops the Crazyflie's motors (sim.command_path)
    a0 = np.maximum(2.0 * np.clip(thrust_n / (4 * spec.thrust_max_n), 0.0, 1.0) - 1.0, -0.98)
    rate_max = np.asarray(spec.body_rate_max_rad_s)
    return np.concatenate([a0[:, None], np.clip(rates / rate_max, -1.0, 1.0)], axis=1).astype(np.float32)


def _check_teacher_spec(spec: PolicySpec, action_mode: str, who: str) -> None:
    """ValueError unless ``spec`` has ``action_mode`` actions and observes the position-error integral."""
    if spec.action_mode != action_mode:
        raise ValueError(f"{who} flies {action_mode}; this spec's actions are {spec.action_mode!r}")
    if not spec.uses_position_integral:
        raise ValueError(f"the observed-integral cascade needs layout 'integral' (its altitude integral is "
                         f"an observation), this spec's layout is {spec.layout!r}")


@dataclass(frozen=True)
class ObservedIntegralCascade:
    """The cascade as a pure function of the observation, for a teacher (train.loop, ``train.teacher``).

    It needs layout ``integral`` and reads the altitude integral from the observation
    (``position_error_integral_w``: accumulated within 0.3 m of the target, clipped to 0.5 m*s)
    instead of keeping its own, so any observation in the replay can be labelled with the action it
    would take, and a memoryless actor can imitate it exactly. On the Crazyflie's full ranges
    (1,000 episodes, seed 5) it scores 95.4 % / 94.9 % with a tick, :class:`CascadeHover` 95.9 /
    95.4 %; in rotorpy (200 throws, seed 0) 98.5 %.
    """

    spec: PolicySpec
    vehicle: Vehicle
    gains: CascadeGains = CascadeGains()

    def __post_init__(self):
        _check_teacher_spec(self.spec, "ctbr", "the cascade")

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """(N, obs_dim) raw observations -> (N, 4) normalized ctbr actions."""
        integral = obs[:, self.spec.obs_slice("position_error_integral_w")]
        return cascade_actions(obs, integral[:, 2], self.spec, self.vehicle, self.gains, integral[:, :2])


@dataclass(frozen=True)
class ObservedIntegralMotorCascade:
    """The cascade flown motor-level, as a pure function of the observation (``train.teacher`` for
    ``motors`` actions; layout ``integral``).

    The cascade's collective and body-rate setpoint go through the rate loop a motor-level policy
    has to be: a P law on the observed gyro (``k_rate_per_s``: rate error -> angular acceleration,
    times the nominal inertia), stateless because the teacher must be a function of the observation,
    so the horizontal integral (``CascadeGains.ki_xy``) takes out the torque bias a firmware
    integrator would. The torque is scaled by the thrust deficit the altitude integral shows
    (a weak airframe's motors give less torque per command too), then mixed by the inverse of the
    nominal allocation matrix; where a motor leaves [0, max], all four shift together (collective
    gives way, the torque is kept). Output: per-motor thrust fractions of the nominal maximum.

    On the Crazyflie's full ranges (seed 21, 200 episodes; prototype figures in
    docs/experiments/2026-12-06-motor-teacher.md) it needs a fast loop: 25-63 % at 100 Hz, where a
    tick of delay turns the gains that hold the hover into crashes, 95 % at 250 Hz (88 % with a tick).
    """

    spec: PolicySpec
    vehicle: Vehicle
    gains: CascadeGains = CascadeGains()
    k_rate_per_s: tuple[float, float, float] = (60.0, 60.0, 10.0)
    max_torque_boost: float = 2.0
    # (4, 4) [T, tau] -> motor thrusts of the nominal airframe, the allocation matrix's inverse (derived)
    mixer: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        _check_teacher_spec(self.spec, "motors", "the motor-level cascade")
        object.__setattr__(self, "k_rate_per_s", tuple(self.k_rate_per_s))  # a JSON list from a run's config
        object.__setattr__(self, "mixer", np.linalg.inv(self.vehicle.allocation_matrix()))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """(N, obs_dim) raw observations -> (N, 4) normalized per-motor actions (firmware order)."""
        integral = obs[:, self.spec.obs_slice("position_error_integral_w")].astype(np.float64)
        collective_n, rate_sp = cascade_setpoint(obs, integral[:, 2], self.spec, self.vehicle, self.gains,
                                                 integral[:, :2])
        rate_max = np.asarray(self.spec.body_rate_max_rad_s)
        rate_sp = np.clip(rate_sp, -rate_max, rate_max)
        omega_b = obs[:, self.spec.obs_slice("omega_b")].astype(np.float64)
        boost = np.clip((GRAVITY_MPS2 - self.gains.ki * integral[:, 2]) / GRAVITY_MPS2, 1.0, self.max_torque_boost)
        torque_nm = (np.asarray(self.vehicle.inertia_kgm2) * np.asarray(self.k_rate_per_s)
                     * (rate_sp - omega_b) * boost[:, None])
        wrench = np.concatenate([collective_n[:, None], torque_nm], axis=1)
        thrust_n = wrench @ self.mixer.T
        top = self.spec.thrust_max_n
        shift = np.maximum(-thrust_n.min(axis=1), 0.0) + np.minimum(top - thrust_n.max(axis=1), 0.0)
        thrust_n = np.clip(thrust_n + shift[:, None], 0.0, top)
        return (2.0 * thrust_n / top - 1.0).astype(np.float32)


TEACHERS = ("cascade",)
# The motor-level teacher's rate-loop settings a run may replace (train.teacher_gains) beside CascadeGains
RATE_LOOP_KEYS = ("k_rate_per_s", "max_torque_boost")
# Per-vehicle gains of the teacher, by (vehicle, action mode). Crazyflie ctbr: CascadeHover's
# (hand-tuned on seed 5); a grid over kp 8-16, kd 4-8, ki 10-15, k_tilt 5-10 on seed 21 (1 tick)
# kept them on top (92.6 %). x500 ctbr: the best of kp 2-16, kd 2-8, ki 2-15, k_tilt 1.5-10 on
# seed 21, 200 episodes, no delay: 78 % (the Crazyflie's gains: 48 %); a slower airframe wants a
# slower position loop. Then a stiffer vertical loop (kp_z 14, kd_z 6: a weak x500 no longer sags
# past the integral's radius) and a cap on the downward demand (4 m/s^2: from above the target
# the law asked for free fall, and 100 ms motors crashed): 88.5 % on seed 21, 89.2 % of 1,000
# fresh episodes (seed 5) where the gains before gave 80.3 %. With tilt-rate damping (k_omega, 2026-12-07):
# a grid over k_tilt 7-20 x k_omega 0-0.7 x kp x kd, then 300 log-uniform draws of every gain around
# the best (seed 21, 400 throws), four candidates on 1,000 throws of seed 31, the most tick-robust
# kept and rounded: 94.6 % (seed 31), 94.7 / 94.3 / 94.6 % on the untouched seeds 5 / 11 / 41, where
# the gains before gave 89.5 / 89.1 / 89.0 / 88.8 %; with a tick of delay 87.5-89.0 % against 78-80 %
# (docs/experiments/2026-12-07-x500-tilt-rate-damping.md). Crazyflie motors (250 Hz): a random
# search over every gain below and the rate loop's (120 log-uniform draws, then 100 around the best;
# seed 21, 400 throws) found a stiffer vertical loop (kp_z 18, kd_z 9), a capped downward demand and
# a wider tilt; on 1,000 throws of seed 31, which picked it among four candidates: 94.9 % where the
# gains before (kp 14, kd 7, k_tilt 6, ki_xy 10; k_rate 60/60/10, boost 2) gave 91.3 % (on the
# untouched seeds 5 and 11: 94.4 / 95.3 % against 94.1 / 94.5 %). With a tick of delay it
# is the worse of the two (79.1 against 82.6 %): the onboard app, which flies this policy, has none
# (docs/experiments/2026-12-06-motor-teacher.md, "Evening").
TEACHER_GAINS = {
    ("x500", "ctbr"): CascadeGains(kp=6.9, kd=4.7, ki=19.3, k_tilt=9.8, k_omega=0.75, max_tilt_rad=0.84, kp_z=18.3,
                                   kd_z=8.4, max_down_acc_mps2=4.1, yaw_yield_thrust_fraction=0.8),
    ("crazyflie", "motors"): CascadeGains(kp=10.0, kd=5.0, ki=18.0, k_tilt=5.7, max_tilt_rad=0.8, ki_xy=10.0,
                                          kp_z=18.0, kd_z=9.0, max_down_acc_mps2=3.5),
}
# The motor-level teacher's rate loop by vehicle: ``k_rate_per_s`` (roll, pitch, yaw) and
# ``max_torque_boost`` (ObservedIntegralMotorCascade), found with the gains above.
TEACHER_RATE_LOOP = {
    "crazyflie": {"k_rate_per_s": (73.0, 73.0, 7.0), "max_torque_boost": 1.15},
}


def make_teacher(name: str, spec: PolicySpec, vehicle: Vehicle, overrides: dict | None = None):
    """The teacher called ``name`` (``train.teacher``) for ``spec``: a callable (N, obs_dim) raw
    observations -> (N, 4) normalized actions, memoryless. ``overrides`` (``train.teacher_gains``)
    replaces fields of its :class:`CascadeGains` and, motor-level, of its rate loop
    (``k_rate_per_s``, ``max_torque_boost``). ValueError naming what is wrong."""
    if name != "cascade":
        raise ValueError(f"unknown teacher {name!r}; known: {', '.join(TEACHERS)}")
    overrides = dict(overrides or {})
    gain_keys = set(CascadeGains.__dataclass_fields__)
    known = gain_keys | (set(RATE_LOOP_KEYS) if spec.action_mode == "motors" else set())
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown teacher gain(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    gains = dataclasses.replace(TEACHER_GAINS.get((vehicle.id, spec.action_mode), CascadeGains()),
                                **{k: v for k, v in overrides.items() if k in gain_keys})
    if spec.action_mode == "motors":
        if vehicle.id != "crazyflie":
            raise ValueError(f"the motor-level cascade's gains are measured for the Crazyflie only, not {vehicle.id!r}")
        rate_loop = {**TEACHER_RATE_LOOP[vehicle.id], **{k: v for k, v in overrides.items() if k in RATE_LOOP_KEYS}}
        return ObservedIntegralMotorCascade(spec, vehicle, gains, **rate_loop)
    return ObservedIntegralCascade(spec, vehicle, gains)


def teacher_gains_of(teacher) -> dict:
    """Every gain ``teacher`` (from :func:`make_teacher`) flies, as ``train.teacher_gains`` takes
    them: its CascadeGains fields and, motor-level, its rate loop (RATE_LOOP_KEYS). JSON-serializable."""
    rate_loop = RATE_LOOP_KEYS if isinstance(teacher, ObservedIntegralMotorCascade) else ()
    return {**dataclasses.asdict(teacher.gains), **{k: getattr(teacher, k) for k in rate_loop}}
