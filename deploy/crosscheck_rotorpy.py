"""Fly a policy in rotorpy, an independent simulator with its own published vehicle models.

``quadhil crosscheck rotorpy --model F.tflite`` flies the exported policy, driven only by the
contract embedded in the file, in rotorpy's ``Multirotor`` (rotorpy/vehicles/multirotor.py,
rotorpy 3.0.0): the project's throws (:class:`sim.env.HoverTask`'s start distribution) and its
success test (within ``success_radius_m`` and slower than ``success_speed_mps`` for the last
``hold_s``; ground contact, a non-finite state or leaving the ``bounds_m`` box ends an episode as
a failure). The observation is :func:`sim.contract.observe`, the function the bridge
(firmware_bridge/flight.py) and training use, from rotorpy's true state, plus the vehicle file's
sensor noise with ``noise=True`` (:func:`sim.randomization.noisy_estimate`).

What rotorpy is, read from its source (rotorpy 3.0.0, vehicles/multirotor.py):

* state ``x`` (m), ``v`` (m/s) in a z-up world frame (weight ``[0, 0, -m g]``, g = 9.81), ``q``
  body-to-world **scalar-last** ``[i, j, k, w]`` (scipy's ``Rotation.from_quat`` turns it into
  the matrix that maps body to world), ``w`` body rates rad/s, body axes x forward, z along the
  thrust: the same ENU/FLU pair as quadhil, with the quaternion's scalar moved to the end.
* ``cmd_ctbr``: ``cmd_thrust`` collective N, ``cmd_w`` body rates rad/s. Its own rate loop is P
  only, ``moment = J (-k_w (w - cmd_w))`` (Crazyflie ``k_w`` = 200 /s on all axes), evaluated once
  per ``step`` call and held over it, then the allocation inverse, per-rotor speed sqrt(F / k_eta)
  and a clip to [rotor_speed_min, rotor_speed_max]: no desaturation.
* ``cmd_motor_thrusts``: per-rotor thrust N, the same conversion and clip.
* motors: first-order lag on rotor **speed** (``tau_m``, Crazyflie 0.072 s); thrust k_eta w^2; yaw
  torque ``rotor_directions`` x k_m w^2 (+1: +z reaction torque on the body, quadhil's ``cw``).
* integration: ``scipy.integrate.solve_ivp`` RK45 over each step with the command held;
  quaternion renormalized after the step. Rotor drag (``k_d``, ``k_z``) is on (``aero=True``).

The step rate is the rate rotorpy's P loop runs at; this module steps rotorpy at the vehicle
file's rate-loop rate (the firmware's: Crazyflie 500 Hz, PX4 x500 400 Hz) unless told otherwise,
holding each policy action for ``sim_rate_hz / control_rate_hz`` steps. rotorpy's own examples step
it at 100 Hz.

Vehicles: the Crazyflie flies rotorpy's ``crazyflie_params.quad_params`` as shipped. rotorpy has
no x500: the x500 flies rotorpy's ``Multirotor`` carrying the parameters of sim/vehicles/x500.toml
(:func:`x500_quad_params`), which checks the physics code and the interfaces, not the parameters.
"""

from __future__ import annotations

import copy
import math
import multiprocessing
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from sim.contract import (CtbrCommand, MotorCommand, PolicySpec, act_to_command, hover_action, integrate_position_error,
                          observe, push_action_history, push_state_history, start_state_history)
from sim.env import HoverTask, HoverTaskConfig
from sim.errors import QuadhilError
from sim.randomization import RealismConfig, noisy_estimate
from sim.vehicle import Vehicle, load_vehicle

ActFn = Callable[[np.ndarray], np.ndarray]
INSTALL_HINT = "install the optional extra: pip install 'quadhil[crosscheck]' (or: pip install rotorpy)"


def import_rotorpy():
    """rotorpy's ``Multirotor`` class and the package version; :class:`QuadhilError` if absent."""
    try:
        import rotorpy
        from rotorpy.vehicles.multirotor import Multirotor
    except ImportError as exc:
        raise QuadhilError(f"rotorpy is not installed ({exc}); {INSTALL_HINT}") from None
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("rotorpy")
    except PackageNotFoundError:  # pragma: no cover - a source checkout
        ver = getattr(rotorpy, "__version__", "unknown")
    return Multirotor, ver


