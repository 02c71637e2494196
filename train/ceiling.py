"""How far above a policy could success go on its task? A bound from the episodes it fails.

Each failed episode (airframe, throw and action latency exactly as evaluated) is flown again in a
batch of identical envs without sensor noise and wind gusts, with everything known, and a
cross-entropy search looks for an open-loop residual on the policy's own actions (piecewise
constant, one value per ``knot_s``, the whole episode) that the task scores a success. An episode is

* ``noise``: the policy itself succeeds once the sensor noise is off;
* ``recovered``: the search found a sequence that succeeds;
* ``not_found``: the search did not (which proves nothing: the search is finite).

``ceiling_lower_bound`` = (successes + noise + recovered) / episodes: at least that share of the
task's episodes can be flown to success by a controller that knew the airframe. Where it sits
well above the policy's rate, what stops the policy is what it does not know or how it acts, not
the vehicle's authority; where it sits at the policy's rate, the bar is at the physics.
Used by ``quadhil eval RUN --suite ceiling``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from sim.contract import PolicySpec
from sim.dynamics import BatchParams, QuadState
from sim.env import HoverTask, HoverTaskConfig
from sim.vehicle import GRAVITY_MPS2, Vehicle
from train.evaluate import ActFn, evaluate_policy

SUITE_NAME = "ceiling"
CRASH_COST = 1e9  # above any margin a surviving flight can have (a 1 um radius included)


@dataclass(frozen=True)
class CeilingSearch:
    """The cross-entropy search per failed episode."""

    samples: int = 256  # candidate sequences flown at once, one env each
    iterations: int = 30  # search iterations at most (it stops at the first success)
    knot_s: float = 0.2  # the residual holds each value this long (s)
    sigma: float = 0.3  # first spread of the residual (normalized action units)
    elite_fraction: float = 0.1

    def __post_init__(self):
        if self.samples < 10 or self.iterations < 1 or self.knot_s <= 0 or self.sigma <= 0:
            raise ValueError("ceiling search: samples >= 10, iterations >= 1, knot_s > 0 and sigma > 0")


@dataclass(frozen=True)
class EpisodeVerdict:
    """One failed episode: its index in the evaluation, what the search found, and the best margin
    it reached (worst over the hold window of max(distance / radius, speed / speed limit); below 1
    holds; ``CRASH_COST`` if every candidate crashed)."""

    episode: int
    verdict: str  # "noise" | "recovered" | "not_found"
    iterations: int
    best_margin: float
    thrust_to_weight: float


@dataclass
class CeilingResult:
    """Result of :func:`run_ceiling`."""

    vehicle: str
    action_mode: str
    episodes: int
    seed: int
    success_rate: float
    search: CeilingSearch
    verdicts: list[EpisodeVerdict] = field(default_factory=list)
    wall_s: float = 0.0

    def count(self, verdict: str) -> int:
        """How many failed episodes got ``verdict``."""
        return sum(v.verdict == verdict for v in self.verdicts)

    @property
    def ceiling_lower_bound(self) -> float:
        """Share of all episodes a controller knowing the airframe flies to success (at least)."""
        succeeded = round(self.success_rate * self.episodes)
        return (succeeded + self.count("noise") + self.count("recovered")) / self.episodes

    def as_dict(self) -> dict:
        """Everything, JSON-ready (the --json line and ceiling.json)."""
        return {
            "suite": SUITE_NAME, "vehicle": self.vehicle, "action_mode": self.action_mode,
            "episodes": self.episodes, "seed": self.seed, "success_rate": self.success_rate,
            "failed": len(self.verdicts), "noise": self.count("noise"), "recovered": self.count("recovered"),
            "not_found": self.count("not_found"), "ceiling_lower_bound": self.ceiling_lower_bound,
            "search": dataclasses.asdict(self.search), "wall_s": self.wall_s,
            "verdicts": [dataclasses.asdict(v) for v in self.verdicts],
        }


@dataclass
class _Recorded:
    """The evaluated episodes' airframes, starts and latencies, taken right after the reset."""

    params: BatchParams | None = None
    state: QuadState | None = None
    latency: np.ndarray | None = None
    thrust_to_weight: np.ndarray | None = None
    vehicle: Vehicle | None = None

    def __call__(self, task: HoverTask) -> None:
        p = task.sim.params
        self.params, self.state = p.take(slice(None)), task.sim.state.take(slice(None))
        self.latency = task.latency_env.copy()
        self.thrust_to_weight = p.max_thrust_n.sum(axis=1) / (p.mass_kg * GRAVITY_MPS2)
        self.vehicle = task.vehicle


