"""The training loop: batched env -> replay -> K tf.function updates, with periodic evaluation,
checkpoints that resume identically, TensorBoard scalars and a progress bar.

One iteration: ``chunk`` control ticks of ``num_envs`` envs acting with the numpy copy of the
actor plus exploration noise, and ``chunk * updates_per_step`` gradient steps in one compiled
call on batches sampled up front by the run's numpy Generator; with ``train.overlap`` (default)
the two run side by side on the machine's two cores (:meth:`Trainer._iterate`). All randomness
flows from the seed through numpy Generators (env, exploration, replay sampling, eval), so a run
is reproducible and a resumed run continues exactly as an uninterrupted one would (given the same
step budget).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pickle
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from sim.contract import SPEC_LAYOUTS, STATE_HISTORY_MAX, PolicySpec, hover_action
from sim.env import HoverTask, HoverTaskConfig, HoverVecEnv
from sim.errors import QuadhilError
from sim.randomization import RealismConfig
from sim.reward import RewardWeights
from sim.vehicle import Vehicle, known_vehicles, load_vehicle
from train.evaluate import eval_task_config, evaluate_policies, evaluate_policy
from train.nstep import NStepAccumulator
from train.noise import make_noise
from train.obs_scale import with_fixed_obs_scales
from train.replay import ReplayBuffer
from train.symmetry import check_turnable, turn_pairs, turn_transitions

TASKS = ("hover",)
CHECKPOINT_DIR = "checkpoint"


@dataclass(frozen=True)
class TrainConfig:
    """What shapes the loop (besides the agent's hyper-parameters and the task)."""

    num_envs: int = 32
    chunk: int = 10  # control ticks per iteration
    updates_per_step: float = 1.0  # gradient steps per control tick of all envs
    batch_size: int = 256
    warmup_steps: int = 5_000  # env transitions before the first update
    replay_capacity: int = 1_000_000
    noise: str = "gaussian"
    sigma_start: float = 0.3
    sigma_end: float = 0.05
    noise_decay_steps: int = 2_000_000
    ou_theta: float = 0.15
    eval_every_steps: int = 200_000
    # > 0: the periodic evaluations' cadence once the run has met target_success (confirmed where
    # confirm_episodes asks): a cadence chosen to see the bar sooner (Crazyflie ctbr preset v12,
    # every 25 k env steps) would otherwise keep costing a long run its evaluations (~1-2 s each)
    eval_every_steps_after_target: int = 0
    eval_episodes: int = 100
    eval_seed: int = 10_000
    checkpoint_every_steps: int = 500_000
    budget_s: float = 300.0
    max_steps: int | None = None  # env-transition budget (deterministic; for tests and resume)
    target_success: float = 0.95  # the eval success whose first crossing is timed
    stop_at_target: bool = False  # stop once an eval reaches target_success
    curriculum_steps: int = 0  # env steps over which pos/action reward weights ramp to final
    curriculum_start: float = 0.2  # fraction of the final pos/action weights at step 0
    # randomization ranges ramp from randomization_ramp_start x the run's scale to the full scale
    # over randomization_ramp_steps env steps (off when 0); evaluations always use the full ranges
    randomization_ramp_steps: int = 0
    randomization_ramp_start: float = 0.25
    log_every_s: float = 2.0
    n_step: int = 1  # TD target over n rewards (train/nstep.py)
    # learning rates decay linearly to lr_end_fraction x their start over lr_decay_steps env steps
    lr_decay_steps: int = 0
    lr_end_fraction: float = 1.0
    # acting and the gradient steps of one iteration run side by side (Trainer._iterate)
    overlap: bool = True
    eval_target_actor: bool = True  # also evaluate the Polyak-averaged target actor as a candidate
    # Trainer-side shaping on top of sim.reward: + precision_bonus * exp(-(d / precision_scale_m)^2)
    # for every non-terminal tick, d the true distance to the target. The quadratic position cost
    # is flat near the target; this term rewards the last centimetres the success test asks for.
    precision_bonus: float = 0.0
    precision_scale_m: float = 0.1
    distance_cost: float = 0.0  # - distance_cost * d: a constant pull toward the target (m^-1)
    # > 0: the precision bonus also asks for stillness, x exp(-(|v| / precision_speed_mps)^2), |v|
    # from the observed (estimated) velocity of the tick's end state (the success test's 0.2 m/s)
    precision_speed_mps: float = 0.0
    # Turn each sampled transition by a random quarter turn about the world z axis, an exact
    # symmetry of the hover task (train/symmetry.py), before the gradient step.
    yaw_symmetry: bool = False
    # TensorFlow intra-op threads for the update; 0: the machine's cores less the one that acts
    # beside it with ``overlap`` (all cores without it). The update's small matmuls gain nothing
    # from a second thread that the acting thread needs (measured in docs/training.md, "Speed").
    tf_threads: int = 0
    # numpy's OpenBLAS threads (0: leave its default, one per core). Its threads made the numpy
    # actor of a 200-episode evaluation ~10x slower on a busy 2-core machine (train/runtime.py).
    blas_threads: int = 1
    # Quarter turns and the update's noise made inside the compiled update from integers the run's
    # Generator draws (same distributions, another stream), instead of on the acting thread.
    augment_in_graph: bool = True
    # With ``overlap``: a due periodic evaluation (and its confirmation) runs on the acting thread
    # during the next iteration, beside the update that thread would otherwise wait for, on the
    # weights as they were when it fell due (the same figures, one iteration later).
    eval_beside_update: bool = True
    # The periodic evaluation flies the actor and the target actor on the same throws in one
    # batched rollout (train.evaluate.evaluate_policies: ~0.6 s where two took ~0.85 s, Crazyflie,
    # 100 episodes); their sensor noise is another draw than one rollout each would make, so
    # False repeats the periodic figures of runs before 2026-12-07 evening.
    eval_jointly: bool = True
    # > 0: a periodic evaluation at or above target_success only counts once the same actor also
    # reaches it on this many fresh episodes (a new seed per try, from confirm_seed): the fixed
    # periodic set picks its own winners. Until then training goes on.
    confirm_episodes: int = 0
    confirm_seed: int = 20_000
    # > 0: once a run is confirmed at target_success, its confirmed actor (saved as
    # actor_confirmed.keras) flies this many more episodes of the periodic evaluation's task from
    # check_seed, after the run's clock has stopped: how good the actor that met the bar is, without
    # the luck of the 200 that let it through (a 94 % actor passes 190 of 200 about a third of the time).
    check_episodes: int = 0
    check_seed: int = 30_000
    # The randomization scale of the periodic and confirming evaluations (None: quadhil eval's
    # default, the vehicle file's full ranges); `quadhil eval --randomization-scale` flies the same.
    eval_randomization_scale: float | None = None
    # > 0: each periodic-evaluation episode draws its action latency from 0..this many control
    # ticks, so "best" is chosen on delayed flights too (0: none, as `quadhil eval` by default)
    eval_latency_ticks_max: int = 0
    # A teacher to start from (train.baseline.make_teacher; "" none). Before the first update the
    # envs fly teacher_steps transitions in teacher_rounds rounds of DAgger (Ross et al. 2011): the
    # first round flies the teacher, round r flies the actor with the teacher in control of each
    # env-tick with probability 0.5**r; every observation is labelled with the teacher's action,
    # and after each round the actor is fitted to all labels so far (teacher_bc_updates steps of
    # batch_size). The transitions stay in the replay, where teacher_critic_updates updates then
    # train the critic alone, so the first actor step follows a critic of the cloned actor.
    # AgentConfig.bc_weight keeps a Q-filtered pull toward the teacher in the actor loss after that.
    teacher: str = ""
    teacher_steps: int = 0
    teacher_rounds: int = 3
    teacher_bc_updates: int = 2_000
    teacher_critic_updates: int = 5_000
    # Fields of the teacher's CascadeGains (and, motor-level, its rate loop) to replace, e.g.
    # --set 'train.teacher_gains={"k_omega": 0}' (a baseline recipe beside the preset's teacher).
    teacher_gains: dict = field(default_factory=dict)

    @property
    def updates_per_call(self) -> int:
        """Gradient steps of one compiled update call: one iteration's ``chunk`` ticks of updates."""
        return max(1, int(round(self.chunk * self.updates_per_step)))

    def to_dict(self) -> dict:
        """Plain-JSON dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Inverse of :meth:`to_dict` (unknown keys ignored). A run recorded before ``overlap``
        (``eval_jointly``) existed acted and updated in turn (evaluated one candidate at a time),
        and resumes that way."""
        d = {"overlap": False, "eval_jointly": False, **d}
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def task_config_to_dict(c: HoverTaskConfig) -> dict:
    """Plain-JSON dict of a task config."""
    return asdict(c)


def task_config_from_dict(d: dict) -> HoverTaskConfig:
    """Inverse of :func:`task_config_to_dict`."""
    d = dict(d)
    realism = d.pop("realism", {})
    for k in ("wind_mean_mps",):
        if k in realism:
            realism[k] = tuple(realism[k])
    reward = d.pop("reward", {})
    if "target_w" in d:
        d["target_w"] = tuple(d["target_w"])
    return HoverTaskConfig(**d, realism=RealismConfig(**realism), reward=RewardWeights(**reward))


def check_vehicle_and_task(vehicle: str, task: str) -> Vehicle:
    """Load the vehicle, or raise a QuadhilError naming what is known."""
    if task not in TASKS:
        raise QuadhilError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    known = known_vehicles()
    if vehicle not in known:
        raise QuadhilError(f"unknown vehicle {vehicle!r}; known vehicles: {', '.join(known)}")
    return load_vehicle(vehicle)


def make_spec(vehicle: Vehicle, layout: str, action_mode: str, control_rate_hz: float,
              task: HoverTaskConfig, action_history: int | None = None,
              state_history: int | None = None) -> PolicySpec:
    """The run's policy spec: SPEC_LAYOUTS[layout] with fixed observation scales filled in.
    ``action_history``: how many past actions the observation holds (None: the layout's own);
    ``state_history``: how many past ticks of velocity and body rates (None: none)."""
    if layout not in SPEC_LAYOUTS:
        raise QuadhilError(f"unknown layout {layout!r}; known layouts: {', '.join(sorted(SPEC_LAYOUTS))}")
    kw = {}
    if action_history is not None:
        if not 0 <= action_history <= 64:
            raise QuadhilError(f"--action-history must be in 0..64, got {action_history}")
        kw["action_history"] = action_history
    if state_history is not None:
        if not 0 <= state_history <= STATE_HISTORY_MAX:
            raise QuadhilError(f"--state-history must be in 0..{STATE_HISTORY_MAX}, got {state_history}")
        kw["state_history"] = state_history
    spec = SPEC_LAYOUTS[layout](vehicle, action_mode=action_mode, control_rate_hz=control_rate_hz, **kw)
    return with_fixed_obs_scales(spec, vehicle, task)


@dataclass
class Progress:
    """Counters and figures of a run so far (saved in checkpoints)."""

    env_steps: int = 0
    iterations: int = 0
    updates: int = 0
    episodes: int = 0
    elapsed_s: float = 0.0  # wall time spent in earlier sessions of this run
    best_success: float = -1.0
    best_rmse_m: float = float("inf")
    best_env_steps: int = 0
    best_which: str = "actor"
    confirmed_which: str | None = None  # the candidate whose confirmation met the bar
    time_to_target_s: float | None = None
    steps_to_target: int | None = None
    last_eval: dict = field(default_factory=dict)
    recent_returns: list = field(default_factory=list)
    recent_success: list = field(default_factory=list)
    next_eval_steps: int = 0
    next_checkpoint_steps: int = 0
    # every confirmation try (TrainConfig.confirm_episodes): env_steps, wall_s, which, periodic and
    # fresh success
    confirmations: list = field(default_factory=list)


def shaping(distance_m: np.ndarray, tc: TrainConfig, speed_mps: np.ndarray | None = None) -> np.ndarray:
    """Trainer-side reward shaping added on non-terminal ticks (see TrainConfig)."""
    d = np.nan_to_num(distance_m, nan=10.0)
    bonus = tc.precision_bonus * np.exp(-np.square(d / tc.precision_scale_m))
    if tc.precision_speed_mps > 0 and speed_mps is not None:
        bonus = bonus * np.exp(-np.square(np.nan_to_num(speed_mps, nan=10.0) / tc.precision_speed_mps))
    return bonus - tc.distance_cost * d


def velocity_slice(spec: PolicySpec) -> slice | None:
    """Where ``velocity_w`` sits in the spec's observation (None if the layout has no velocity)."""
    return spec.obs_slice("velocity_w") if any(f.name == "velocity_w" for f in spec.observation) else None


def shaped_reward(reward: np.ndarray, info: dict, terminated: np.ndarray, tc: TrainConfig,
                  vel_slice: slice | None) -> np.ndarray:
    """(N,) float32: the env's reward plus :func:`shaping` on the ticks that did not terminate.

    ``info`` is the vector env's step info (``distance_m``, true, m; ``final_obs``, whose
    ``vel_slice`` columns give the observed speed for the stillness factor)."""
    if not (tc.precision_bonus or tc.distance_cost):
        return reward
    speed = np.linalg.norm(info["final_obs"][:, vel_slice], axis=1) if vel_slice is not None else None
    return reward + np.where(terminated, 0.0, shaping(info["distance_m"], tc, speed)).astype(np.float32)


def curriculum_realism(final: RealismConfig, tc: TrainConfig, env_steps: int) -> RealismConfig:
    """Training realism at ``env_steps``: the randomization scale ramps linearly from
    ``randomization_ramp_start`` x final to final over ``randomization_ramp_steps`` (off when 0)."""
    if tc.randomization_ramp_steps <= 0:
        return final
    frac = min(1.0, env_steps / tc.randomization_ramp_steps)
    s = tc.randomization_ramp_start + (1.0 - tc.randomization_ramp_start) * frac
    return dataclasses.replace(final, randomization_scale=final.randomization_scale * s)


def curriculum_weights(final: RewardWeights, tc: TrainConfig, env_steps: int) -> RewardWeights:
    """Reward weights at ``env_steps``: pos and action weights ramp linearly from
    ``curriculum_start`` x final to final over ``curriculum_steps`` (off when 0)."""
    if tc.curriculum_steps <= 0:
        return final
    frac = min(1.0, env_steps / tc.curriculum_steps)
    s = tc.curriculum_start + (1.0 - tc.curriculum_start) * frac
    return dataclasses.replace(final, pos=final.pos * s, action=final.action * s)


def eval_task(task: HoverTaskConfig, tc: TrainConfig) -> HoverTaskConfig:
    """The task the periodic and confirming evaluations fly: quadhil eval's
    (:func:`train.evaluate.eval_task_config`), at ``tc.eval_randomization_scale`` if set, with each
    episode's action latency drawn from 0..``tc.eval_latency_ticks_max`` ticks if that is > 0."""
    t = eval_task_config(task)
    realism = t.realism
    if tc.eval_randomization_scale is not None:
        realism = dataclasses.replace(realism, randomization_scale=tc.eval_randomization_scale)
    if tc.eval_latency_ticks_max > 0:
        realism = dataclasses.replace(realism, latency_ticks=0, latency_ticks_max=tc.eval_latency_ticks_max)
    return dataclasses.replace(t, realism=realism)


def tf_threads_for(tc: TrainConfig, cores: int | None = None) -> int:
    """TensorFlow intra-op threads for a run of ``tc`` on ``cores`` (default: this machine's)."""
    import os

    if tc.tf_threads > 0:
        return tc.tf_threads
    n = cores or os.cpu_count() or 1
    return max(1, n - 1) if tc.overlap else n


class SectionClock:
    """Wall seconds spent per named section of the loop (perf_counter; about 0.1 us a call)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` (s) to section ``name``."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    @contextlib.contextmanager
    def section(self, name: str):
        """Context manager timing its block into ``name``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)