def quat_wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    """quadhil's scalar-first quaternion (..., 4) -> rotorpy's (scipy's) scalar-last one."""
    return np.roll(np.asarray(q, dtype=np.float64), -1, axis=-1)


def quat_xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    """rotorpy's scalar-last quaternion (..., 4) -> quadhil's scalar-first one."""
    return np.roll(np.asarray(q, dtype=np.float64), 1, axis=-1)


@dataclass
class RotorpyAirframe:
    """A rotorpy parameter dict and how quadhil's firmware motors map onto its rotors.

    ``motor_to_rotor[i]``: index of rotorpy's rotor at firmware motor i's position (by quadrant).
    """

    quad_params: dict
    description: str
    motor_to_rotor: np.ndarray
    spin_agrees: bool  # rotorpy's rotor_directions equal the vehicle file's spin at every position

    @property
    def hover_rotor_speed_rad_s(self) -> float:
        """Rotor speed that holds rotorpy's vehicle (its own mass and g = 9.81), rad/s."""
        p = self.quad_params
        return math.sqrt(p["mass"] * 9.81 / (p["num_rotors"] * p["k_eta"]))

    @property
    def thrust_to_weight(self) -> float:
        """rotorpy vehicle's n x k_eta x w_max^2 / (m g)."""
        p = self.quad_params
        return p["num_rotors"] * p["k_eta"] * p["rotor_speed_max"] ** 2 / (p["mass"] * 9.81)


def _motor_to_rotor(vehicle: Vehicle, quad_params: dict) -> np.ndarray:
    rotors = np.array([quad_params["rotor_pos"][k] for k in quad_params["rotor_pos"]])
    mapping = []
    for pos in vehicle.rotor_position_m:
        same = [j for j, r in enumerate(rotors) if np.all(np.sign(r[:2]) == np.sign(pos[:2]))]
        if len(same) != 1:
            raise QuadhilError(f"cannot match {vehicle.id}'s motor at {pos[:2]} m to one rotorpy rotor")
        mapping.append(same[0])
    if sorted(mapping) != list(range(len(rotors))):
        raise QuadhilError(f"{vehicle.id}'s motors do not map one-to-one onto rotorpy's rotors")
    return np.array(mapping)


def x500_quad_params(vehicle: Vehicle) -> dict:
    """rotorpy parameters carrying sim/vehicles/x500.toml (there is no rotorpy x500).

    Mass, inertia, rotor positions and spin come straight from the file. Thrust: the gz model's
    k = 8.54858e-6 N/(rad/s)^2 with w_max 1000 rad/s (the file's T(u) = 8.54858 u^2 N, u = w/w_max).
    Yaw: k_m = torque_to_thrust x k. Motor lag: rotorpy has one constant, the mean of the file's
    spin-up and spin-down. Rate loop: rotorpy's P loop, k_w per axis = the file's P gain in N*m
    per rad/s over the axis inertia (PX4's MC_*RATE_P as an angular-acceleration gain; rotorpy
    has no I or D). Drag: the file's linear body drag as rotorpy's rotor drag at hover
    (k_d = d_xy / (4 w_hover), k_z = d_z / (4 w_hover)).
    """
    c0, c1, c2 = vehicle.thrust_curve_n
    if c0 != 0.0 or c1 != 0.0:
        raise QuadhilError(f"{vehicle.id}: rotorpy's k_eta w^2 needs a purely quadratic thrust curve")
    w_max = 1000.0  # x500_base/model.sdf maxRotVelocity
    k_eta = c2 / w_max**2
    w_hover = math.sqrt(vehicle.mass_kg * 9.81 / (4 * k_eta))
    inertia = vehicle.inertia_kgm2
    rc = vehicle.rate_controller
    return {
        "mass": vehicle.mass_kg, "Ixx": inertia[0], "Iyy": inertia[1], "Izz": inertia[2],
        "Ixy": 0.0, "Iyz": 0.0, "Ixz": 0.0,
        "num_rotors": 4,
        "rotor_pos": {f"r{i + 1}": np.array(p, dtype=np.float64) for i, p in enumerate(vehicle.rotor_position_m)},
        "rotor_directions": vehicle.spin_sign.astype(np.float64).copy(),
        "rI": np.zeros(3),
        "c_Dx": 0.0, "c_Dy": 0.0, "c_Dz": 0.0,
        "k_eta": k_eta, "k_m": vehicle.torque_to_thrust_m * k_eta,
        "k_d": vehicle.drag_n_per_mps[0] / (4 * w_hover), "k_z": vehicle.drag_n_per_mps[2] / (4 * w_hover),
        "k_h": 0.0, "k_flap": 0.0,
        "tau_m": 0.5 * (vehicle.tau_up_s + vehicle.tau_down_s),
        "rotor_speed_min": 0.0, "rotor_speed_max": w_max, "motor_noise_std": 0.0,
        "k_w": np.asarray(rc.kp_nm_per_rad_s / inertia, dtype=np.float64),
        "k_v": 10.0, "kp_att": 300.0, "kd_att": 40.0,
    }


