"""``quadhil train``: train a DDPG hover policy in the simulator (see docs/training.md)."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from sim.errors import QuadhilError

_T_IMPORT = time.perf_counter()  # wall time counts from here: TF import is part of the cost


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil train``."""
    parser.add_argument("--vehicle", default="crazyflie", help="vehicle id (crazyflie, x500)")
    parser.add_argument("--task", default="hover", help="task (hover)")
    parser.add_argument("--out", required=True, help="run directory (created)")
    parser.add_argument("--budget-minutes", type=float, default=5.0, help="wall-clock budget (default 5)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="env-transition budget instead of wall clock (deterministic)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--action-mode", default="ctbr", choices=("ctbr", "motors"))
    parser.add_argument("--layout", default=None,
                        help="observation layout (sim.contract.SPEC_LAYOUTS; default: the preset's, 'integral' for "
                             "the Crazyflie (both modes) and the x500 flying ctbr, else 'default')")
    parser.add_argument("--control-rate-hz", type=float, default=None,
                        help="policy rate (default: the preset's, 50 for the x500 in ctbr, 250 for the Crazyflie "
                             "flying motors, else 100)")
    parser.add_argument("--action-history", type=int, default=None,
                        help="past actions in the observation (default: the preset's with the preset's layout, 3 for "
                             "the Crazyflie in both modes; otherwise the layout's, 1)")
    parser.add_argument("--state-history", type=int, default=None,
                        help="past ticks of velocity and body-rate estimates in the observation (default: the "
                             "preset's with the preset's layout, else 0)")
    parser.add_argument("--num-envs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--updates-per-step", type=float, default=None, help="gradient steps per control tick")
    parser.add_argument("--actor-loss", default="q", choices=("q", "action_gradients"))
    parser.add_argument("--td3", action="store_true", help="twin critics, target smoothing, delayed actor")
    parser.add_argument("--noise", default=None, choices=("gaussian", "ou"))
    parser.add_argument("--no-randomization", action="store_true", help="train on the nominal vehicle, no noise")
    parser.add_argument("--stop-at-target", action="store_true", help="stop at the first eval >= 95%% success")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a train./agent./reward./task./realism. setting, e.g. --set train.chunk=20")
    parser.add_argument("--eval-episodes", type=int, default=200, help="episodes of the final evaluation")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def _parse_overrides(items: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {"train": {}, "agent": {}, "reward": {}, "task": {}, "realism": {}}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise QuadhilError(f"--set expects SECTION.KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        if section not in out:
            raise QuadhilError(f"--set section must be one of {', '.join(out)}, got {section!r}")
        try:
            out[section][name] = json.loads(value)
        except json.JSONDecodeError:
            out[section][name] = value
    return out


def _existing_run(out: Path):
    from train.networks import CONFIG

    path = out / CONFIG
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise QuadhilError(f"{path} is not valid JSON; not touching {out}") from None


def build_trainer(args: argparse.Namespace, threads: int | None = None):
    """A fresh or resumed :class:`train.loop.Trainer` from CLI arguments (validated).
    ``threads``: TensorFlow intra-op threads (default: :func:`train.loop.tf_threads_for` the run's
    settings), set before the first model is built."""
    import dataclasses

    from sim.env import HoverTaskConfig
    from sim.randomization import RealismConfig
    from train.loop import (TrainConfig, Trainer, check_vehicle_and_task, make_spec, task_config_from_dict,
                            tf_threads_for)
    from train.presets import (default_action_history, default_control_rate_hz, default_layout,
                               default_state_history, preset, without_teacher)
    from train.runtime import configure_tensorflow

    vehicle = check_vehicle_and_task(args.vehicle, args.task)
    if args.budget_minutes is not None and not args.budget_minutes > 0:
        raise QuadhilError(f"--budget-minutes must be > 0, got {args.budget_minutes}")
    if args.max_steps is not None and args.max_steps <= 0:
        raise QuadhilError(f"--max-steps must be > 0, got {args.max_steps}")
    out = Path(args.out)
    existing = _existing_run(out)
    if existing is not None and existing.get("vehicle") != vehicle.id:
        raise QuadhilError(f"{out} holds a run of vehicle {existing.get('vehicle')!r}, not {vehicle.id!r}; "
                           "pick another --out")
    budget = {"budget_s": args.budget_minutes * 60.0, "max_steps": args.max_steps}
    if args.resume:
        from train.agent import AgentConfig
        from train.networks import load_run_spec

        if existing is None:
            raise QuadhilError(f"cannot resume: {out} holds no run (no config.json)")
        spec, cfg = load_run_spec(out)
        tc = dataclasses.replace(TrainConfig.from_dict(cfg["train"]), **budget)
        configure_tensorflow(threads or tf_threads_for(tc), blas_threads=tc.blas_threads)
        trainer = Trainer(out, vehicle, spec, task_config_from_dict(cfg["task_config"]), int(cfg["seed"]),
                          AgentConfig.from_dict(cfg["agent"]), tc,
                          extra_config={k: cfg[k] for k in ("preset",) if k in cfg})
        trainer.load_checkpoint()
        return trainer
    if existing is not None:
        raise QuadhilError(f"{out} already holds a run; use --resume to continue it or pick another --out")
    ov = _parse_overrides(args.set)
    if args.control_rate_hz is None:
        args.control_rate_hz = default_control_rate_hz(vehicle.id, args.action_mode)
    elif not args.control_rate_hz > 0:
        raise QuadhilError(f"--control-rate-hz must be > 0, got {args.control_rate_hz}")
    p = preset(vehicle.id, args.action_mode, args.control_rate_hz)
    preset_layout = default_layout(vehicle.id, args.action_mode)
    if args.layout is None:
        args.layout = preset_layout
    elif args.layout != preset_layout:
        p = without_teacher(p)  # the preset's teacher reads the preset's layout
    if args.action_history is None and args.layout == preset_layout:
        args.action_history = default_action_history(vehicle.id, args.action_mode)
    if args.state_history is None and args.layout == preset_layout:
        args.state_history = default_state_history(vehicle.id, args.action_mode)
    task = HoverTaskConfig()
    if args.no_randomization:
        task = dataclasses.replace(task, realism=RealismConfig.off())
    reward = dataclasses.replace(task.reward, **{**p["reward"], **ov["reward"]})
    task = dataclasses.replace(task, reward=reward, **ov["task"])
    if not args.no_randomization:  # the preset's realism (action latency), then --set realism.KEY=VALUE
        realism_kw = {**p["realism"], **ov["realism"]}
        task = dataclasses.replace(task, realism=dataclasses.replace(task.realism, **realism_kw))
    train_kw = {**p["train"], **budget, **ov["train"]}
    for flag, key in ((args.num_envs, "num_envs"), (args.batch_size, "batch_size"),
                      (args.updates_per_step, "updates_per_step"), (args.noise, "noise")):
        if flag is not None:
            train_kw[key] = flag
    if args.stop_at_target:
        train_kw["stop_at_target"] = True
    agent_kw = {**p["agent"], "actor_loss": args.actor_loss, **ov["agent"]}
    if args.td3:
        agent_kw.update(twin_critics=True, target_noise=0.2, policy_delay=2)
    from train.agent import AgentConfig

    try:
        tc, ac = TrainConfig(**train_kw), AgentConfig(**agent_kw)
    except TypeError as exc:
        raise QuadhilError(f"bad setting: {exc}") from None
    spec = make_spec(vehicle, args.layout, args.action_mode, args.control_rate_hz, task, args.action_history,
                     args.state_history)
    out.mkdir(parents=True, exist_ok=True)
    configure_tensorflow(threads or tf_threads_for(tc), blas_threads=tc.blas_threads)
    trainer = Trainer(out, vehicle, spec, task, args.seed, ac, tc, extra_config={"preset": p["name"]})
    trainer.write_config()
    return trainer


def train_and_evaluate(args: argparse.Namespace, t_start: float, on_eval=None, threads: int | None = None):
    """Build the trainer from ``args``, train, evaluate the chosen actor on fresh episodes and
    write config.json with the result. ``t_start``: perf_counter value the wall budget and the
    time to target count from; ``on_eval``: :attr:`train.loop.Trainer.on_eval`; ``threads``: TF
    intra-op threads (default: the machine's cores). Returns (trainer, result dict)."""
    trainer = build_trainer(args, threads)
    trainer.log_evals = args.no_progress and not args.json
    trainer.on_eval = on_eval
    result = trainer.run(t_start, show_progress=not args.no_progress and not args.json)
    t_eval = time.perf_counter()
    final = trainer.final_eval(episodes=args.eval_episodes)
    result["eval"] = final
    result["success_rate"] = final["success_rate"]
    result["rmse_m"] = final["rmse_m"]
    result["crash_rate"] = final["crash_rate"]
    result["final_eval_s"] = time.perf_counter() - t_eval
    result["wall_s"] = result["train_wall_s"] + result["final_eval_s"]
    result["loadavg"] = os.getloadavg()
    result["out"] = str(trainer.out)
    trainer.write_config(result)
    return trainer, result


def run(args: argparse.Namespace) -> int:
    """Train; print a summary (and one JSON line with --json)."""
    from sim.report import emit_json, print_table

    trainer, result = train_and_evaluate(args, _T_IMPORT)
    rows = [("vehicle", trainer.vehicle.id), ("wall s", result["wall_s"]), ("env steps", result["env_steps"]),
            ("gradient updates", result["updates"]), ("final eval success", result["success_rate"]),
            ("final eval rmse m", result["rmse_m"]),
            ("final eval crash rate", result["crash_rate"]),
            ("time to 95% s", result["time_to_target_s"] if result["time_to_target_s"] is not None else "not reached")]
    print_table(f"quadhil train -> {trainer.out}", rows)
    if args.json:
        emit_json(result)
    return 0
