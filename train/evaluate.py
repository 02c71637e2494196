"""Evaluation of a deterministic policy on the hover task, free of TensorFlow.

The policy is any callable ``act_fn(obs) -> actions`` mapping a float32 (N, obs_dim) batch of raw
contract observations to (N, 4) normalized actions, so the same code evaluates a Keras actor, a
LiteRT interpreter (deploy/) or a hand-written controller. Each of ``episodes`` vehicles flies
exactly one episode, all batched in one :class:`sim.env.HoverVecEnv`; the envs' task is stepped
without auto-reset, so an ended episode is never confused with the next one.

Figures:
    success_rate  episodes that held within the success radius/speed for the last hold_s
    crash_rate    episodes ended by a crash or ground contact (leaving the box is neither)
    rmse_m        position RMSE over the hold window (last hold_s of the episode), pooled over
                  the episodes that reached the time limit (true state, not the noisy estimate)
    unsettled_*   episodes that flew to the time limit and still failed, by the part of the
                  success test they broke somewhere in the hold window (true state): only the
                  radius, only the speed, or both. With crash_rate and out_of_bounds_rate they
                  add up to 1 - success_rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from sim.contract import PolicySpec
from sim.env import HoverTask, HoverTaskConfig, HoverVecEnv
from sim.randomization import RealismConfig

ActFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class EvalResult:
    """Outcome of :func:`evaluate_policy`. Trajectories: ``pos_w`` (K, T, 3) world ENU m of the first
    K episodes (NaN after an episode ended), ``target_w`` (3,), ``dt_s`` the control period."""

    success_rate: float
    rmse_m: float
    crash_rate: float
    out_of_bounds_rate: float
    episodes: int
    mean_return: float
    success: np.ndarray = field(repr=False)
    crashed: np.ndarray = field(repr=False)
    episode_return: np.ndarray = field(repr=False)
    pos_w: np.ndarray = field(repr=False)
    target_w: np.ndarray = field(repr=False)
    dt_s: float = 0.01
    # median |body z rate| over the hold window of the episodes still flying there, rad/s: the
    # task does not ask for a heading, and some policies hover turning (docs/training.md)
    yaw_rate_median_rad_s: float = float("nan")
    unsettled_distance_rate: float = 0.0  # broke only the success radius in the hold window
    unsettled_speed_rate: float = 0.0  # broke only the success speed
    unsettled_both_rate: float = 0.0  # broke both (not necessarily at the same tick)

    def summary(self) -> dict:
        """The scalar figures as a plain dict (what eval.json holds)."""
        return {
            "success_rate": float(self.success_rate),
            "rmse_m": float(self.rmse_m),
            "crash_rate": float(self.crash_rate),
            "out_of_bounds_rate": float(self.out_of_bounds_rate),
            "episodes": int(self.episodes),
            "mean_return": float(self.mean_return),
            "yaw_rate_median_rad_s": float(self.yaw_rate_median_rad_s),
            "unsettled_distance_rate": float(self.unsettled_distance_rate),
            "unsettled_speed_rate": float(self.unsettled_speed_rate),
            "unsettled_both_rate": float(self.unsettled_both_rate),
        }


def eval_task_config(task: HoverTaskConfig | None) -> HoverTaskConfig:
    """The task ``quadhil eval`` flies for a run trained on ``task``: the same task with the
    default realism (randomization and sensor noise on, no action latency, no wind), whatever
    realism training used. The trainer's periodic evaluations use it too, so "time to 95 %" is
    the first moment the actor would pass ``quadhil eval``."""
    return replace(task or HoverTaskConfig(), realism=RealismConfig())


def _make_env(spec: PolicySpec, vehicle_id: str, n: int, seed: int, realism: RealismConfig | None,
              task: HoverTaskConfig | None) -> HoverVecEnv:
    task = task or HoverTaskConfig()
    if realism is not None:
        task = replace(task, realism=realism)
    spec.check_vehicle(vehicle_id)
    return HoverVecEnv(vehicle_id, n, spec=spec, config=task, seed=seed)


def _act(act_fn: ActFn, obs: np.ndarray) -> np.ndarray:
    a = np.asarray(act_fn(obs.astype(np.float32, copy=False)), dtype=np.float64)
    if a.shape != (obs.shape[0], 4):
        raise ValueError(f"act_fn returned shape {a.shape}, expected {(obs.shape[0], 4)}")
    return a


def evaluate_policy(act_fn: ActFn, spec: PolicySpec, vehicle_id: str, episodes: int = 200, seed: int = 0,
                    realism: RealismConfig | None = None, task: HoverTaskConfig | None = None,
                    keep_trajectories: int = 8,
                    after_reset: Callable[[HoverTask], None] | None = None) -> EvalResult:
    """Fly ``episodes`` episodes (one per batched env) with a deterministic policy.

    ``realism`` None keeps the task's default realism (randomization and sensor noise on).
    ``after_reset(task)``, if given, runs once after the episodes start and before the first
    action: it may override the sampled airframe (``task.sim.params``) or the rate loop
    (train.robustness does); the throws and the first observation stay those of ``seed``.
    Returns an :class:`EvalResult`; actions that are non-finite raise ValueError from the sim.
    """
    if episodes < 1:
        raise ValueError("episodes must be >= 1")
    t = _make_env(spec, vehicle_id, episodes, seed, realism, task).task
    obs = t.reset()
    if after_reset is not None:
        after_reset(t)
    return _fly(t, obs, [act_fn], keep_trajectories)[0]


def evaluate_policies(act_fns: list[ActFn], spec: PolicySpec, vehicle_id: str, episodes: int = 200,
                      seed: int = 0, task: HoverTaskConfig | None = None,
                      keep_trajectories: int = 8) -> list[EvalResult]:
    """Fly each of ``act_fns`` on the same ``episodes`` throws in one batched env: the airframes,
    starts and latencies :func:`evaluate_policy` draws from ``seed``, repeated once per policy.
    The sensor noise and gusts are drawn per env, so each result equals evaluate_policy's in
    distribution, not to the bit (one policy: evaluate_policy's own result). One rollout of
    k x episodes envs costs less than k of ``episodes`` (the per-tick Python is paid once)."""
    if episodes < 1 or not act_fns:
        raise ValueError("episodes and act_fns must be >= 1")
    if len(act_fns) == 1:
        return [evaluate_policy(act_fns[0], spec, vehicle_id, episodes, seed, task=task,
                                keep_trajectories=keep_trajectories)]
    drawn = _make_env(spec, vehicle_id, episodes, seed, None, task).task
    drawn.reset()
    rows = np.tile(np.arange(episodes), len(act_fns))
    t = _make_env(spec, vehicle_id, rows.size, seed, None, task).task
    obs = t.replay(drawn.sim.params.take(rows), drawn.sim.state.take(rows), drawn.latency_env[rows])
    return _fly(t, obs, act_fns, keep_trajectories)


def _fly(t: HoverTask, obs: np.ndarray, act_fns: list[ActFn], keep_trajectories: int) -> list[EvalResult]:
    """One episode per env of ``t`` (started, first observation ``obs``); env block i (of
    len(act_fns) equal blocks) is flown by act_fns[i]. One EvalResult per block."""
    n, blocks = t.n, len(act_fns)
    per = n // blocks
    hold_ticks = t.hold_ticks_needed
    k = min(keep_trajectories, per)
    keep = (np.arange(blocks)[:, None] * per + np.arange(k)).ravel()
    pos = np.full((keep.size, t.max_ticks + 1, 3), np.nan)
    pos[:, 0] = t.sim.state.pos_w[keep]
    alive = np.ones(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    crashed = np.zeros(n, dtype=bool)
    out = np.zeros(n, dtype=bool)
    ret = np.zeros(n)
    sq_err_sum = np.zeros(n)
    sq_err_n = np.zeros(n, dtype=np.int64)
    yaw_rates, hold_masks = [], []  # per tick: |body z rate| (n,), and who is in the hold window
    far = np.zeros(n, dtype=bool)  # outside the success radius at some tick of the hold window
    fast = np.zeros(n, dtype=bool)  # at or above the success speed at some tick of it
    c = t.config
    for tick in range(1, t.max_ticks + 1):
        action = np.concatenate([_act(f, obs[i * per:(i + 1) * per]) for i, f in enumerate(act_fns)])
        obs, reward, terminated, truncated, info = t.step(action)
        ret += np.where(alive, reward, 0.0)
        err = t.sim.state.pos_w - t.target_w
        in_window = alive & (tick > t.max_ticks - hold_ticks)
        sq_err_sum += np.where(in_window, np.nan_to_num(np.sum(err**2, axis=1), nan=1e6), 0.0)
        sq_err_n += in_window
        far |= in_window & ~(info["distance_m"] < c.success_radius_m)
        fast |= in_window & ~(info["speed_mps"] < c.success_speed_mps)
        yaw_rates.append(np.abs(t.sim.state.omega_b[:, 2]))
        hold_masks.append(in_window)
        pos[:, tick] = np.where(alive[keep, None], t.sim.state.pos_w[keep], np.nan)
        ended = alive & (terminated | truncated)
        success |= ended & info["success"]
        crashed |= ended & info["crashed"]
        out |= ended & info["out_of_bounds"] & ~info["crashed"]
        alive &= ~ended
        if not alive.any():
            break
    yaw_rates, hold_masks = np.stack(yaw_rates), np.stack(hold_masks)  # (ticks, n)
    results = []
    for i in range(blocks):
        b = slice(i * per, (i + 1) * per)
        full = ~(crashed[b] | out[b])
        unsettled = full & ~success[b]
        yaw_hold = yaw_rates[:, b][hold_masks[:, b]]
        rmse = float(np.sqrt(sq_err_sum[b][full].sum() / max(sq_err_n[b][full].sum(), 1))) if full.any() else float("nan")
        results.append(EvalResult(
            success_rate=float(success[b].mean()), rmse_m=rmse, crash_rate=float(crashed[b].mean()),
            out_of_bounds_rate=float(out[b].mean()), episodes=per, mean_return=float(ret[b].mean()),
            success=success[b], crashed=crashed[b], episode_return=ret[b], pos_w=pos[i * k:(i + 1) * k],
            target_w=np.asarray(t.target_w[0]), dt_s=t.dt_s,
            yaw_rate_median_rad_s=float(np.median(yaw_hold)) if yaw_hold.size else float("nan"),
            unsettled_distance_rate=float((unsettled & far[b] & ~fast[b]).mean()),
            unsettled_speed_rate=float((unsettled & fast[b] & ~far[b]).mean()),
            unsettled_both_rate=float((unsettled & far[b] & fast[b]).mean()),
        ))
    return results


def collect_observations(act_fn: ActFn, spec: PolicySpec, vehicle_id: str, n_obs: int, seed: int = 0,
                         realism: RealismConfig | None = None, task: HoverTaskConfig | None = None,
                         num_envs: int = 64) -> np.ndarray:
    """(n_obs, obs_dim) float32 raw observations the policy visits in eval rollouts (randomization
    on by default), sampled uniformly without replacement from whole episodes; for int8
    calibration and similar uses."""
    if n_obs < 1:
        raise ValueError("n_obs must be >= 1")
    env = _make_env(spec, vehicle_id, num_envs, seed, realism, task)
    obs, _ = env.reset()
    ticks = max(env.task.max_ticks, int(np.ceil(2 * n_obs / num_envs)))
    pool = np.empty((ticks + 1, num_envs, spec.obs_dim), dtype=np.float32)
    pool[0] = obs
    for i in range(1, ticks + 1):
        obs, _, _, _, _ = env.step(_act(act_fn, obs))
        pool[i] = obs
    pool = pool.reshape(-1, spec.obs_dim)
    rng = np.random.default_rng(seed)
    idx = rng.choice(pool.shape[0], size=n_obs, replace=n_obs > pool.shape[0])
    return pool[np.sort(idx)]
