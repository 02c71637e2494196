"""``quadhil eval RUN``: evaluate a trained policy in the simulator (deterministic actions,
domain randomization and sensor noise on), write eval.json and a PNG of a few trajectories."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from sim.errors import QuadhilError


# A hover handed over 5 cm from the target, at rest and level (HoverTaskConfig's init_* fields).
GENTLE_START = {"init_pos_m": 0.05, "init_vel_mps": 0.0, "init_tilt_deg": 0.0, "init_rate_rad_s": 0.0}


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil eval``."""
    parser.add_argument("run", help="run directory (config.json + actor_best.keras)")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="eval seed (training selects 'best' with another)")
    parser.add_argument("--which", default="best", choices=("best", "last", "confirmed"),
                        help="best periodic evaluation, last, or the actor that met a run's confirmed bar")
    parser.add_argument("--no-randomization", action="store_true", help="nominal vehicle, perfect state")
    parser.add_argument("--randomization-scale", type=float, default=1.0,
                        help="multiply the vehicle file's randomization ranges (what a preset trained on, e.g. 0.5)")
    parser.add_argument("--latency-ticks", type=int, default=0,
                        help="delay every action by N control ticks (what a radio link or a slow loop adds)")
    parser.add_argument("--gentle-start", action="store_true",
                        help="start every episode 5 cm off the target at rest and level instead of the training "
                             "throws (how a takeoff hands over; issue 26's yaw-oscillation check)")
    parser.add_argument("--suite", choices=("robustness", "ceiling", "spread"), default=None,
                        help="robustness: success over out-of-distribution axes (motor lag, thrust-to-weight, yaw "
                             "torque, inertia, rate-loop gains, noise, latency, CoM, wind) and joint corners; "
                             "--episodes is per cell; writes robustness.json and robustness.png. "
                             "ceiling: search every failed throw again with the airframe known and no sensor noise "
                             "for a sequence that succeeds (train/ceiling.py): a lower bound on the success any "
                             "controller could reach on the task; writes ceiling.json. "
                             "spread: the same throws again with each randomized airframe quantity (rate loop, mass, "
                             "motor lag, thrust, centre of mass, ...) put back to nominal: which spread costs the "
                             "failures (train/spread.py); writes spread.json")
    parser.add_argument("--ceiling-samples", type=int, default=256,
                        help="--suite ceiling: candidate sequences flown at once per search iteration")
    parser.add_argument("--ceiling-iterations", type=int, default=30,
                        help="--suite ceiling: search iterations per failed throw at most")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def plot_trajectories(result, path: Path, title: str) -> None:
    """PNG of position vs time (x, y, z, world ENU) of the kept trajectories, target dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    t = np.arange(result.pos_w.shape[1]) * result.dt_s
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    for i, name in enumerate("xyz"):
        ax = axes[i]
        for k in range(result.pos_w.shape[0]):
            ax.plot(t, result.pos_w[k, :, i], lw=1, color=("tab:green" if result.success[k] else "tab:red"))
        ax.axhline(result.target_w[i], ls="--", color="k", lw=0.8)
        ax.set_ylabel(f"{name} [m]")
    axes[-1].set_xlabel("time [s]")
    axes[0].set_title(f"{title} (green: success, red: failure)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    """Evaluate; print a table (and one JSON line with --json)."""
    import dataclasses

    from sim.randomization import RealismConfig
    from sim.report import emit_json, print_table
    from train.evaluate import eval_task_config, evaluate_policy
    from train.loop import task_config_from_dict

    if args.episodes < 1:
        raise QuadhilError(f"--episodes must be >= 1, got {args.episodes}")
    if args.latency_ticks < 0:
        raise QuadhilError(f"--latency-ticks must be >= 0, got {args.latency_ticks}")
    if args.randomization_scale < 0:
        raise QuadhilError(f"--randomization-scale must be >= 0, got {args.randomization_scale}")
    if args.suite and (args.latency_ticks or args.no_randomization or args.randomization_scale != 1.0 or args.gentle_start):
        raise QuadhilError("--suite flies the run's own evaluation task (robustness: per cell): drop --latency-ticks, "
                           "--randomization-scale, --no-randomization and --gentle-start")
    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise QuadhilError(f"{run_dir} is not a directory")
    from train.runtime import configure_tensorflow

    configure_tensorflow()
    from train.agent import NumpyActor
    from train.networks import load_actor

    actor, spec, config = load_actor(run_dir, args.which)
    try:
        act_fn = NumpyActor.from_keras(actor)
    except ValueError:  # a layer the numpy copy does not know: use Keras itself
        act_fn = lambda obs: actor(obs, training=False).numpy()  # noqa: E731
    task = task_config_from_dict(config["task_config"]) if "task_config" in config else None
    if args.suite == "robustness":
        return _run_robustness(args, run_dir, act_fn, spec, task)
    if args.suite == "ceiling":
        return _run_ceiling(args, run_dir, act_fn, spec, eval_task_config(task))
    if args.suite == "spread":
        return _run_spread(args, run_dir, act_fn, spec, eval_task_config(task))
    task = eval_task_config(task)  # eval realism: the default, on; no latency
    if args.gentle_start:
        task = dataclasses.replace(task, **GENTLE_START)
    realism = RealismConfig.off() if args.no_randomization else task.realism
    realism = dataclasses.replace(realism, latency_ticks=args.latency_ticks)
    if not args.no_randomization:
        realism = dataclasses.replace(realism, randomization_scale=args.randomization_scale)
    t0 = time.perf_counter()
    result = evaluate_policy(act_fn, spec, spec.vehicle, episodes=args.episodes, seed=args.seed,
                             realism=realism, task=task)
    summary = {**result.summary(), "vehicle": spec.vehicle, "action_mode": spec.action_mode,
               "layout": spec.layout, "actor": args.which, "seed": args.seed,
               "randomization": not args.no_randomization, "latency_ticks": args.latency_ticks,
               "start": "gentle" if args.gentle_start else "throw",
               "randomization_scale": 0.0 if args.no_randomization else args.randomization_scale,
               "eval_s": time.perf_counter() - t0,
               "loadavg": os.getloadavg()}
    # eval.json holds the run's figure (default realism); a variant writes its own file, so that
    # measuring a committed policy with a tick of delay does not overwrite that figure
    stem = "eval" + ("-gentle" if args.gentle_start else "") + ("-nominal" if args.no_randomization else "") + (
        f"-latency{args.latency_ticks}" if args.latency_ticks else "") + (
        f"-scale{args.randomization_scale:g}" if args.randomization_scale != 1.0 and not args.no_randomization else "")
    (run_dir / f"{stem}.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if not args.no_plot:
        plot_trajectories(result, run_dir / f"{stem}.png", f"{spec.vehicle} {spec.action_mode}: {run_dir.name}")
    print_table(f"quadhil eval {run_dir}", [(k, v) for k, v in summary.items() if k != "loadavg"])
    if args.json:
        emit_json(summary)
    return 0


def _save_suite(args: argparse.Namespace, run_dir: Path, result, name: str) -> dict:
    """A suite's figures with the run, actor and load beside them, written to RUN/<name>.json;
    returned for the table and the --json line."""
    summary = {**result.as_dict(), "run": str(run_dir), "actor": args.which, "loadavg": os.getloadavg()}
    (run_dir / f"{name}.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def _run_robustness(args: argparse.Namespace, run_dir: Path, act_fn, spec, task) -> int:
    """``--suite robustness``: the table, robustness.json (+ .png) in the run directory, one JSON line."""
    from sim.report import emit_json
    from train.robustness import plot_suite, print_suite, run_suite

    result = run_suite(act_fn, spec, task=task, episodes=args.episodes, seed=args.seed)
    summary = _save_suite(args, run_dir, result, "robustness")
    if not args.no_plot:
        plot_suite(result, run_dir / "robustness.png", f"{spec.vehicle} {spec.action_mode}: {run_dir.name}")
    print_suite(result, f"quadhil eval {run_dir} --suite robustness")
    if args.json:
        emit_json(summary)
    return 0


def _run_ceiling(args: argparse.Namespace, run_dir: Path, act_fn, spec, task) -> int:
    """``--suite ceiling``: the evaluation, a search per failed throw, ceiling.json, one JSON line."""
    from rich.progress import Progress

    from sim.report import emit_json, print_table
    from train.ceiling import CeilingSearch, run_ceiling

    try:
        search = CeilingSearch(samples=args.ceiling_samples, iterations=args.ceiling_iterations)
    except ValueError as exc:
        raise QuadhilError(str(exc)) from None
    with Progress(transient=True) as bar:
        job = bar.add_task("searching the failed throws", total=None)

        def progress(i: int, n: int, verdict) -> None:
            bar.update(job, completed=i, total=n,
                       description=f"throw {verdict.episode}: {verdict.verdict} (margin {verdict.best_margin:.2f})")

        result = run_ceiling(act_fn, spec, task, episodes=args.episodes, seed=args.seed, search=search,
                             progress=progress)
    summary = _save_suite(args, run_dir, result, "ceiling")
    print_table(f"quadhil eval {run_dir} --suite ceiling",
                [(k, v) for k, v in summary.items() if k not in ("verdicts", "loadavg", "search")])
    if args.json:
        emit_json(summary)
    return 0


def _run_spread(args: argparse.Namespace, run_dir: Path, act_fn, spec, task) -> int:
    """``--suite spread``: success per group put back to nominal, spread.json, one JSON line."""
    from rich.console import Console
    from rich.table import Table

    from sim.report import emit_json
    from train.spread import run_spread

    result = run_spread(act_fn, spec, task, episodes=args.episodes, seed=args.seed)
    summary = _save_suite(args, run_dir, result, "spread")
    table = Table(title=f"quadhil eval {run_dir} --suite spread: {args.episodes} throws, seed {args.seed}, "
                        "one quantity put back to nominal")
    for col in ("put back to nominal", "success", "gain", "crashes"):
        table.add_column(col, justify="left" if col.startswith("put") else "right")
    for name, g in summary["groups"].items():
        table.add_row(name, f"{g['success_rate']:.1%}", f"{g['gain']:+.1%}", f"{g['crash_rate']:.1%}")
    Console().print(table)
    if args.json:
        emit_json(summary)
    return 0
