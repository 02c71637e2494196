"""``quadhil bench sb3``: stable-baselines3 TD3 against quadhil's DDPG, wall time to 95 % eval success.

Optional extra (``pip install -e .[compare]`` after torch's CPU wheel); not part of ``make test``.

What is identical on both sides, by construction: SB3 trains on the task, spec and reward of the
quadhil run it is compared with, read from that run's ``config.json`` (the ``HoverTaskConfig``
``quadhil train`` built from ``train.presets.preset``: reward weights, realism incl. the 0-1 tick
latency range; the spec from ``train.loop.make_spec``, checked against the stored one; the
trainer-side reward shaping ``train.loop.shaping`` with the run's precision bonus), the seed, the
number of envs (one natively batched :class:`sim.env.HoverVecEnv`, no per-env Python loop), the
network sizes (actor 64-64, critics 128-128), batch 128, 2 gradient steps per vec step of 8 envs,
5,000 warm-up transitions, Gaussian exploration sigma 0.2, and the periodic evaluation
(every ``eval_every_steps`` env steps, ``eval_episodes`` episodes, the run's eval seed, through
:func:`train.evaluate.evaluate_policy` on :func:`train.evaluate.eval_task_config`, the actor and,
as quadhil does, the target actor as a second candidate). Everything else is SB3's default
(:class:`SB3TD3Config`; the JSON records the defaults in effect).

"Time to 95 %": SB3's clock starts after torch and SB3 are imported (their import time is
reported separately as ``import_s``), right before the env and model are built; quadhil's starts
at process start, TensorFlow import included. Evaluations count in both.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sim.contract import PolicySpec
from sim.env import HoverTaskConfig, HoverVecEnv
from sim.errors import QuadhilError
from train.evaluate import eval_task_config, evaluate_policy
from train.loop import (TrainConfig, check_vehicle_and_task, make_spec, shaped_reward, task_config_from_dict,
                        velocity_slice)

INSTALL_HINT = "pip install -e .[compare] (stable-baselines3; install torch's CPU wheel first)"


@dataclass(frozen=True)
class SB3TD3Config:
    """What this comparison sets on SB3's TD3; every other hyper-parameter is SB3's default.

    These make the update budget and the nets match quadhil's preset: one SB3 step is one vec step
    of all envs (8 transitions), followed by ``gradient_steps`` updates, as quadhil's
    ``updates_per_step = 2`` does per control tick of all envs.
    """

    net_arch_pi: tuple[int, ...] = (64, 64)
    net_arch_qf: tuple[int, ...] = (128, 128)
    batch_size: int = 128
    train_freq_vec_steps: int = 1
    gradient_steps: int = 2
    learning_starts: int = 5_000  # transitions of uniform random actions before the first update
    action_noise_sigma: float = 0.2  # NormalActionNoise, constant (quadhil's decays 0.2 -> 0.05)
    n_steps: int = 1  # SB3's default one-step TD target (quadhil's preset uses 5-step targets)
    device: str = "cpu"
    # torch's default is one intra-op thread per core. For these small nets on this 2-core machine
    # that ran 3 updates/s with another process busy (threads wait for each other) against 650/s
    # with one thread; one thread is SB3's best case here (docs/training.md).
    torch_threads: int = 1


# --- the quadhil side -----------------------------------------------------------------------------


@dataclass
class QuadhilRun:
    """A finished ``quadhil train`` run: what SB3 must match and the figures to compare with."""

    run_dir: str
    vehicle: str
    seed: int
    spec: PolicySpec
    task: HoverTaskConfig
    train: TrainConfig
    time_to_95_s: float | None
    best_success: float
    env_steps: int
    updates: int
    budget_s: float
    max_steps: int | None
    loadavg: list | None = None

    def figures(self) -> dict:
        """The JSON figures of this side."""
        return {"run": self.run_dir, "time_to_95_s": self.time_to_95_s, "best_success": self.best_success,
                "env_steps": self.env_steps, "updates": self.updates, "budget_s": self.budget_s,
                "max_steps": self.max_steps, "loadavg": self.loadavg,
                "clock": "from process start, TensorFlow import included"}


def load_quadhil_run(run_dir: str | Path) -> QuadhilRun:
    """Read a finished run's config.json; QuadhilError if it is not one or has no result yet."""
    from train.networks import CONFIG, load_run_spec

    path = Path(run_dir) / CONFIG
    stored, cfg = load_run_spec(run_dir)  # QuadhilError if there is no readable config.json
    if cfg.get("kind") != "quadhil-training-run":
        raise QuadhilError(f"{path} is not the config of a quadhil training run")
    result = cfg.get("result")
    if not result:
        raise QuadhilError(f"{run_dir} has no result yet (unfinished run?); finish it or pick another")
    vehicle = check_vehicle_and_task(cfg["vehicle"], cfg.get("task", "hover"))
    task = task_config_from_dict(cfg["task_config"])
    train = TrainConfig.from_dict(cfg["train"])
    if train.curriculum_steps > 0:
        raise QuadhilError(f"{run_dir} used a reward curriculum, which this comparison does not reproduce")
    spec = make_spec(vehicle, stored.layout, stored.action_mode, float(stored.control_rate_hz), task,
                     stored.action_history, stored.state_history)
    if spec.to_json() != stored.to_json():
        raise QuadhilError(f"{run_dir} was trained with a spec this code no longer builds; train it again")
    best = result.get("best_periodic_success")
    return QuadhilRun(run_dir=str(run_dir), vehicle=vehicle.id, seed=int(cfg["seed"]), spec=spec, task=task,
                      train=train, time_to_95_s=result.get("time_to_target_s"),
                      best_success=float(best) if best is not None else float("nan"),
                      env_steps=int(result["env_steps"]), updates=int(result["updates"]),
                      budget_s=float(train.budget_s), max_steps=train.max_steps, loadavg=result.get("loadavg"))


