"""Hover-from-a-throw task: a natively batched vector env and a single Gymnasium env.

Task (Molchanov et al. 2019; Eschmann et al. 2023): reach and hold ``target_w`` from a random
start: position within +-1 m of the target, velocity +-1 m/s, tilt up to 60 deg, body rates up to
+-5 rad/s. Episodes last 5 s. Success: within 0.1 m of the target and slower than 0.2 m/s for
the whole last 2 s, never crashed. Terminated (no bootstrap): crash, ground contact, leaving a
3 m box around the target, non-finite state. Truncated (bootstrap): the time limit.
The reward is :mod:`sim.reward`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from sim.contract import (PolicySpec, act_to_command, default_spec, hover_action, integrate_position_error, observe,
                          push_action_history, push_state_history, start_state_history)
from sim.dynamics import QuadSim, QuadState
from sim.frames import quat_from_axis_angle, quat_from_euler, quat_multiply
from sim.command_path import (app_battery_compensation, cap_n, ctbr_thrust_u16, firmware_collective_n, motor_thrust_n,
                               stops_motors)
from sim.firmware_tick import can_fly, can_fly_px4, fly_crazyflie_tick, fly_px4_tick
from sim.frames import quat_to_euler
from sim.randomization import RealismConfig, Wind, noisy_estimate, sample_params
from sim.rate_control import RateController, YawAngleLoop
from sim.errors import QuadhilError
from sim.reward import RewardWeights, hover_reward
from sim.vehicle import Vehicle, load_vehicle


@dataclass(frozen=True)
class HoverTaskConfig:
    """Everything that defines the hover task except the vehicle and the contract."""

    episode_s: float = 5.0
    target_w: tuple[float, float, float] = (0.0, 0.0, 1.5)
    init_pos_m: float = 1.0
    init_vel_mps: float = 1.0
    init_tilt_deg: float = 60.0
    init_rate_rad_s: float = 5.0
    success_radius_m: float = 0.1
    success_speed_mps: float = 0.2
    hold_s: float = 2.0
    bounds_m: float = 3.0
    physics_rate_hz: float = 1000.0
    realism: RealismConfig = field(default_factory=RealismConfig)
    reward: RewardWeights = field(default_factory=RewardWeights)
    # ctbr: the firmware's tick in one compiled kernel (sim.firmware_tick). False: the numpy pieces
    # it is tested against; Crazyflie runs from before 2026-12-07 afternoon repeat step for step
    # only with False (the kernel's mixer sums in another order: the last digits differ).
    fused_tick: bool = True


class HoverTask:
    """N hover episodes stepped together at the spec's control rate (no auto-reset).

    ``step`` applies actions (N, 4), advances physics by ``physics_rate / control_rate``
    substeps, and returns the observation, reward, terminated, truncated and per-env flags.
    """

    def __init__(self, vehicle: Vehicle, spec: PolicySpec, n: int, config: HoverTaskConfig, seed: int | None):
        spec.check_vehicle(vehicle.id)
        if config.reward.yaw_command and spec.action_mode != "ctbr":
            raise QuadhilError(f"reward.yaw_command prices the ctbr yaw-rate command; in {spec.action_mode!r} mode "
                               "the action's last entry is a motor (leave it 0)")
        self.vehicle = vehicle
        self.spec = spec
        self.n = n
        self.config = config
        self.rng = np.random.default_rng(seed)
        substeps = config.physics_rate_hz / spec.control_rate_hz
        if abs(substeps - round(substeps)) > 1e-9:
            raise ValueError("physics rate must be an integer multiple of the control rate")
        self.substeps = int(round(substeps))
        self.dt_s = 1.0 / spec.control_rate_hz
        self.max_ticks = int(round(config.episode_s * spec.control_rate_hz))
        self.hold_ticks_needed = int(round(config.hold_s * spec.control_rate_hz))
        realism = config.realism
        self.sim = QuadSim(vehicle, sample_params(vehicle, n, self.rng, realism), QuadState.zeros(n),
                           config.physics_rate_hz)
        self.wind = Wind(n, realism, self.rng)
        self.rate_ctrl = RateController(vehicle, n) if spec.action_mode == "ctbr" else None
        # the rate loop runs every k physics steps (the closest integer to the firmware's rate)
        self.rate_loop_every = max(1, int(round(config.physics_rate_hz / vehicle.rate_controller.rate_hz)))
        # Crazyflie: the yaw-rate command moves a yaw-angle setpoint (controller_pid.c)
        self.yaw_loop = (YawAngleLoop.for_vehicle(vehicle, n, self.rate_loop_every / config.physics_rate_hz)
                         if self.rate_ctrl is not None and vehicle.command_path is not None else None)
        self.rate_ctrl_gains_from_params()
        self.target_w = np.tile(np.asarray(config.target_w, dtype=np.float64), (n, 1))
        self.hover = hover_action(spec, vehicle)
        self.history = np.tile(self.hover, (n, spec.action_history))
        self.latency_range = (realism.latency_ticks, max(realism.latency_ticks, realism.latency_ticks_max or 0))
        self.latency_queue = np.tile(self.hover, (self.latency_range[1] + 1, n, 1))
        self.latency_env = np.full(n, realism.latency_ticks, dtype=np.int64)
        self.tick = np.zeros(n, dtype=np.int64)
        self.hold = np.zeros(n, dtype=np.int64)
        self.prev_action = np.tile(self.hover, (n, 1))
        self.pos_integral = np.zeros((n, 3))  # position-error integral, for layouts that observe it
        self.state_history = np.zeros((n, 6 * spec.state_history))  # past estimates, for specs that observe them
        self.state_history_fresh = np.ones(n, dtype=bool)  # started at the episode's first observation

    def __setstate__(self, state: dict) -> None:
        """Unpickle (training checkpoints), filling state that older versions did not have."""
        self.__dict__.update(state)
        if "pos_integral" not in state:  # checkpoints from before the "integral" layout
            self.pos_integral = np.zeros((self.n, 3))
        if "state_history" not in state:  # checkpoints from before the state history
            self.state_history = np.zeros((self.n, 6 * self.spec.state_history))
            self.state_history_fresh = np.ones(self.n, dtype=bool)
        if "yaw_loop" not in state:  # checkpoints from before the firmware command path
            self.yaw_loop = None

    def sync_firmware_state(self, mask: np.ndarray | None = None) -> None:
        """Put the simulated firmware of the selected envs (all if None) in the state it has with
        the vehicle as it is now: PIDs reset, the gyro filter settled on the current rates (it
        runs from boot), the yaw setpoint at the current yaw (as after the bridge's first non-zero
        thrust, controller_pid.c). Called at reset; tests that place a vehicle call it too."""
        idx = np.ones(self.n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        s = self.sim.state
        if self.rate_ctrl is not None:
            self.rate_ctrl.reset(idx, s.omega_b[idx])
            if self.rate_ctrl.gyro_filter is not None:
                self.rate_ctrl.gyro_filter.settle(idx, s.omega_b[idx])
        if self.yaw_loop is not None:
            self.yaw_loop.reset(idx, np.degrees(quat_to_euler(s.quat_wb[idx])[..., 2]))

    def rate_ctrl_gains_from_params(self, mask: np.ndarray | None = None) -> None:
        """Give the rate loop of the selected envs their episode's gain scale and P-only switch."""
        if self.rate_ctrl is None:
            return
        p = self.sim.params
        idx = slice(None) if mask is None else mask
        self.rate_ctrl.set_gain_scale(mask, p.rate_gain_scale[idx], p.rate_p_only[idx])

    # --- episode start ---------------------------------------------------------------------

    def reset(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Start new episodes for the selected envs (all if None); returns the full observation."""
        mask = np.ones(self.n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        k = int(mask.sum())
        if k:
            c, rng = self.config, self.rng
            params = sample_params(self.vehicle, k, rng, c.realism)
            start = QuadState.zeros(k)
            start.pos_w = self.target_w[mask] + rng.uniform(-c.init_pos_m, c.init_pos_m, (k, 3))
            start.pos_w[:, 2] = np.maximum(start.pos_w[:, 2], 0.2)
            start.vel_w = rng.uniform(-c.init_vel_mps, c.init_vel_mps, (k, 3))
            # tilt about a random horizontal axis, uniform angle up to the limit, random yaw
            axis_angle = rng.normal(size=(k, 3))
            axis_angle[:, 2] = 0.0
            axis_angle /= np.linalg.norm(axis_angle, axis=1, keepdims=True) + 1e-12
            axis_angle *= np.deg2rad(rng.uniform(0.0, c.init_tilt_deg, (k, 1)))
            yaw = quat_from_euler(np.zeros(k), np.zeros(k), rng.uniform(-np.pi, np.pi, k))
            start.quat_wb = quat_multiply(yaw, quat_from_axis_angle(axis_angle))
            start.omega_b = rng.uniform(-c.init_rate_rad_s, c.init_rate_rad_s, (k, 3))
            start.on_ground[:] = False
            self._begin(mask, params, start, latency=None)
            # the motors start at the drawn airframe's hover thrust (its params are in place now)
            self.sim.state.thrust_n[mask] = np.tile(self.sim.hover_thrust_n()[mask].mean(axis=1, keepdims=True), (1, 4))
        return self.observe(advance=mask)

    def replay(self, params, start: QuadState, latency_ticks: np.ndarray) -> np.ndarray:
        """Start every env on a given airframe (``BatchParams`` of N rows), state and action
        latency (N,) control ticks, as :meth:`reset` starts a drawn one; returns the observation.
        For re-flying recorded episodes exactly (train.ceiling). Wind gusts are drawn afresh."""
        latency = np.asarray(latency_ticks, dtype=np.int64)
        lo, hi = self.latency_range
        if latency.shape != (self.n,) or latency.min() < lo or latency.max() > hi:
            raise ValueError(f"latency_ticks must be {self.n} values in [{lo}, {hi}]")
        mask = np.ones(self.n, dtype=bool)
        self._begin(mask, params, start, latency)
        return self.observe(advance=mask)

    def _begin(self, mask: np.ndarray, params, start: QuadState, latency: np.ndarray | None) -> None:
        """Put the selected envs on ``params`` / ``start`` with ``latency`` (None: drawn from the
        realism's range, after the wind, in the order seeds have always drawn them) and reset
        everything an episode carries (firmware, action history and queue, integral, counters)."""
        self.sim.params.put(mask, params)
        self.sim.state.put(mask, start)
        self.wind.reset(mask)
        self.rate_ctrl_gains_from_params(mask)
        self.sync_firmware_state(mask)
        self.history[mask] = np.tile(self.hover, self.spec.action_history)
        self.latency_queue[:, mask] = self.hover
        lo, hi = self.latency_range
        if latency is not None:
            self.latency_env[mask] = latency
        elif hi > lo:
            self.latency_env[mask] = self.rng.integers(lo, hi + 1, size=int(mask.sum()))
        self.prev_action[mask] = self.hover
        self.pos_integral[mask] = 0.0
        self.state_history_fresh[mask] = True
        self.tick[mask] = 0
        self.hold[mask] = 0

    # --- what a privileged critic may see ----------------------------------------------------

    PRIVILEGED_DIM = 16

    def privileged_state(self) -> np.ndarray:
        """(N, 16) float32: this episode's hidden airframe, for a training-time critic only.

        Entries (each about unit scale over the vehicle file's ranges; 0 = nominal): log mass
        ratio / 0.1, log thrust gain of motors 1-4 / 0.1, log inertia ratio (mean of the axes) / 0.1,
        log motor spin-up time-constant ratio (unscaled since the 2026-12-06 ranges: a factor 8 is
        2.1), centre-of-mass offset x, y / 1 cm, action latency (control ticks); then (2026-12-06)
        log spin-down time-constant ratio, log rate-loop gain scale, P-only rate loop (0/1), log
        yaw-torque coefficient ratio, uncompensated firmware build (0/1), sensor-noise scale - 1.
        The policy never sees these: a real airframe does not report its payload.
        """
        p, v = self.sim.params, self.vehicle
        com_xy_m = -(p.rotor_pos_m - v.rotor_position_m[None]).mean(axis=1)[:, :2]
        feats = np.concatenate([
            np.log(p.mass_kg / v.mass_kg)[:, None] / 0.1,
            np.log(p.thrust_gain) / 0.1,
            np.log(p.inertia_kgm2 / v.inertia_kgm2[None]).mean(axis=1, keepdims=True) / 0.1,
            np.log(p.tau_up_s / v.tau_up_s).mean(axis=1, keepdims=True),
            com_xy_m / 0.01,
            self.latency_env[:, None].astype(np.float64),
            np.log(p.tau_down_s / v.tau_down_s).mean(axis=1, keepdims=True),
            np.log(p.rate_gain_scale)[:, None],
            p.rate_p_only[:, None].astype(np.float64),
            np.log(p.torque_to_thrust_m / v.torque_to_thrust_m)[:, None],
            (~p.compensated[:, None]).astype(np.float64) if v.compensated else np.zeros((self.n, 1)),
            p.noise_scale[:, None] - 1.0,
        ], axis=1)
        return feats.astype(np.float32)

    # --- one control tick ------------------------------------------------------------------

    def observe(self, advance: np.ndarray | None = None) -> np.ndarray:
        """Observation of every env from the (noisy, if enabled) state estimate.

        The memories a layout observes advance one tick from this estimate in the envs selected by
        ``advance`` (all if None), exactly once per control tick: a step advances every env, a reset
        only the envs it restarted. The position-error integral takes this estimate before the
        observation is built; the state history after it, as the bridge keeps it, and an episode's
        first observation starts it.
        """
        s = self.sim.state
        est = (s.pos_w, s.vel_w, s.quat_wb, s.omega_b)
        if self.config.realism.sensor_noise:
            est = noisy_estimate(*est, self.vehicle, self.rng,
                                 self.config.realism.noise_scale * self.sim.params.noise_scale)
        rows = np.ones(self.n, dtype=bool) if advance is None else np.asarray(advance, dtype=bool)
        if self.spec.uses_position_integral:
            advanced = integrate_position_error(self.pos_integral, est[0], self.target_w, self.spec)
            self.pos_integral[rows] = advanced[rows]
        if not self.spec.uses_state_history:
            return observe(*est, self.target_w, self.history, self.spec, position_error_integral=self.pos_integral)
        fresh = rows & self.state_history_fresh
        self.state_history[fresh] = start_state_history(est[1][fresh], est[3][fresh], self.spec)
        self.state_history_fresh[fresh] = False
        obs = observe(*est, self.target_w, self.history, self.spec, position_error_integral=self.pos_integral,
                      state_history=self.state_history)
        self.state_history[rows] = push_state_history(self.state_history[rows], est[1][rows], est[3][rows])
        return obs

    def _fly_rate_loop(self, cmd, physics_dt: float) -> None:
        """One control tick of ctbr: the command goes through the firmware's path (16-bit thrust
        as the bridge encodes it, sim.command_path), the rate loop runs at its rate on the filtered
        gyro, the physics one step at a time (the Crazyflie's gyro filter runs at 1 kHz)."""
        v, rc, p = self.vehicle, self.rate_ctrl, self.sim.params
        u16 = ctbr_thrust_u16(cmd.collective_thrust_n, v)
        collective = firmware_collective_n(u16, v)
        stop = stops_motors(u16, v)
        cap = cap_n(p.compensated, v)
        rate_sp = np.array(cmd.body_rate_b, dtype=np.float64)
        fused = self.config.fused_tick  # a config pickled before the field reads its default, True
        if fused and can_fly(v, rc, self.yaw_loop):
            fly_crazyflie_tick(self.sim, rc, self.yaw_loop, collective, stop, rate_sp, cap, self.substeps,
                               self.rate_loop_every)
            return
        if fused and can_fly_px4(v, rc):
            fly_px4_tick(self.sim, rc, collective, rate_sp, self.substeps, self.rate_loop_every)
            return
        yaw_cmd_dps = np.degrees(rate_sp[:, 2])
        per_gyro = rc.gyro_filter is not None
        steps = 1 if per_gyro else self.rate_loop_every
        thrust = None
        for k in range(0, self.substeps, steps):
            omega = rc.filter_gyro(self.sim.state.omega_b) if per_gyro else self.sim.state.omega_b
            if k % self.rate_loop_every == 0 or thrust is None:
                dt = min(self.rate_loop_every, self.substeps - k) * physics_dt
                if self.yaw_loop is not None:
                    yaw_deg = np.degrees(quat_to_euler(self.sim.state.quat_wb)[..., 2])
                    rate_sp[:, 2] = np.radians(self.yaw_loop.update(yaw_cmd_dps, yaw_deg))
                thrust = motor_thrust_n(rc.update(omega, rate_sp, collective, dt, cap), p.compensated, v)
                if stop.any():  # controllerPid's thrust == 0 branch: no output, every PID reset
                    thrust[stop] = 0.0
                    rc.reset(stop, omega[stop])
                    if self.yaw_loop is not None:
                        self.yaw_loop.reset(stop, yaw_deg[stop])
            self.sim.step(thrust, min(steps, self.substeps - k))

    def step(self, action: np.ndarray):
        """Apply (N, 4) actions for one control tick.

        Returns obs (N, D) float32, reward (N,), terminated (N,), truncated (N,), info dict with
        ``success`` (N,) (meaningful where the episode ended) and ``crashed`` (N,), and what the
        success test compared this tick: ``distance_m`` and ``speed_mps`` (N,), true state.
        """
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(self.n, 4), -1.0, 1.0)
        # action latency: the command applied now is the one chosen latency_ticks ago
        self.latency_queue = np.concatenate([action[None], self.latency_queue[:-1]], axis=0)
        applied = self.latency_queue[self.latency_env, np.arange(self.n)]
        cmd = act_to_command(applied, self.spec, self.vehicle)
        physics_dt = self.sim.dt_s
        wind = self.wind.step(self.dt_s)
        self.sim.disturbance.wind_w[:] = wind
        if self.rate_ctrl is None:
            p = self.sim.params
            thrust = app_battery_compensation(cmd.thrust_n, p.compensated, p.battery_thrust_scale,
                                              p.battery_sense_ratio, self.vehicle)
            self.sim.step(thrust, self.substeps)
        else:
            self._fly_rate_loop(cmd, physics_dt)

        s, c = self.sim.state, self.config
        self.tick += 1
        err = s.pos_w - self.target_w
        dist = np.linalg.norm(err, axis=1)
        speed = np.linalg.norm(s.vel_w, axis=1)
        rzz = 1.0 - 2.0 * (s.quat_wb[:, 1] ** 2 + s.quat_wb[:, 2] ** 2)
        finite = np.all(np.isfinite(s.pos_w), axis=1) & np.all(np.isfinite(s.quat_wb), axis=1)
        crashed = s.crashed | s.on_ground | ~finite
        out = np.any(np.abs(err) > c.bounds_m, axis=1)
        terminated = crashed | out
        truncated = (self.tick >= self.max_ticks) & ~terminated
        in_tol = (dist < c.success_radius_m) & (speed < c.success_speed_mps)
        self.hold = np.where(in_tol, self.hold + 1, 0)
        success = truncated & (self.hold >= self.hold_ticks_needed)
        reward = hover_reward(np.nan_to_num(err), np.nan_to_num(s.vel_w), np.nan_to_num(rzz),
                              np.nan_to_num(s.omega_b), action, self.prev_action, terminated, c.reward)
        self.prev_action = action
        self.history = push_action_history(self.history, action)
        obs = self.observe()
        info = {"success": success, "crashed": crashed, "out_of_bounds": out, "distance_m": dist, "speed_mps": speed}
        return obs, reward.astype(np.float32), terminated, truncated, info


def _spaces(spec: PolicySpec):
    clip = spec.position_error_clip_m
    low = np.full(spec.obs_dim, -np.inf, dtype=np.float32)
    high = np.full(spec.obs_dim, np.inf, dtype=np.float32)
    sl = spec.obs_slice("position_error_w")
    low[sl], high[sl] = -clip, clip
    obs_space = gym.spaces.Box(low, high, dtype=np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
    return obs_space, act_space


class HoverVecEnv(VectorEnv):
    """Natively batched hover env (no subprocesses). Same-step auto-reset: when an env ends, the
    returned observation is already the new episode's; ``info["final_obs"]`` holds the last
    observation of the ended episode (rows of other envs equal ``obs``) for bootstrapping."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, vehicle: str | Vehicle = "crazyflie", num_envs: int = 64, spec: PolicySpec | None = None,
                 config: HoverTaskConfig | None = None, seed: int | None = None):
        vehicle = load_vehicle(vehicle) if isinstance(vehicle, str) else vehicle
        self.spec = spec or default_spec(vehicle)
        self.task = HoverTask(vehicle, self.spec, num_envs, config or HoverTaskConfig(), seed)
        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space = _spaces(self.spec)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset every env; a seed re-seeds the task's generator."""
        if seed is not None:
            self.task.rng = np.random.default_rng(seed)
            self.task.wind.rng = self.task.rng
        return self.task.reset(), {}

    def step(self, actions):
        """Step all envs; ended ones restart in the same call (see class docstring)."""
        obs, reward, terminated, truncated, info = self.task.step(actions)
        done = terminated | truncated
        info["final_obs"] = obs.copy()
        info["_final_obs"] = done
        if done.any():
            # only the ended rows restart; running rows keep the observation already returned
            # (task.reset re-observes every env, which would draw fresh sensor noise for them)
            obs = np.where(done[:, None], self.task.reset(done), obs)
        return obs, reward, terminated, truncated, info


class HoverEnv(gym.Env):
    """Single-vehicle hover env, registered as ``quadhil/Hover-v0``."""

    metadata = {"render_modes": []}

    def __init__(self, vehicle: str = "crazyflie", spec: PolicySpec | None = None,
                 config: HoverTaskConfig | None = None):
        self._vehicle = load_vehicle(vehicle) if isinstance(vehicle, str) else vehicle
        self.spec = spec or default_spec(self._vehicle)
        self.config = config or HoverTaskConfig()
        self.task = HoverTask(self._vehicle, self.spec, 1, self.config, None)
        self.observation_space, self.action_space = _spaces(self.spec)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode; ``seed`` makes it reproducible."""
        super().reset(seed=seed)
        if seed is not None:
            self.task.rng = np.random.default_rng(seed)
            self.task.wind.rng = self.task.rng
        return self.task.reset()[0], {}

    def step(self, action):
        """One control tick."""
        obs, reward, terminated, truncated, info = self.task.step(np.asarray(action)[None])
        info = {k: v[0].item() for k, v in info.items()}
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), info