def rotorpy_airframe(vehicle: Vehicle) -> RotorpyAirframe:
    """rotorpy's model of ``vehicle``: its own Crazyflie as shipped, or its Multirotor carrying
    the x500 file's parameters. :class:`QuadhilError` for a vehicle rotorpy cannot stand in for."""
    import_rotorpy()
    if vehicle.id == "crazyflie":
        from rotorpy.vehicles.crazyflie_params import quad_params

        params = copy.deepcopy(quad_params)
        desc = "rotorpy's own Crazyflie as shipped (rotorpy/vehicles/crazyflie_params.py)"
    elif vehicle.id == "x500":
        params = x500_quad_params(vehicle)
        desc = ("rotorpy has no x500: rotorpy's Multirotor carrying sim/vehicles/x500.toml's parameters "
                "(checks physics code and interfaces, not parameters)")
    else:
        raise QuadhilError(f"no rotorpy model stands in for vehicle {vehicle.id!r} (crazyflie, x500)")
    mapping = _motor_to_rotor(vehicle, params)
    rotor_dirs = np.asarray(params["rotor_directions"], dtype=np.float64)
    return RotorpyAirframe(params, desc, mapping, bool(np.all(rotor_dirs[mapping] == vehicle.spin_sign)))


@dataclass
class Episode:
    """One rotorpy episode: how it ended and what it flew like."""

    success: bool
    crashed: bool
    out_of_bounds: bool
    end_s: float
    sq_err_hold: float  # sum of squared position error over the hold window, m^2
    n_hold: int
    yaw_rate_hold: list[float]
    saturated_ticks: int  # control ticks where a commanded rotor speed was over rotorpy's max
    ticks: int


@dataclass
class CrosscheckResult:
    """Figures of a rotorpy cross-check (the same names as ``quadhil eval``'s where they match)."""

    episodes: list[Episode] = field(repr=False)
    sim_rate_hz: float = 0.0

    def summary(self) -> dict:
        """success_rate, crash_rate, out_of_bounds_rate, rmse_m (hold window of the episodes that
        reached the time limit), yaw_rate_median_rad_s, motor_saturation_fraction (control ticks
        with a rotor asked beyond rotorpy's max speed), crash_time_median_s, episodes."""
        eps = self.episodes
        n = len(eps)
        full = [e for e in eps if not (e.crashed or e.out_of_bounds)]
        n_hold = sum(e.n_hold for e in full)
        yaw = [y for e in full for y in e.yaw_rate_hold]
        crash_t = [e.end_s for e in eps if e.crashed]
        return {
            "episodes": n,
            "success_rate": sum(e.success for e in eps) / n,
            "crash_rate": sum(e.crashed for e in eps) / n,
            "out_of_bounds_rate": sum(e.out_of_bounds and not e.crashed for e in eps) / n,
            "rmse_m": math.sqrt(sum(e.sq_err_hold for e in full) / n_hold) if n_hold else float("nan"),
            "yaw_rate_median_rad_s": float(np.median(yaw)) if yaw else float("nan"),
            "motor_saturation_fraction": sum(e.saturated_ticks for e in eps) / max(sum(e.ticks for e in eps), 1),
            "crash_time_median_s": float(np.median(crash_t)) if crash_t else float("nan"),
        }