def train_quadhil(vehicle: str, seed: int, budget_minutes: float, max_steps: int | None, out: Path) -> QuadhilRun:
    """Run ``quadhil train`` as a subprocess (its own clock, TF import included) and load the run."""
    cmd = [sys.executable, "-m", "quadhil", "train", "--vehicle", vehicle, "--seed", str(seed),
           "--budget-minutes", str(budget_minutes), "--out", str(out), "--json", "--no-progress"]
    if max_steps is not None:
        cmd += ["--max-steps", str(max_steps)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0 or not last.startswith("{"):
        raise QuadhilError(f"quadhil train (seed {seed}) failed with exit code {proc.returncode}")
    return load_quadhil_run(out)


# --- the SB3 side ---------------------------------------------------------------------------------


_IMPORT_S: list[float] = []  # wall time of the first torch + SB3 import in this process


def _import_sb3():
    """(torch, stable_baselines3) or a QuadhilError telling how to install them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # SB3's logger imports tensorboard, which imports TF
    t0 = time.perf_counter()
    try:
        import stable_baselines3
        import torch
    except ImportError as exc:
        raise QuadhilError(f"stable-baselines3 is not installed ({exc.name} missing): {INSTALL_HINT}") from None
    if not _IMPORT_S:
        _IMPORT_S.append(time.perf_counter() - t0)
    return torch, stable_baselines3


@functools.cache
def _adapter_class():
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv

    class HoverSB3VecEnv(VecEnv):
        """:class:`sim.env.HoverVecEnv` as an SB3 ``VecEnv``, with quadhil's trainer-side shaping.

        Same-step auto-reset, as SB3's own vec envs: an ended env's row of ``obs`` is already the
        new episode's; ``infos[i]["terminal_observation"]`` holds the ended episode's last
        observation and ``infos[i]["TimeLimit.truncated"]`` is True for a time-limit end (SB3 then
        bootstraps through it) and False for a termination (crash, out of bounds).
        """

        def __init__(self, env: HoverVecEnv, train_config: TrainConfig):
            self.env = env
            self.train_config = train_config
            self._vel_slice = velocity_slice(env.spec)
            self._actions = None
            super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

        def reset(self):
            seed = self._seeds[0]  # one generator drives the whole batch: SB3's first per-env seed
            obs, _ = self.env.reset(seed=seed)
            self._reset_seeds()
            self._reset_options()
            return obs

        def step_async(self, actions: np.ndarray) -> None:
            self._actions = np.asarray(actions, dtype=np.float32)

        def step_wait(self):
            obs, reward, terminated, truncated, info = self.env.step(self._actions)
            # the same shaped reward train.loop.Trainer._collect stores
            reward = shaped_reward(reward, info, terminated, self.train_config, self._vel_slice)
            done = terminated | truncated
            infos: list[dict] = [{} for _ in range(self.num_envs)]
            for i in np.flatnonzero(done):
                infos[i] = {"terminal_observation": info["final_obs"][i],
                            "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                            "is_success": bool(info["success"][i])}
            return obs, reward.astype(np.float32), done, infos

        def close(self) -> None:
            pass

        def get_attr(self, attr_name, indices=None):
            if attr_name == "render_mode":
                return [None for _ in self._get_indices(indices)]
            value = getattr(self.env, attr_name)
            return [value for _ in self._get_indices(indices)]

        def set_attr(self, attr_name, value, indices=None) -> None:
            setattr(self.env, attr_name, value)

        def env_method(self, method_name, *method_args, indices=None, **method_kwargs):
            raise NotImplementedError("the batched hover env has no per-env methods")

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False for _ in self._get_indices(indices)]

    return HoverSB3VecEnv


def make_sb3_vec_env(env: HoverVecEnv, train_config: TrainConfig):
    """Wrap ``env`` as an SB3 ``VecEnv`` adding ``train.loop.shaping`` as quadhil's trainer does."""
    _import_sb3()
    return _adapter_class()(env, train_config)


@dataclass
class SB3Result:
    """Figures of one SB3 TD3 run."""

    seed: int
    time_to_95_s: float | None = None
    steps_to_95: int | None = None
    best_success: float = -1.0
    env_steps: int = 0
    updates: int = 0
    wall_s: float = 0.0
    import_s: float = 0.0
    evals: list = field(default_factory=list)
    sb3_defaults: dict = field(default_factory=dict)
    torch_threads: int = 0

    def figures(self) -> dict:
        """The JSON figures of this side."""
        d = asdict(self)
        d["env_steps_per_s"] = self.env_steps / self.wall_s if self.wall_s > 0 else None
        d["updates_per_s"] = self.updates / self.wall_s if self.wall_s > 0 else None
        d["clock"] = "from model construction, after torch and stable_baselines3 are imported (import_s)"
        return d


def _sb3_defaults(model) -> dict:
    keys = ("learning_rate", "buffer_size", "tau", "gamma", "policy_delay", "target_policy_noise",
            "target_noise_clip", "n_steps")
    d = {k: getattr(model, k) for k in keys if hasattr(model, k)}
    d["activation_fn"] = model.policy.actor.mu[1].__class__.__name__ if len(model.policy.actor.mu) > 1 else None
    d["optimizer"] = type(model.actor.optimizer).__name__
    d["learning_starts_action"] = "uniform random"
    return {k: (v if isinstance(v, (int, float, str, type(None))) else repr(v)) for k, v in d.items()}


def run_sb3(q: QuadhilRun, seed: int, budget_s: float, max_steps: int | None, cfg: SB3TD3Config,
            eval_every_steps: int, eval_episodes: int, log=None) -> SB3Result:
    """Train SB3 TD3 on ``q``'s task until the wall budget or ``max_steps`` env transitions run out,
    evaluating like quadhil's trainer; returns the figures."""
    torch, _ = _import_sb3()
    from stable_baselines3 import TD3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.noise import NormalActionNoise

    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    res = SB3Result(seed=seed, import_s=_IMPORT_S[0], torch_threads=torch.get_num_threads())
    tc = q.train
    t0 = time.perf_counter()  # the clock of "time to 95 %" (imports excluded, see import_s)

    def act_fn(net):
        def act(obs: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return net(torch.as_tensor(obs, dtype=torch.float32)).numpy()
        return act

    def evaluate(model) -> None:
        now_s = time.perf_counter() - t0
        candidates = [("actor", model.actor)]
        if tc.eval_target_actor and model._n_updates > 0:
            candidates.append(("target", model.actor_target))
        best = None
        for which, net in candidates:
            net.set_training_mode(False)
            r = evaluate_policy(act_fn(net), q.spec, q.vehicle, episodes=eval_episodes, seed=tc.eval_seed,
                                task=eval_task_config(q.task))
            if best is None or r.success_rate > best[1].success_rate:
                best = (which, r)
        which, r = best
        res.best_success = max(res.best_success, r.success_rate)
        res.evals.append({"env_steps": model.num_timesteps, "updates": model._n_updates, "wall_s": now_s,
                          "success_rate": r.success_rate, "rmse_m": r.rmse_m, "which": which})
        if res.time_to_95_s is None and r.success_rate >= tc.target_success:
            res.time_to_95_s, res.steps_to_95 = now_s, model.num_timesteps
        if log is not None:
            log(f"sb3 seed {seed} eval @ {model.num_timesteps:,} steps, {model._n_updates:,} updates, {now_s:.0f} s: "
                f"success {r.success_rate:.1%} ({which}), rmse {r.rmse_m:.3f} m")

    class PeriodicEval(BaseCallback):
        """Evaluate every ``eval_every_steps`` env transitions; stop when the wall budget is spent."""

        def __init__(self):
            super().__init__()
            self.next_eval = eval_every_steps

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                while self.next_eval <= self.num_timesteps:
                    self.next_eval += eval_every_steps
                evaluate(self.model)
            return max_steps is not None or time.perf_counter() - t0 < budget_s

    env = HoverVecEnv(q.vehicle, tc.num_envs, spec=q.spec, config=q.task, seed=seed)
    venv = make_sb3_vec_env(env, tc)
    noise = NormalActionNoise(mean=np.zeros(4), sigma=cfg.action_noise_sigma * np.ones(4))
    extra = {}
    if cfg.n_steps > 1:  # a TD3 argument since SB3 2.7; older versions take only the default
        import inspect

        if "n_steps" not in inspect.signature(TD3).parameters:
            raise QuadhilError("--n-steps > 1 needs stable-baselines3 >= 2.7")
        extra["n_steps"] = cfg.n_steps
    model = TD3("MlpPolicy", venv, learning_starts=cfg.learning_starts, batch_size=cfg.batch_size,
                train_freq=(cfg.train_freq_vec_steps, "step"), gradient_steps=cfg.gradient_steps,
                action_noise=noise, seed=seed, device=cfg.device, verbose=0,
                policy_kwargs={"net_arch": {"pi": list(cfg.net_arch_pi), "qf": list(cfg.net_arch_qf)}}, **extra)
    low, high = venv.action_space.low, venv.action_space.high
    assert np.all(low == -1.0) and np.all(high == 1.0), "actor output is used unscaled"
    res.sb3_defaults = _sb3_defaults(model)
    model.learn(total_timesteps=max_steps if max_steps is not None else 10**12, callback=PeriodicEval())
    evaluate(model)  # a final evaluation at the end, as quadhil's trainer does
    res.wall_s = time.perf_counter() - t0
    res.env_steps, res.updates = int(model.num_timesteps), int(model._n_updates)
    return res


# --- the command -----------------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil bench sb3``."""
    parser.add_argument("--vehicle", default="crazyflie", help="vehicle id (crazyflie, x500)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds (default 0 1 2; with --quadhil-runs: the runs' seeds)")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="SB3's wall-clock budget (default: the quadhil runs' budget, or 5)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="env-transition budget instead of wall clock (for tests; also passed to quadhil train)")
    parser.add_argument("--quadhil-runs", nargs="+", default=None, metavar="DIR",
                        help="finished quadhil train runs, one per seed, instead of training them here")
    parser.add_argument("--quadhil-out", default=None, metavar="DIR",
                        help="where to keep the quadhil runs trained here (default: a temporary directory)")
    parser.add_argument("--n-steps", type=int, default=SB3TD3Config.n_steps,
                        help="SB3's n-step TD target (default 1, SB3's default; quadhil's preset uses 5)")
    parser.add_argument("--torch-threads", type=int, default=SB3TD3Config.torch_threads,
                        help="torch intra-op threads for SB3 (default 1, its fastest here; 0 = torch's default)")
    # Test knobs: they change the comparison, so the JSON records them.
    parser.add_argument("--learning-starts", type=int, default=SB3TD3Config.learning_starts, help=argparse.SUPPRESS)
    parser.add_argument("--eval-every-steps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--eval-episodes", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def _quadhil_runs(args: argparse.Namespace, budget_minutes: float, tmp: str) -> list[QuadhilRun]:
    if args.quadhil_runs:
        runs = [load_quadhil_run(d) for d in args.quadhil_runs]
        for r in runs:
            if r.vehicle != args.vehicle:
                raise QuadhilError(f"{r.run_dir} is a run of {r.vehicle!r}, not --vehicle {args.vehicle!r}")
        seeds = [r.seed for r in runs]
        if len(set(seeds)) != len(seeds):
            raise QuadhilError(f"--quadhil-runs holds two runs of the same seed: {seeds}")
        if args.seeds is not None and sorted(args.seeds) != sorted(seeds):
            raise QuadhilError(f"--seeds {args.seeds} do not match the runs' seeds {seeds}")
        return runs
    out_root = Path(args.quadhil_out or tmp)
    runs = []
    for seed in args.seeds if args.seeds is not None else [0, 1, 2]:
        runs.append(train_quadhil(args.vehicle, seed, budget_minutes, args.max_steps,
                                  out_root / f"quadhil-{args.vehicle}-s{seed}"))
    return runs


def run(args: argparse.Namespace) -> int:
    """Run both sides seed by seed (never at the same time) and print the comparison."""
    from sim.report import emit_json, print_table

    _import_sb3()  # fail before any training if the extra is missing
    if args.budget_minutes is not None and not args.budget_minutes > 0:
        raise QuadhilError(f"--budget-minutes must be > 0, got {args.budget_minutes}")
    if args.max_steps is not None and args.max_steps <= 0:
        raise QuadhilError(f"--max-steps must be > 0, got {args.max_steps}")
    if args.n_steps < 1:
        raise QuadhilError(f"--n-steps must be >= 1, got {args.n_steps}")
    check_vehicle_and_task(args.vehicle, "hover")
    if args.torch_threads < 0:
        raise QuadhilError(f"--torch-threads must be >= 0, got {args.torch_threads}")
    cfg = SB3TD3Config(learning_starts=args.learning_starts, n_steps=args.n_steps, torch_threads=args.torch_threads)
    log = None if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    loadavg_start = os.getloadavg()
    rows, per_seed = [], []
    with tempfile.TemporaryDirectory(prefix="quadhil-sb3-") as tmp:
        runs = _quadhil_runs(args, args.budget_minutes or 5.0, tmp)
        for q in runs:
            budget_s = args.budget_minutes * 60.0 if args.budget_minutes is not None else q.budget_s
            every = args.eval_every_steps or q.train.eval_every_steps
            episodes = args.eval_episodes or q.train.eval_episodes
            s = run_sb3(q, q.seed, budget_s, args.max_steps, cfg, every, episodes, log=log)
            entry = {"seed": q.seed, "budget_s": budget_s, "quadhil": q.figures(), "sb3": s.figures(),
                     "ratio": None, "ratio_lower_bound": None}
            if q.time_to_95_s is not None and s.time_to_95_s is not None:
                entry["ratio"] = s.time_to_95_s / q.time_to_95_s
            elif q.time_to_95_s is not None and args.max_steps is None:
                entry["ratio_lower_bound"] = budget_s / q.time_to_95_s
            per_seed.append(entry)

            def t(x):
                return f"{x:.0f} s" if x is not None else "not reached"

            ratio = (f"{entry['ratio']:.2f}" if entry["ratio"] is not None else
                     f">= {entry['ratio_lower_bound']:.2f}" if entry["ratio_lower_bound"] is not None else "-")
            rows += [(f"seed {q.seed}: time to 95 %, quadhil DDPG", t(q.time_to_95_s)),
                     (f"seed {q.seed}: time to 95 %, SB3 TD3", t(s.time_to_95_s)),
                     (f"seed {q.seed}: ratio SB3 / quadhil", ratio),
                     (f"seed {q.seed}: best eval success quadhil / SB3", f"{q.best_success:.0%} / {s.best_success:.0%}"),
                     (f"seed {q.seed}: env steps quadhil / SB3", f"{q.env_steps:,} / {s.env_steps:,}"),
                     (f"seed {q.seed}: updates quadhil / SB3", f"{q.updates:,} / {s.updates:,}")]
    ratios = [e["ratio"] for e in per_seed if e["ratio"] is not None]
    result = {
        "vehicle": args.vehicle, "seeds": per_seed, "sb3_config": asdict(cfg),
        "max_steps": args.max_steps, "eval_every_steps": args.eval_every_steps, "eval_episodes": args.eval_episodes,
        "ratio_median": float(np.median(ratios)) if ratios else None,
        "loadavg_start": loadavg_start, "loadavg_end": os.getloadavg(),
    }
    rows.append(("loadavg (1 min) at start", loadavg_start[0]))
    print_table(f"quadhil bench sb3 ({args.vehicle}): wall time to 95 % eval success", rows)
    if args.json:
        emit_json(result)
    return 0