class Trainer:
    """A training run in ``out`` (fresh or resumed)."""

    def __init__(self, out: Path, vehicle: Vehicle, spec: PolicySpec, task: HoverTaskConfig, seed: int,
                 agent_config, train_config: TrainConfig, extra_config: dict | None = None):
        import tensorflow as tf
        import keras

        # set by the caller before TensorFlow ran (train.cli_train.build_trainer: tf_threads_for)
        self.tf_threads = tf.config.threading.get_intra_op_parallelism_threads()

        from train.agent import DDPGAgent

        self.out = Path(out)
        self.vehicle, self.spec, self.task, self.seed = vehicle, spec, task, seed
        self.tc, self.ac = train_config, agent_config
        self.extra = extra_config or {}
        keras.utils.set_random_seed(seed)  # network initialization
        self.tf = tf
        # replay rows are [observation | privileged state] when the critic is privileged
        self.agent = DDPGAgent(spec, agent_config,
                               privileged_dim=HoverTask.PRIVILEGED_DIM if agent_config.privileged_critic else 0)
        self._bias_actor_to_hover()
        from train.agent import observation_noise_std

        self._obs_noise_std = observation_noise_std(spec, vehicle.sensor_noise,
                                                    agent_config.smooth_noise_scale * task.realism.noise_scale)
        self.rng = np.random.default_rng([seed, 1])
        self.env = HoverVecEnv(vehicle, train_config.num_envs, spec=spec, config=task, seed=seed)
        self.obs, _ = self.env.reset()
        noise_kw = ({"theta": train_config.ou_theta, "sigma": train_config.sigma_start}
                    if train_config.noise == "ou" else
                    {"sigma_start": train_config.sigma_start, "sigma_end": train_config.sigma_end,
                     "decay_steps": train_config.noise_decay_steps})
        self.noise = make_noise(train_config.noise, train_config.num_envs, **noise_kw)
        row_dim = spec.obs_dim + self.agent.privileged_dim
        self.buffer = ReplayBuffer(train_config.replay_capacity, row_dim)
        self.nstep = NStepAccumulator(train_config.num_envs, row_dim, train_config.n_step, agent_config.gamma)
        self.progress = Progress(next_eval_steps=train_config.eval_every_steps,
                                 next_checkpoint_steps=train_config.checkpoint_every_steps)
        self.ep_return = np.zeros(train_config.num_envs)
        self._vel_slice = velocity_slice(spec)
        if train_config.yaw_symmetry:
            check_turnable(spec)
        if train_config.augment_in_graph:
            self.agent.set_augmentation(self._obs_noise_std, turn_pairs(spec) if train_config.yaw_symmetry else None)
        self.log_evals = False  # print eval lines to stderr when there is no progress bar
        # called after each periodic evaluation with :meth:`eval_record` (e.g. a sweep reporting
        # to its tuner); not saved in checkpoints
        self.on_eval: Callable[[dict], None] | None = None
        self._pool = None  # the worker thread of train.overlap, made on first use
        self._snapshot_models: dict = {}  # a model per evaluated candidate ('actor', 'target', 'average'), made on first use
        self.clock = SectionClock()  # where this session's wall time went (result["time_breakdown_s"])
        self.teacher = None
        self._teaching = False  # True while warm_start flies the teacher (no hover-only warm-up)
        if train_config.teacher:
            from train.baseline import make_teacher, teacher_gains_of

            try:
                self.teacher = make_teacher(train_config.teacher, spec, vehicle, train_config.teacher_gains)
            except ValueError as exc:
                raise QuadhilError(f"train.teacher: {exc}") from None
            # config.json records every gain the teacher flies, so a resumed run keeps them when
            # the defaults (train.baseline.TEACHER_GAINS) change
            self.tc = dataclasses.replace(self.tc, teacher_gains=teacher_gains_of(self.teacher))
        elif agent_config.bc_weight > 0:
            raise QuadhilError("agent.bc_weight > 0 pulls the actor toward a teacher: set train.teacher too")
        elif train_config.teacher_gains:
            raise QuadhilError("train.teacher_gains replaces a teacher's gains: set train.teacher too")

    def _bias_actor_to_hover(self) -> None:
        """Start the actor's output at the nominal hover action (zero rates), so early episodes
        fly instead of falling; pure initialization, the contract is unchanged."""
        hover = np.clip(hover_action(self.spec, self.vehicle), -0.99, 0.99)
        names = [layer.name for layer in self.agent.actor.layers]
        if "action_raw" in names:  # linear output followed by a frozen clip (px4-nn layout)
            layer, bias = self.agent.actor.get_layer("action_raw"), hover
        else:  # tanh output
            layer, bias = self.agent.actor.get_layer("action"), np.arctanh(hover)
        w, _ = layer.get_weights()
        layer.set_weights([w * 0.1, bias.astype(np.float32)])
        self.agent.reset_actor_followers()

    # --- config -----------------------------------------------------------------------------

    def config_dict(self) -> dict:
        """Everything that shaped the run (config.json)."""
        return {
            "kind": "quadhil-training-run",
            "vehicle": self.vehicle.id,
            "task": "hover",
            "seed": self.seed,
            "spec": self.spec.to_dict(),
            "agent": self.ac.to_dict(),
            "train": self.tc.to_dict(),
            "task_config": task_config_to_dict(self.task),
            **self.extra,
        }

    def write_config(self, result: dict | None = None) -> None:
        """Write config.json (with the latest result, if any)."""
        from train.networks import CONFIG

        cfg = self.config_dict()
        if result is not None:
            cfg["result"] = result
        tmp = self.out / (CONFIG + ".tmp")
        tmp.write_text(json.dumps(cfg, indent=2, sort_keys=True))
        tmp.replace(self.out / CONFIG)

    # --- checkpoints --------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """Everything needed to continue identically: agent variables, replay, RNG/env/noise
        state, counters. Written to a temp dir and swapped in, so a crash never leaves half."""
        from train.networks import ACTOR_LAST

        ck = self.out / CHECKPOINT_DIR
        tmp = self.out / (CHECKPOINT_DIR + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        values = self.agent.get_state()
        np.savez(tmp / "agent.npz", *values)
        np.savez(tmp / "replay.npz", **self.buffer.state_dict())
        with open(tmp / "state.pkl", "wb") as f:
            pickle.dump({"rng": self.rng, "env_task": self.env.task, "obs": self.obs, "noise": self.noise, "nstep": self.nstep,
                         "progress": self.progress, "ep_return": self.ep_return}, f)
        (tmp / "done").write_text("ok")
        if ck.exists():
            old = self.out / (CHECKPOINT_DIR + ".old")
            ck.replace(old)
            tmp.replace(ck)
            for p in old.iterdir():
                p.unlink()
            old.rmdir()
        else:
            tmp.replace(ck)
        self.agent.actor.save(self.out / ACTOR_LAST)

    def load_checkpoint(self) -> None:
        """Restore :meth:`save_checkpoint`; QuadhilError if missing or corrupt."""
        ck = self.out / CHECKPOINT_DIR
        if not (ck / "done").exists():
            raise QuadhilError(f"cannot resume {self.out}: no complete checkpoint in {ck}")
        try:
            with np.load(ck / "agent.npz") as z:
                values = [z[f"arr_{i}"] for i in range(len(z.files))]
            self.agent.set_state(values)
            with np.load(ck / "replay.npz") as z:
                self.buffer.load_state_dict(z)
            with open(ck / "state.pkl", "rb") as f:
                st = pickle.load(f)
            self.rng, self.obs, self.noise, self.nstep = st["rng"], st["obs"], st["noise"], st["nstep"]
            self.env.task = st["env_task"]
            self.progress, self.ep_return = st["progress"], st["ep_return"]
        except QuadhilError:
            raise
        except Exception as exc:  # zip/pickle/shape errors all mean the same thing to the user
            raise QuadhilError(f"cannot resume {self.out}: checkpoint is corrupt ({type(exc).__name__}: {exc})") from None

    # --- evaluation ----------------------------------------------------------------------------

    def evaluate(self, episodes: int, model=None, seed: int | None = None):
        """Deterministic eval of ``model`` (default: the actor) on the task ``quadhil eval`` flies
        (:func:`eval_task`: training's latency range is not part of it unless
        ``train.eval_latency_ticks_max`` says so), from ``seed`` (default: the periodic set's)."""
        return self.evaluate_candidates(episodes, [model or self.agent.actor], seed)[0]

    def evaluate_candidates(self, episodes: int, models: list, seed: int | None = None,
                            latency_ticks: int | None = None) -> list:
        """:meth:`evaluate` of each of ``models`` on the same throws, in one rollout
        (:func:`train.evaluate.evaluate_policies`; one model: exactly :meth:`evaluate`).
        ``latency_ticks``: delay every action by that many control ticks instead (as
        ``quadhil eval --latency-ticks``)."""
        from train.agent import NumpyActor

        task = eval_task(self.task, self.tc)
        if latency_ticks is not None:
            task = dataclasses.replace(task, realism=dataclasses.replace(task.realism, latency_ticks=latency_ticks,
                                                                         latency_ticks_max=None))
        return evaluate_policies([NumpyActor.from_keras(m) for m in models], self.spec, self.vehicle.id,
                                 episodes=episodes, seed=self.tc.eval_seed if seed is None else seed, task=task)

    def confirm(self, model) -> float:
        """Success rate of ``model`` on ``train.confirm_episodes`` fresh episodes of the periodic
        evaluation's task, from a seed no earlier try used (confirm_seed + tries so far)."""
        seed = self.tc.confirm_seed + len(self.progress.confirmations)
        return float(self.evaluate(self.tc.confirm_episodes, model, seed).success_rate)

    def check_confirmed(self) -> dict:
        """The confirmed actor (actor_confirmed.keras) on ``train.check_episodes`` episodes of the
        periodic evaluation's task from ``train.check_seed``: ``success_rate``, ``crash_rate``,
        ``episodes``, ``seed``, ``which`` (the candidate confirmed), ``env_steps`` (its age); and
        on the same throws with every action a control tick late (``success_rate_tick``,
        ``crash_rate_tick``; ``quadhil eval --latency-ticks 1``'s figure), because a recipe can
        buy its time to the bar with an actor a link's delay breaks
        (docs/experiments/2026-12-08-tracing-layernorm-delay.md)."""
        from train.networks import ACTOR_CONFIRMED

        import keras

        p = self.progress
        model = keras.models.load_model(self.out / ACTOR_CONFIRMED, compile=False)
        r = self.evaluate(self.tc.check_episodes, model, self.tc.check_seed)
        late = self.evaluate_candidates(self.tc.check_episodes, [model], self.tc.check_seed, latency_ticks=1)[0]
        return {"success_rate": float(r.success_rate), "crash_rate": float(r.crash_rate),
                "success_rate_tick": float(late.success_rate), "crash_rate_tick": float(late.crash_rate),
                "episodes": self.tc.check_episodes, "seed": self.tc.check_seed,
                "which": p.confirmed_which, "env_steps": p.steps_to_target}

    def _save_actor_copy(self, model, path: Path) -> None:
        """Save ``model``'s weights as a model named 'actor' (the target net is saved the same way)."""
        if model is self.agent.actor:
            model.save(path)
            return
        if not hasattr(self, "_scratch_actor"):
            from train.networks import build_actor

            self._scratch_actor = build_actor(self.spec, hidden=tuple(self.ac.actor_hidden))
        self._scratch_actor.set_weights(model.get_weights())
        self._scratch_actor.save(path)

    def final_eval(self, episodes: int = 200, seed: int = 0) -> dict:
        """Evaluate actor_best on fresh episodes (a seed the periodic selection never saw), with
        the default realism (randomization and sensor noise on); writes eval.json."""
        import keras

        from train.agent import NumpyActor
        from train.networks import ACTOR_BEST

        actor = keras.models.load_model(self.out / ACTOR_BEST, compile=False)
        task = dataclasses.replace(self.task, realism=RealismConfig())
        res = evaluate_policy(NumpyActor.from_keras(actor), self.spec, self.vehicle.id, episodes=episodes,
                              seed=seed, task=task)
        summary = {**res.summary(), "vehicle": self.vehicle.id, "action_mode": self.spec.action_mode,
                   "layout": self.spec.layout, "actor": "best", "seed": seed, "randomization": True}
        (self.out / "eval.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return summary

    # --- the loop -------------------------------------------------------------------------------

    def _act(self, actor) -> np.ndarray:
        tc, p = self.tc, self.progress
        noise = self.noise.sample(self.rng, p.env_steps)
        if p.env_steps < tc.warmup_steps and not self._teaching:
            base = np.tile(hover_action(self.spec, self.vehicle), (tc.num_envs, 1))
        else:
            base = actor(self.obs)
        return np.clip(base + noise, -1.0, 1.0).astype(np.float32)

    def _collect(self, actor) -> None:
        tc, p = self.tc, self.progress
        self.env.task.config = dataclasses.replace(self.task, reward=curriculum_weights(self.task.reward, tc, p.env_steps),
                                                   realism=curriculum_realism(self.task.realism, tc, p.env_steps))
        for _ in range(tc.chunk):
            action = self._act(actor)
            # read before stepping: envs that end in this step restart with a new airframe
            priv = self.env.task.privileged_state() if self.agent.privileged_dim else None
            next_obs, reward, terminated, truncated, info = self.env.step(action)
            reward = shaped_reward(reward, info, terminated, tc, self._vel_slice)
            row, final_row = self.obs, info["final_obs"]
            if priv is not None:
                row, final_row = np.hstack([row, priv]), np.hstack([final_row, priv])
            o, a, r, o2, m = self.nstep.step(row, action, reward, final_row, terminated, truncated)
            self.buffer.add_batch(o, a, r, o2, 1.0 - m, discount_mask=m)
            self.ep_return += reward
            done = terminated | truncated
            if done.any():
                p.episodes += int(done.sum())
                p.recent_returns = (p.recent_returns + self.ep_return[done].tolist())[-200:]
                p.recent_success = (p.recent_success + info["success"][done].astype(float).tolist())[-200:]
                self.ep_return[done] = 0.0
                self.noise.reset(done)
            self.obs = next_obs
            p.env_steps += tc.num_envs

    def _sample_update(self) -> tuple | None:
        """Draw the next K batches (and the noise the update needs) with the run's Generator and
        set the learning-rate factor; None while the replay is still warming up."""
        tc, p = self.tc, self.progress
        if p.env_steps < tc.warmup_steps or len(self.buffer) < tc.batch_size:
            return None
        k = tc.updates_per_call
        if tc.lr_decay_steps > 0:
            frac = min(1.0, p.env_steps / tc.lr_decay_steps)
            self.agent.set_lr_factor(1.0 + frac * (tc.lr_end_fraction - 1.0))
        obs, act, rew, nobs, mask = self.buffer.sample(self.rng, (k, tc.batch_size))
        if tc.augment_in_graph:
            turns = self.rng.integers(0, 4, size=(k, tc.batch_size), dtype=np.int32) if tc.yaw_symmetry else None
            seeds = None
            if self.ac.target_noise > 0 or self.ac.smooth_weight > 0:
                seeds = self.rng.integers(0, 2**31 - 1, size=(k, 2, 2), dtype=np.int64)
            return obs, act, rew, nobs, mask, None, None, turns, seeds, self._teacher_labels(obs)
        teacher_act = self._teacher_labels(obs)  # body-frame actions: a quarter turn keeps them
        if tc.yaw_symmetry:
            obs, nobs = turn_transitions(self.rng, obs, nobs, self.spec)
        tnoise = None
        if self.ac.target_noise > 0:
            tnoise = np.clip(self.ac.target_noise * self.rng.standard_normal(act.shape), -self.ac.target_noise_clip,
                             self.ac.target_noise_clip).astype(np.float32)
        snoise = None
        if self.ac.smooth_weight > 0:
            shape = obs.shape[:-1] + (self.spec.obs_dim,)  # the actor's columns only
            snoise = (self.rng.standard_normal(shape) * self._obs_noise_std).astype(np.float32)
        return obs, act, rew, nobs, mask, tnoise, snoise, None, None, teacher_act

    def _teacher_labels(self, obs: np.ndarray) -> np.ndarray | None:
        """(K, B, 4) teacher actions for sampled rows (K, B, width), or None when unused."""
        if self.teacher is None or self.ac.bc_weight <= 0:
            return None
        k, b, width = obs.shape
        return self.teacher(obs.reshape(k * b, width)[:, :self.spec.obs_dim]).reshape(k, b, 4)

    def warm_start(self) -> dict:
        """DAgger from ``train.teacher``, then critic-only updates (TrainConfig, "teacher").
        Returns {'env_steps', 'bc_loss', 'critic_updates'}; the transitions count as env steps."""
        tc, p = self.tc, self.progress
        rounds = max(1, tc.teacher_rounds)
        per_round = tc.teacher_steps // rounds
        seen_obs, seen_act = [], []
        loss = float("nan")
        for r in range(rounds):
            actor = self.agent.numpy_actor()
            p_teacher = 0.5 ** r

            def fly(obs, actor=actor, p_teacher=p_teacher):
                label = self.teacher(obs)
                seen_obs.append(obs.astype(np.float32))
                seen_act.append(label)
                if p_teacher >= 1.0:
                    return label
                mine = self.rng.random(obs.shape[0]) >= p_teacher
                return np.where(mine[:, None], actor(obs), label)

            stop = p.env_steps + per_round
            self._teaching = True
            try:
                while p.env_steps < stop:
                    self._collect(fly)
            finally:
                self._teaching = False
            obs_all, act_all = np.concatenate(seen_obs), np.concatenate(seen_act)
            batches = self.rng.integers(0, obs_all.shape[0], size=(tc.teacher_bc_updates, tc.batch_size))
            loss = self.agent.behaviour_clone(obs_all, act_all, batches)
        self.agent.actor_enabled.assign(False)
        try:
            for _ in range(-(-tc.teacher_critic_updates // tc.updates_per_call)):
                if self._update() is None:
                    break
        finally:
            self.agent.actor_enabled.assign(True)
        return {"env_steps": p.env_steps, "bc_loss": loss, "critic_updates": p.updates}

    def _update(self) -> dict | None:
        """K gradient steps on freshly sampled batches (None while warming up)."""
        with self.clock.section("sample"):
            batches = self._sample_update()
        if batches is None:
            return None
        stats = self._timed_update(batches)
        self.progress.updates += batches[0].shape[0]
        return stats

    def _timed_update(self, batches) -> dict:
        with self.clock.section("update"):  # in the worker thread with overlap
            return self.agent.update(*batches)

    def _timed_collect(self, actor) -> None:
        with self.clock.section("collect"):
            self._collect(actor)

    def _iterate(self, actor, beside: Callable[[], None] | None = None) -> dict | None:
        """One iteration: ``chunk`` ticks of acting and K gradient steps; returns the update's stats.

        With ``train.overlap`` the K updates run in a worker thread on batches drawn from the
        replay as it stood before this chunk, while this thread steps the envs with the actor as it
        was before them: TensorFlow releases the GIL while it executes, so on two cores acting and
        learning run side by side (measured in docs/training.md). Every random draw still happens in
        this thread in a fixed order, and nothing is in flight when the iteration returns, so a run
        stays reproducible and resumable. Without it: act, then update (the order before
        2026-12-02; runs with ``overlap`` false repeat those step for step)."""
        if not self.tc.overlap:
            self._timed_collect(actor)
            return self._update()
        with self.clock.section("sample"):
            batches = self._sample_update()
        if batches is None:
            self._timed_collect(actor)
            if beside is not None:
                beside()
            return None
        future = self._update_pool().submit(self._timed_update, batches)
        try:
            self._timed_collect(actor)
            if beside is not None:  # e.g. a due evaluation, while the update still runs
                beside()
        finally:
            with self.clock.section("wait_for_update"):
                stats = future.result()  # never leave an update running past the iteration
        self.progress.updates += batches[0].shape[0]
        return stats

    def _update_pool(self):
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quadhil-update")
        return self._pool

    def _eval_snapshot(self) -> dict:
        """What a periodic evaluation needs, taken while no update runs: the counters and copies of
        the candidate actors' weights (numpy arrays), so it can run beside the next update."""
        p = self.progress
        models = [("actor", self.agent.actor.get_weights())]
        if self.tc.eval_target_actor and p.updates > 0:
            models.append(("target", self.agent.actor_target.get_weights()))
        if self.agent.actor_average is not None and p.updates > 0:
            models.append(("average", self.agent.actor_average.get_weights()))
        return {"env_steps": p.env_steps, "models": models}

    def _snapshot_model(self, which: str, weights: list):
        """A model of its own per candidate (named 'actor', as saved) holding ``weights``."""
        from train.networks import build_actor

        if which not in self._snapshot_models:
            self._snapshot_models[which] = build_actor(self.spec, hidden=tuple(self.ac.actor_hidden))
        model = self._snapshot_models[which]
        model.set_weights(weights)
        return model

    def _eval_every_steps(self) -> int:
        """Env steps from one periodic evaluation to the next: ``eval_every_steps`` until the run
        has met its target, then ``eval_every_steps_after_target`` where that is set."""
        tc = self.tc
        if self.progress.time_to_target_s is not None and tc.eval_every_steps_after_target > 0:
            return tc.eval_every_steps_after_target
        return tc.eval_every_steps

    def _maybe_eval(self, t_run_s: float, writer, bar, snap: dict | None = None) -> None:
        """Evaluate when due (or ``snap``, taken by :meth:`_eval_snapshot` when it fell due); save
        actor_best on a new best; log to the bar or stderr."""
        from train.networks import ACTOR_BEST, ACTOR_CONFIRMED

        tc, p = self.tc, self.progress
        if snap is None:
            if p.env_steps < p.next_eval_steps:
                return
            snap = self._eval_snapshot()
        steps = snap["env_steps"]
        t_entry = time.perf_counter()
        while p.next_eval_steps <= steps:
            p.next_eval_steps += self._eval_every_steps()
        candidates = [(which, self._snapshot_model(which, w)) for which, w in snap["models"]]
        models = dict(candidates)
        if tc.eval_jointly:
            results = self.evaluate_candidates(tc.eval_episodes, [m for _, m in candidates])
        else:
            results = [self.evaluate(tc.eval_episodes, m) for _, m in candidates]
        for (which, model), r in zip(candidates, results):
            rmse = r.rmse_m if np.isfinite(r.rmse_m) else float("inf")
            if which == "actor" or (r.success_rate, -rmse) > (res.success_rate, -(res.rmse_m if np.isfinite(res.rmse_m) else float("inf"))):
                res, res_which = r, which
            if (r.success_rate, -rmse) > (p.best_success, -p.best_rmse_m):
                p.best_success, p.best_rmse_m, p.best_env_steps = r.success_rate, rmse, steps
                p.best_which = which
                self._save_actor_copy(model, self.out / ACTOR_BEST)
        p.last_eval = {**res.summary(), "env_steps": steps, "wall_s": t_run_s, "which": res_which}
        if p.time_to_target_s is None and res.success_rate >= tc.target_success:
            if tc.confirm_episodes > 0:
                t0 = time.perf_counter()
                fresh = self.confirm(models[res_which])
                self.clock.add("confirm", time.perf_counter() - t0)
                t_done = t_run_s + time.perf_counter() - t_entry  # the bar counts once it is confirmed
                p.confirmations.append({"env_steps": steps, "wall_s": t_done, "which": res_which,
                                        "periodic_success": res.success_rate, "fresh_success": fresh,
                                        "episodes": tc.confirm_episodes})
                if fresh >= tc.target_success:
                    p.time_to_target_s, p.steps_to_target = t_done, steps
                    p.confirmed_which = res_which
                    self._save_actor_copy(models[res_which], self.out / ACTOR_CONFIRMED)
            else:
                p.time_to_target_s, p.steps_to_target = t_run_s, steps
            if p.time_to_target_s is not None and tc.eval_every_steps_after_target > 0:
                p.next_eval_steps = steps + tc.eval_every_steps_after_target  # counted from the bar
        if writer is not None:
            with writer.as_default(step=steps):
                self.tf.summary.scalar("eval/success_rate", res.success_rate)
                self.tf.summary.scalar("eval/rmse_m", res.rmse_m if np.isfinite(res.rmse_m) else 10.0)
                self.tf.summary.scalar("eval/crash_rate", res.crash_rate)
                # how the failures fail (train.evaluate): with success they add up to 1
                for name in ("out_of_bounds_rate", "unsettled_distance_rate", "unsettled_speed_rate",
                             "unsettled_both_rate"):
                    self.tf.summary.scalar(f"eval/{name}", getattr(res, name))
                for (which, _), r in zip(candidates, results):  # each candidate's own score, on the same throws
                    self.tf.summary.scalar(f"eval_candidates/success_rate_{which}", r.success_rate)
        if self.on_eval is not None:
            self.on_eval(self.eval_record())
        if bar is not None:
            bar.write(f"eval @ {steps:,} steps, {t_run_s:.0f} s: success {res.success_rate:.1%}, "
                      f"rmse {res.rmse_m:.3f} m, crash {res.crash_rate:.1%}")
        elif self.log_evals:
            import sys
            print(f"eval @ {steps:,} steps, {p.updates:,} updates, {t_run_s:.0f} s: success {res.success_rate:.1%}, "
                  f"rmse {res.rmse_m:.3f} m, crash {res.crash_rate:.1%}", file=sys.stderr, flush=True)

    def eval_record(self) -> dict:
        """The latest periodic evaluation and the run's standing: ``success_rate``, ``rmse_m`` (m,
        None if no episode reached the time limit), ``crash_rate``, ``env_steps`` (the evaluated
        actor's), ``updates`` (so far),
        ``wall_s`` (s of this run's training so far, as the wall budget counts it),
        ``best_success``, ``time_to_target_s`` and ``steps_to_target`` (None until reached)."""
        p, last = self.progress, self.progress.last_eval
        rmse = last.get("rmse_m")
        return {"success_rate": float(last.get("success_rate", float("nan"))),
                "rmse_m": float(rmse) if rmse is not None and np.isfinite(rmse) else None,
                "crash_rate": float(last.get("crash_rate", float("nan"))),
                "env_steps": int(last.get("env_steps", p.env_steps)), "updates": int(p.updates),
                "wall_s": float(last.get("wall_s", 0.0)),
                "best_success": float(p.best_success), "time_to_target_s": p.time_to_target_s,
                "steps_to_target": p.steps_to_target}

    def run(self, t_start: float, show_progress: bool = True, tensorboard: bool = True) -> dict:
        """Train until the wall budget (counted from ``t_start``, a perf_counter value, plus the
        time of earlier sessions) or the step budget runs out. Returns the result dict."""
        from tqdm import tqdm

        tc, p = self.tc, self.progress
        writer = self.tf.summary.create_file_writer(str(self.out / "tb")) if tensorboard else None
        budget_steps = tc.max_steps
        bar = tqdm(total=int(tc.budget_s) if budget_steps is None else budget_steps, disable=not show_progress,
                   unit="s" if budget_steps is None else "step", dynamic_ncols=True, mininterval=1.0)
        t0_elapsed = p.elapsed_s
        last_log, steps_at_log, t_at_log = time.perf_counter(), p.env_steps, time.perf_counter()
        stats = None
        clock = self.clock
        warm = None
        if self.teacher is not None and tc.teacher_steps > 0 and p.env_steps == 0:
            t_warm = time.perf_counter()
            warm = self.warm_start()
            warm["wall_s"] = round(time.perf_counter() - t_warm, 3)
            self.clock = clock = SectionClock()  # the breakdown covers the loop after it
        actor = self.agent.numpy_actor()
        t_loop = time.perf_counter()

        def run_time() -> float:
            return t0_elapsed + time.perf_counter() - t_start

        while True:
            if budget_steps is not None and p.env_steps >= budget_steps:
                break
            if budget_steps is None and run_time() >= tc.budget_s:
                break
            if tc.stop_at_target and p.time_to_target_s is not None:
                break
            eval_beside = tc.overlap and tc.eval_beside_update
            beside = None
            if eval_beside and p.env_steps >= p.next_eval_steps:
                snap = self._eval_snapshot()

                def beside():
                    with clock.section("eval"):
                        self._maybe_eval(run_time(), writer, bar if show_progress else None, snap)
            s = self._iterate(actor, beside)
            stats = s or stats
            p.iterations += 1
            if s is not None:
                with clock.section("actor_copy"):
                    actor = self.agent.numpy_actor()
            if not eval_beside:
                with clock.section("eval"):
                    self._maybe_eval(run_time(), writer, bar if show_progress else None)
            if p.env_steps >= p.next_checkpoint_steps:
                while p.next_checkpoint_steps <= p.env_steps:
                    p.next_checkpoint_steps += tc.checkpoint_every_steps
                p.elapsed_s = run_time()
                with clock.section("checkpoint"):
                    self.save_checkpoint()
            now = time.perf_counter()
            if now - last_log >= tc.log_every_s:
                sps = (p.env_steps - steps_at_log) / (now - t_at_log)
                steps_at_log, t_at_log, last_log = p.env_steps, now, now
                ret = float(np.mean(p.recent_returns)) if p.recent_returns else float("nan")
                succ = float(np.mean(p.recent_success)) if p.recent_success else float("nan")
                left = (f"{max(0.0, tc.budget_s - run_time()):.0f}s" if budget_steps is None
                        else f"{max(0, budget_steps - p.env_steps):,} steps")
                bar.set_postfix_str(f"{sps:,.0f} steps/s  ret {ret:.1f}  succ {succ:.0%}  "
                                    f"eval {p.last_eval.get('success_rate', float('nan')):.0%}  left {left}")
                bar.n = int(min(run_time(), tc.budget_s)) if budget_steps is None else p.env_steps
                bar.refresh()
                if writer is not None:
                    with writer.as_default(step=p.env_steps):
                        tf = self.tf
                        tf.summary.scalar("train/env_steps_per_s", sps)
                        tf.summary.scalar("train/episode_return", ret)
                        tf.summary.scalar("train/success_rate", succ)
                        tf.summary.scalar("train/noise_scale", float(self.noise.scale if tc.noise != "ou" else tc.sigma_start))
                        if stats:
                            tf.summary.scalar("loss/critic", stats["critic_loss"])
                            tf.summary.scalar("loss/actor", stats["actor_loss"])
                            tf.summary.scalar("q/mean", stats["q_mean"])
                            if "airframe_r2" in stats:  # the actor's airframe head (agent.airframe_aux_weight)
                                tf.summary.scalar("airframe/r2", stats["airframe_r2"])
        loop_s = time.perf_counter() - t_loop
        bar.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        # an evaluation that fell due in the last iteration, as if it had run beside another one
        self._maybe_eval(run_time(), writer, None)
        # a final eval so "best" reflects the end of training too
        p.next_eval_steps = min(p.next_eval_steps, p.env_steps)
        self._maybe_eval(run_time(), writer, None)
        p.elapsed_s = run_time()
        self.save_checkpoint()
        if writer is not None:
            writer.flush()
        # only a confirmed pass saved an actor to check (without train.confirm_episodes none is)
        check = self.check_confirmed() if tc.check_episodes > 0 and p.confirmed_which is not None else None
        return {
            "train_wall_s": p.elapsed_s,
            "wall_s": p.elapsed_s,
            "env_steps": p.env_steps,
            "updates": p.updates,
            "episodes": p.episodes,
            "best_periodic_success": p.best_success,
            "best_periodic_rmse_m": p.best_rmse_m if np.isfinite(p.best_rmse_m) else None,
            "best_env_steps": p.best_env_steps,
            "best_which": p.best_which,
            "time_to_target_s": p.time_to_target_s,
            "steps_to_target": p.steps_to_target,
            "last_eval": p.last_eval,
            "last_stats": stats,
            "confirmations": p.confirmations,
            **({"confirmed_check": check} if check is not None else {}),
            "tf_threads": self.tf_threads,
            "time_breakdown_s": self.time_breakdown(loop_s),
            **({"warm_start": warm} if warm is not None else {}),
        }

    def time_breakdown(self, loop_s: float) -> dict:
        """Where this session's loop time went, s: ``collect`` (acting and env stepping, replay
        insert), ``sample`` (replay batches and the update's noise), ``update`` (the compiled K
        updates, timed in the thread that runs them; beside ``collect`` with overlap),
        ``wait_for_update`` (acting done, update not), ``actor_copy``, ``eval`` (periodic, with
        ``confirm`` inside it), ``checkpoint``, and ``other`` = ``loop`` less the sections on the
        acting thread (logging, TensorBoard)."""
        sec = dict(self.clock.seconds)
        acting_thread = sum(v for k, v in sec.items() if k not in ("update", "confirm")) if self.tc.overlap else \
            sum(v for k, v in sec.items() if k != "confirm")
        return {**{k: round(v, 3) for k, v in sorted(sec.items())}, "loop": round(loop_s, 3),
                "other": round(loop_s - acting_thread, 3)}