def throws(spec: PolicySpec, vehicle: Vehicle, n: int, seed: int, task: HoverTaskConfig | None = None):
    """(pos_w, vel_w, quat_wb, omega_b), each (n, ...), of ``n`` of the project's throws: exactly
    :meth:`sim.env.HoverTask.reset`'s start distribution, drawn with ``seed``."""
    task = replace(task or HoverTaskConfig(), realism=RealismConfig.off())
    t = HoverTask(vehicle, spec, n, task, seed)
    t.reset()
    s = t.sim.state
    return s.pos_w.copy(), s.vel_w.copy(), s.quat_wb.copy(), s.omega_b.copy()


def rotorpy_control(cmd: CtbrCommand | MotorCommand, airframe: RotorpyAirframe) -> dict:
    """One vehicle's command (batch of 1) as rotorpy's control dict: ctbr -> ``cmd_thrust`` N and
    ``cmd_w`` rad/s body FLU; motors -> ``cmd_motor_thrusts`` N, each firmware motor's thrust on
    the rotorpy rotor at its position."""
    if isinstance(cmd, CtbrCommand):
        return {"cmd_thrust": float(cmd.collective_thrust_n[0]), "cmd_w": np.array(cmd.body_rate_b[0], dtype=np.float64)}
    thrusts = np.zeros(len(airframe.motor_to_rotor))
    thrusts[airframe.motor_to_rotor] = cmd.thrust_n[0]
    return {"cmd_motor_thrusts": thrusts}


def fly_episode(act: ActFn, spec: PolicySpec, vehicle: Vehicle, airframe: RotorpyAirframe, start, task: HoverTaskConfig,
                sim_rate_hz: float, noise_rng: np.random.Generator | None) -> Episode:
    """One episode in rotorpy from ``start`` = (pos_w, vel_w, quat_wb, omega_b) of one throw.

    The policy acts every control tick on :func:`sim.contract.observe` of rotorpy's state
    (noisy if ``noise_rng``); its action is held for ``sim_rate_hz / control_rate_hz`` rotorpy steps.
    """
    Multirotor, _ = import_rotorpy()
    substeps = int(round(sim_rate_hz / spec.control_rate_hz))
    dt = 1.0 / sim_rate_hz
    ctbr = spec.action_mode == "ctbr"
    pos, vel, quat, omega = start
    state = {"x": np.array(pos, dtype=np.float64), "v": np.array(vel, dtype=np.float64),
             "q": quat_wxyz_to_xyzw(quat), "w": np.array(omega, dtype=np.float64), "wind": np.zeros(3),
             "rotor_speeds": np.full(4, airframe.hover_rotor_speed_rad_s)}
    quad = Multirotor(airframe.quad_params, initial_state=state,
                      control_abstraction="cmd_ctbr" if ctbr else "cmd_motor_thrusts", aero=True, enable_ground=False)
    w_max = airframe.quad_params["rotor_speed_max"]
    target = np.asarray(task.target_w, dtype=np.float64)
    max_ticks = int(round(task.episode_s * spec.control_rate_hz))
    hold_needed = int(round(task.hold_s * spec.control_rate_hz))
    history = np.tile(hover_action(spec, vehicle), (1, spec.action_history))
    integral = np.zeros((1, 3))
    states = None  # past velocity / body-rate estimates, started at the first tick
    hold = 0
    sq_err, n_hold, yaw, saturated = 0.0, 0, [], 0
    crashed = out = success = False
    tick = 0
    for tick in range(1, max_ticks + 1):
        est = (state["x"][None], state["v"][None], quat_xyzw_to_wxyz(state["q"])[None], state["w"][None])
        if noise_rng is not None:
            est = noisy_estimate(*est, vehicle, noise_rng, 1.0)
        if spec.uses_position_integral:
            integral = integrate_position_error(integral, est[0], target, spec)
        if states is None:
            states = start_state_history(est[1], est[3], spec)
        obs = observe(*est, target, history, spec, position_error_integral=integral, state_history=states)
        states = push_state_history(states, est[1], est[3])
        action = np.asarray(act(obs), dtype=np.float64).reshape(1, 4)
        history = push_action_history(history, action)
        control = rotorpy_control(act_to_command(action, spec, vehicle), airframe)
        saturated += bool(np.any(quad.get_cmd_motor_speeds(state, control) > w_max))
        for _ in range(substeps):
            state = quad.step(state, control, dt)
            if not (np.all(np.isfinite(state["x"])) and np.all(np.isfinite(state["q"]))) or state["x"][2] <= 0.0:
                crashed = True  # quadhil's test: ground contact or a non-finite state ends it as a crash
                break
        err = state["x"] - target
        out = bool(np.any(np.abs(err) > task.bounds_m)) if not crashed else False
        if crashed or out:
            break
        in_window = tick > max_ticks - hold_needed
        if in_window:
            sq_err += float(err @ err)
            n_hold += 1
            yaw.append(abs(float(state["w"][2])))
        in_tol = np.linalg.norm(err) < task.success_radius_m and np.linalg.norm(state["v"]) < task.success_speed_mps
        hold = hold + 1 if in_tol else 0
    else:
        success = hold >= hold_needed
    return Episode(success=bool(success), crashed=crashed, out_of_bounds=out, end_s=tick / spec.control_rate_hz,
                   sq_err_hold=sq_err, n_hold=n_hold, yaw_rate_hold=yaw, saturated_ticks=saturated, ticks=tick)