def _fly(env: HoverTask, act_fn: ActFn, rec: _Recorded, episode: int, residual: np.ndarray,
         knot_ticks: int) -> tuple[np.ndarray, np.ndarray]:
    """Fly ``episode`` once per row of ``residual`` (S, K, 4); returns success (S,) and the margin
    (S,): worst max(distance / radius, speed / limit) over the hold window, ``CRASH_COST`` minus
    the ticks flown for a flight that ended early."""
    n = env.n
    rows = np.full(n, episode)
    obs = env.replay(rec.params.take(rows), rec.state.take(rows), rec.latency[rows])
    cfg = env.config
    hold_from = env.max_ticks - env.hold_ticks_needed
    alive = np.ones(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    margin = np.zeros(n)
    ticks = np.zeros(n)
    for tick in range(1, env.max_ticks + 1):
        action = np.asarray(act_fn(obs.astype(np.float32, copy=False)), dtype=np.float64)
        action = np.clip(action + residual[:, (tick - 1) // knot_ticks], -1.0, 1.0)
        obs, _, terminated, truncated, info = env.step(action)
        ticks += alive
        if tick > hold_from:
            s = env.sim.state
            worst = np.maximum(np.linalg.norm(s.pos_w - env.target_w, axis=1) / cfg.success_radius_m,
                               np.linalg.norm(s.vel_w, axis=1) / cfg.success_speed_mps)
            margin = np.where(alive, np.maximum(margin, worst), margin)
        ended = alive & (terminated | truncated)
        success |= ended & info["success"]
        margin = np.where(ended & (info["crashed"] | info["out_of_bounds"]), CRASH_COST - ticks, margin)
        alive &= ~ended
        if not alive.any():
            break
    return success, margin


def search_episode(env: HoverTask, act_fn: ActFn, rec: _Recorded, episode: int, search: CeilingSearch,
                   rng: np.random.Generator) -> EpisodeVerdict:
    """The verdict on one failed episode (see the module docstring)."""
    knot_ticks = max(1, int(round(search.knot_s / env.dt_s)))
    k = -(-env.max_ticks // knot_ticks)
    zero = np.zeros((env.n, k, 4))
    ok, margin = _fly(env, act_fn, rec, episode, zero, knot_ticks)
    tw = float(rec.thrust_to_weight[episode])
    if ok[0]:
        return EpisodeVerdict(episode, "noise", 0, float(margin[0]), tw)
    mean, std = np.zeros((k, 4)), np.full((k, 4), search.sigma)
    best = float(margin[0])
    n_elite = max(2, int(round(search.elite_fraction * env.n)))
    for it in range(1, search.iterations + 1):
        residual = mean + std * rng.standard_normal((env.n, k, 4))
        residual[0] = mean
        ok, margin = _fly(env, act_fn, rec, episode, residual, knot_ticks)
        best = min(best, float(margin.min()))
        if ok.any():
            return EpisodeVerdict(episode, "recovered", it, best, tw)
        elite = residual[np.argsort(margin)[:n_elite]]
        mean, std = elite.mean(axis=0), np.maximum(elite.std(axis=0), 0.02)
    return EpisodeVerdict(episode, "not_found", search.iterations, best, tw)


def run_ceiling(act_fn: ActFn, spec: PolicySpec, task: HoverTaskConfig, episodes: int = 1000, seed: int = 0,
                search: CeilingSearch = CeilingSearch(),
                progress: Callable[[int, int, EpisodeVerdict], None] | None = None) -> CeilingResult:
    """Evaluate ``act_fn`` on ``episodes`` throws of ``task`` (seed ``seed``, the task's realism),
    then search every failed one (module docstring). ``progress(i, n_failed, verdict)`` after each."""
    t0 = time.perf_counter()
    rec = _Recorded()
    result = evaluate_policy(act_fn, spec, spec.vehicle, episodes=episodes, seed=seed, task=task,
                             keep_trajectories=1, after_reset=rec)
    failed = np.flatnonzero(~result.success)
    quiet = dataclasses.replace(task, realism=dataclasses.replace(task.realism, sensor_noise=False,
                                                                  wind_gust_std_mps=0.0))
    env = HoverTask(rec.vehicle, spec, search.samples, quiet, seed=seed)
    rng = np.random.default_rng(seed)
    out = CeilingResult(spec.vehicle, spec.action_mode, episodes, seed, result.success_rate, search)
    for i, episode in enumerate(failed):
        verdict = search_episode(env, act_fn, rec, int(episode), search, rng)
        out.verdicts.append(verdict)
        if progress is not None:
            progress(i + 1, len(failed), verdict)
    out.wall_s = time.perf_counter() - t0
    return out