# Set in the parent before a fork pool starts, read by its workers: a TFLite interpreter and a
# closure are not picklable, but a forked child inherits them.
_JOB: dict = {}


def _run_indices(indices: list[int]) -> list[Episode]:
    j = _JOB
    act = j["make_act"]()
    out = []
    for i in indices:
        start = tuple(a[i] for a in j["starts"])
        rng = np.random.default_rng([j["seed"], 1, i]) if j["noise"] else None
        out.append(fly_episode(act, j["spec"], j["vehicle"], j["airframe"], start, j["task"], j["sim_rate_hz"], rng))
    return out


def crosscheck(make_act: Callable[[], ActFn], spec: PolicySpec, episodes: int = 200, seed: int = 0,
               noise: bool = False, sim_rate_hz: float | None = None, jobs: int = 1,
               task: HoverTaskConfig | None = None, airframe: RotorpyAirframe | None = None) -> CrosscheckResult:
    """Fly ``episodes`` of the project's throws (drawn with ``seed``) in rotorpy.

    ``make_act()`` returns the policy (raw float32 observations (1, obs_dim) -> actions (1, 4));
    it is called once per worker process. ``sim_rate_hz`` None: the vehicle file's rate-loop rate.
    ``jobs`` > 1 splits the episodes over forked processes; the result does not depend on it
    (each episode's sensor noise has its own seed).
    """
    if episodes < 1:
        raise QuadhilError(f"episodes must be >= 1, got {episodes}")
    if jobs < 1:
        raise QuadhilError(f"jobs must be >= 1, got {jobs}")
    vehicle = load_vehicle(spec.vehicle)
    airframe = airframe or rotorpy_airframe(vehicle)
    rate = float(sim_rate_hz or vehicle.rate_controller.rate_hz)
    ratio = rate / spec.control_rate_hz
    if rate <= 0 or abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
        raise QuadhilError(f"the rotorpy step rate {rate:g} Hz must be a whole multiple of the policy's "
                           f"{spec.control_rate_hz:g} Hz")
    task = task or HoverTaskConfig()
    _JOB.clear()
    _JOB.update(make_act=make_act, spec=spec, vehicle=vehicle, airframe=airframe, task=task, sim_rate_hz=rate,
                noise=noise, seed=seed, starts=throws(spec, vehicle, episodes, seed, task))
    chunks = [list(range(episodes))[k::jobs] for k in range(min(jobs, episodes))]
    try:
        if len(chunks) == 1:
            parts = [_run_indices(chunks[0])]
        else:
            with multiprocessing.get_context("fork").Pool(len(chunks)) as pool:
                parts = pool.map(_run_indices, chunks)
    finally:
        _JOB.clear()
    by_index: dict[int, Episode] = {}
    for chunk, eps in zip(chunks, parts):
        by_index.update(zip(chunk, eps))
    return CrosscheckResult([by_index[i] for i in range(episodes)], sim_rate_hz=rate)


@dataclass
class PDHover:
    """A hand-written cascaded PD hover in the ``default`` observation layout, for checking a
    simulator's interfaces: position/velocity PD to an acceleration vector, the thrust that gives
    its vertical part at the current tilt (kept below ``max_collective_fraction`` of the full
    collective, for torque headroom), tilt error to body rates (yaw rate 0).

    Reads only the observation (position error, R_wb, velocity, body rates); ``mass_kg`` is the
    mass of the airframe it flies. Returns ctbr actions for ``spec``. If rotorpy's quaternion
    order, frames or ctbr units were mapped wrongly, it could not hover (tests/deploy).
    """

    spec: PolicySpec
    mass_kg: float
    kp: float = 6.0  # 1/s^2, position error -> acceleration
    kd: float = 4.0  # 1/s, velocity -> acceleration
    k_tilt: float = 6.0  # 1/s, tilt error -> body rate
    max_tilt_rad: float = 0.6  # horizontal acceleration demand capped at g tan(this)
    max_rate_step_rad_s: float | tuple[float, float, float] | None = None  # per body axis, or one for all
    min_tilt_cos: float = 0.5  # the thrust is raised for tilt only down to this cos(tilt)
    max_collective_fraction: float = 0.8  # of the spec's full collective

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """(N, obs_dim) raw observations -> (N, 4) normalized ctbr actions."""
        sl = self.spec.obs_slice
        e = obs[:, sl("position_error_w")].astype(np.float64)
        rot = obs[:, sl("rotation_matrix_wb")].astype(np.float64).reshape(-1, 3, 3)
        vel = obs[:, sl("velocity_w")].astype(np.float64)
        acc = -self.kp * e - self.kd * vel
        # limit the horizontal demand to max_tilt so that height is held first
        horiz = np.linalg.norm(acc[:, :2], axis=1, keepdims=True)
        cap = 9.81 * math.tan(self.max_tilt_rad)
        acc[:, :2] *= np.minimum(1.0, cap / np.maximum(horiz, 1e-9))
        acc[:, 2] += 9.81
        zb = rot[:, :, 2]
        # vertical first: the thrust that gives the demanded vertical acceleration at this tilt
        thrust_n = self.mass_kg * np.maximum(acc[:, 2], 0.0) / np.maximum(zb[:, 2], self.min_tilt_cos)
        z_des = acc / np.linalg.norm(acc, axis=1, keepdims=True)
        rates = self.k_tilt * np.einsum("nji,nj->ni", rot, np.cross(zb, z_des))  # world -> body
        rates[:, 2] = 0.0
        if self.max_rate_step_rad_s is not None:
            # ask the vehicle's rate loop for at most this much change from the measured rate: a
            # throw's 5 rad/s against a stiff P-only loop would otherwise saturate the rotors
            omega = obs[:, sl("omega_b")].astype(np.float64)
            step = np.asarray(self.max_rate_step_rad_s, dtype=np.float64)
            rates = omega + np.clip(rates - omega, -step, step)
        # headroom: a rate loop without desaturation (rotorpy's) loses all torque at full collective
        a0 = 2.0 * np.clip(thrust_n / (4 * self.spec.thrust_max_n), 0.0, self.max_collective_fraction) - 1.0
        rate_max = np.asarray(self.spec.body_rate_max_rad_s)
        return np.concatenate([a0[:, None], np.clip(rates / rate_max, -1.0, 1.0)], axis=1).astype(np.float32)



# PD settings per rotorpy stand-in. The Crazyflie's P-only loop on 72 ms motors is stiff and lightly
# damped: the rate setpoint moves at most 1 rad/s from the measured rate per tick, and the spec's
# full collective (4 x THRUST_MAX, 0.45 N) is already 78 % of rotorpy's 0.575 N. The x500 stand-in's
# loop is soft (29 /s roll and pitch): no step limit, 10 % of the collective kept for torque.
PD_SETTINGS = {
    "crazyflie": dict(k_tilt=10.0, max_rate_step_rad_s=1.0, max_collective_fraction=1.0),
    "x500": dict(k_tilt=8.0, max_collective_fraction=0.9),
}


def pd_hover_for(spec: PolicySpec, airframe: RotorpyAirframe) -> PDHover:
    """The hand-written PD for ``spec``'s vehicle flying ``airframe`` (its mass, PD_SETTINGS)."""
    return PDHover(spec, airframe.quad_params["mass"], **PD_SETTINGS.get(spec.vehicle, {}))
