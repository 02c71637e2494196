"""``quadhil bench train``: how fast the training loop runs, and how fast it learns.

Throughput (the default): two figures per vehicle, (1) the compiled update step alone, K updates
per call on batches the loop draws (the recipe's quarter turns, in-graph noise and teacher labels;
before 2026-12-07 it timed random rows without them, an update ~1.3x cheaper than the loop's),
and (2) the whole loop (acting, env stepping, replay insert and sampling, updates, no evaluation)
over a fixed wall-clock slice, with where its time went (:meth:`train.loop.Trainer.time_breakdown`).

Time to a bar (``--to-success P``): seeds one after another, each a normal ``quadhil train`` run
in its own process (a temp dir, or ``--out``), stopped at the first periodic evaluation at or
above P whose actor also reaches P on ``--confirm-episodes`` fresh episodes of another seed
(``train.confirm_episodes``); its figure is the trainer's ``time_to_target_s``, which counts from
the start of ``quadhil train`` (the import of ``train.cli_train``, before TensorFlow's) to the end
of the confirming evaluation. A seed that has not got there within ``--max-seconds`` is a failure
and stays in the median. ``--baseline-set`` / ``--compare-previous`` run a second recipe on the
same seeds, alternating with the first (same machine load), and report the ratio.

Timings depend on machine load: loadavg is reported with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The speed settings before 2026-12-06 (issue #23), as overrides of today's defaults: what
# --compare-previous runs beside the current recipe. Each later speed change adds its old value.
PREVIOUS_RECIPE = ("train.tf_threads=2", "train.blas_threads=0", "train.augment_in_graph=false", "train.num_envs=8",
                   "train.updates_per_step=2", "train.eval_beside_update=false")


THIS_CHECKOUT = str(Path(__file__).resolve().parents[1])  # the quadhil tree this bench belongs to


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil bench train``."""
    parser.add_argument("--vehicle", action="append", default=None,
                        help="vehicle(s) (default: crazyflie and x500; --to-success: crazyflie)")
    parser.add_argument("--action-mode", default="ctbr", choices=("ctbr", "motors"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting as quadhil train --set does")
    parser.add_argument("--seconds", type=float, default=10.0, help="wall time of each throughput measurement")
    parser.add_argument("--to-success", type=float, default=None, metavar="P",
                        help="measure each seed's wall time to a confirmed success rate P instead of throughput")
    parser.add_argument("--seeds", type=int, default=5, help="--to-success: seeds S..S+N-1 (default 5)")
    parser.add_argument("--first-seed", type=int, default=0, metavar="S",
                        help="--to-success: the first seed (default 0); seeds a recipe was not chosen on give "
                             "its figure without the choice's luck")
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="--to-success: a seed not at the bar by then is a failure (default 300)")
    parser.add_argument("--confirm-episodes", type=int, default=200,
                        help="--to-success: fresh episodes that must confirm a periodic evaluation (default 200)")
    parser.add_argument("--check-episodes", type=int, default=1000,
                        help="--to-success: after a seed is confirmed (its time already taken), fly its confirmed "
                             "actor on this many more fresh episodes, to show how good what met the bar is "
                             "(default 1000; 0: skip; not for --baseline-checkout, whose code may predate it)")
    parser.add_argument("--no-randomization", action="store_true", help="--to-success: as quadhil train's")
    parser.add_argument("--baseline-set", action="append", default=None, metavar="KEY=VALUE",
                        help="--to-success: also run a baseline recipe, --set plus these overrides, seed by seed")
    parser.add_argument("--compare-previous", action="store_true",
                        help="--to-success: the baseline is the loop's speed settings before issue #23 "
                             f"({' '.join(PREVIOUS_RECIPE)})")
    parser.add_argument("--action-history", type=int, default=None, metavar="N",
                        help="past actions in the observation, as quadhil train's (default: the preset's)")
    parser.add_argument("--baseline-action-history", type=int, default=None, metavar="N",
                        help="--to-success: also run a baseline recipe that observes N past actions (with any "
                             "--baseline-set), seed by seed")
    parser.add_argument("--state-history", type=int, default=None, metavar="N",
                        help="past ticks of velocity and body rates in the observation, as quadhil train's "
                             "(default: the preset's)")
    parser.add_argument("--baseline-state-history", type=int, default=None, metavar="N",
                        help="--to-success: also run a baseline recipe that observes N past ticks of velocity and "
                             "body rates (with any other --baseline-* option), seed by seed")
    parser.add_argument("--baseline-checkout", default=None, metavar="DIR",
                        help="--to-success: also run a baseline with the code of another checkout of quadhil "
                             "(e.g. git worktree add /tmp/prev HEAD~1), with any other --baseline-* option, seed by "
                             "seed: a change of code, not of settings, side by side")
    parser.add_argument("--out", default=None, help="--to-success: keep the runs in DIR/<recipe>-seed<S>")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def _bench_updates(trainer, seconds: float) -> float:
    """Updates/s of ``trainer``'s compiled update alone, on one set of K batches drawn as its loop
    draws them (quarter turns, in-graph noise seeds and teacher labels, as the recipe has them):
    the update the loop runs, not a lighter one."""
    batches = trainer._sample_update()
    trainer.agent.update(*batches)  # trace and compile
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        trainer.agent.update(*batches)
        n += batches[0].shape[0]
    return n / (time.perf_counter() - t0)


# The observation's histories: quadhil train arguments (not --set keys), per recipe.
HISTORY_OPTIONS = ("action_history", "state_history")


def _train_args(vid: str, args: argparse.Namespace, out: str, extra_sets: list[str] = (),
                history: dict | None = None) -> list[str]:
    """``quadhil train`` arguments of a run like ``quadhil train --vehicle VID`` with the bench's
    options; ``history`` {"action_history": N, "state_history": M} (a missing or None entry: the
    bench's ``--action-history`` / ``--state-history``, None there: the preset's)."""
    a = ["--vehicle", vid, "--action-mode", args.action_mode, "--out", out]
    for item in [*args.set, *extra_sets]:
        a += ["--set", item]
    if args.no_randomization:
        a.append("--no-randomization")
    for key in HISTORY_OPTIONS:
        value = (history or {}).get(key)
        value = getattr(args, key) if value is None else value
        if value is not None:
            a += ["--" + key.replace("_", "-"), str(value)]
    return a


def run_throughput(args: argparse.Namespace) -> int:
    """The update step alone and the whole loop, per vehicle; one JSON line with --json."""
    import dataclasses

    from sim.report import emit_json, print_table
    from train.cli_train import build_trainer
    from train.cli_train import configure as configure_train

    vehicles = args.vehicle or ["crazyflie", "x500"]
    figures: dict = {"loadavg_start": os.getloadavg(), "seconds": args.seconds, "set": args.set}
    for vid in vehicles:
        with tempfile.TemporaryDirectory() as tmp:
            # exactly what `quadhil train --vehicle VID [--set ...]` would build (its parser's defaults)
            train_parser = argparse.ArgumentParser()
            configure_train(train_parser)
            ns = train_parser.parse_args([*_train_args(vid, args, os.path.join(tmp, "run")), "--budget-minutes", "60",
                                          "--no-progress", "--json"])
            trainer = build_trainer(ns)
            tc = trainer.tc
            k = tc.updates_per_call
            # no warm-up, evaluation or checkpoint inside the measured slices
            trainer.tc = dataclasses.replace(tc, eval_every_steps=10**12, checkpoint_every_steps=10**12,
                                             warmup_steps=0, budget_s=args.seconds)
            trainer.progress.next_eval_steps = 10**12
            trainer.progress.next_checkpoint_steps = 10**12
            while len(trainer.buffer) < tc.batch_size:
                trainer._collect(trainer.agent.numpy_actor())
            ups = _bench_updates(trainer, args.seconds / 2)
            trainer._update()
            trainer.clock.seconds.clear()
            s0, u0, t0 = trainer.progress.env_steps, trainer.progress.updates, time.perf_counter()
            actor = trainer.agent.numpy_actor()
            while time.perf_counter() - t0 < args.seconds:
                trainer._iterate(actor)
                with trainer.clock.section("actor_copy"):
                    actor = trainer.agent.numpy_actor()
            dt = time.perf_counter() - t0
            figures[vid] = {
                "update_only_updates_per_s": ups,
                "loop_env_steps_per_s": (trainer.progress.env_steps - s0) / dt,
                "loop_updates_per_s": (trainer.progress.updates - u0) / dt,
                # fraction of the loop's wall time per section; "update" runs beside "collect"
                "loop_time_fraction": {k_: v / dt for k_, v in sorted(trainer.clock.seconds.items())},
                "num_envs": tc.num_envs, "batch_size": tc.batch_size, "updates_per_step": tc.updates_per_step,
                "updates_per_call": k, "tf_threads": trainer.tf_threads,
            }
    figures["loadavg_end"] = os.getloadavg()
    rows = []
    for vid in vehicles:
        f = figures[vid]
        rows += [(f"{vid} update step alone, updates/s", f["update_only_updates_per_s"]),
                 (f"{vid} training loop, env steps/s", f["loop_env_steps_per_s"]),
                 (f"{vid} training loop, updates/s", f["loop_updates_per_s"])]
        rows += [(f"{vid} loop time in {k_}", v) for k_, v in f["loop_time_fraction"].items()]
    rows.append(("loadavg (1 min) at start", figures["loadavg_start"][0]))
    print_table("quadhil bench train", rows)
    if args.json:
        emit_json(figures)
    return 0


def run_seed(vid: str, args: argparse.Namespace, seed: int, out: Path, extra_sets: list[str],
             history: dict | None = None, checkout: str | None = None) -> dict:
    """One ``quadhil train`` process to the bar, with the code of ``checkout`` (default: this
    one); its figures (``time_to_target_s`` None: failed)."""
    root = checkout or THIS_CHECKOUT
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    sets = [f"train.target_success={args.to_success}", f"train.confirm_episodes={args.confirm_episodes}",
            *([f"train.check_episodes={args.check_episodes}"] if args.check_episodes > 0 and checkout is None else []),
            *extra_sets]
    cmd = [sys.executable, "-m", "quadhil", "train", *_train_args(vid, args, str(out), sets, history),
           "--seed", str(seed),
           "--budget-minutes", repr(args.max_seconds / 60.0), "--stop-at-target", "--no-progress",
           "--eval-episodes", "10", "--json"]
    load0, t0 = os.getloadavg(), time.perf_counter()
    # the budget plus TensorFlow's start-up, the final evaluation and the confirmation, with room to spare
    # python -m puts the working directory first on sys.path: another checkout runs from inside it
    proc = subprocess.run(cmd, env=env, cwd=checkout, capture_output=True, text=True, timeout=args.max_seconds + 600)
    process_s = time.perf_counter() - t0
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        from sim.errors import QuadhilError

        raise QuadhilError(f"quadhil train (seed {seed}) exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    res = json.loads(lines[-1])
    t = res.get("time_to_target_s")
    reached = t is not None and t <= args.max_seconds
    wall = res["train_wall_s"]
    return {"seed": seed, "reached": reached, "time_to_target_s": t if reached else None,
            "steps_to_target": res.get("steps_to_target") if reached else None,
            "env_steps": res["env_steps"], "updates": res["updates"], "train_wall_s": wall,
            "env_steps_per_s": res["env_steps"] / wall if wall > 0 else None,
            "updates_per_s": res["updates"] / wall if wall > 0 else None,
            "best_periodic_success": res["best_periodic_success"], "confirmations": res.get("confirmations", []),
            "confirmed_check": res.get("confirmed_check") if reached else None,
            "time_breakdown_s": res.get("time_breakdown_s"), "tf_threads": res.get("tf_threads"),
            "process_s": process_s, "loadavg_start": load0, "loadavg_end": os.getloadavg()}


def _checkout(path: str) -> str:
    """``path`` as an absolute directory holding a quadhil checkout (its ``train/cli_train.py``)."""
    from sim.errors import QuadhilError

    root = Path(path).expanduser().resolve()
    if not (root / "train" / "cli_train.py").is_file():
        raise QuadhilError(f"--baseline-checkout {path}: not a quadhil checkout (no train/cli_train.py there)")
    return str(root)


def _commit(root: str) -> str | None:
    """The git commit a checkout is at (with "+dirty" when its tracked files differ), or None."""
    from sim.report import git_commit

    commit, dirty = git_commit(root)
    return commit and commit + ("+dirty" if dirty else "")


def _mean(values: list) -> float | None:
    """Mean of the values that are not None (None if there are none)."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def summarize(seeds: list[dict]) -> dict:
    """Median and max time to the bar over ``seeds`` (s): a failed seed counts as slower than
    any success, so the median is None once half of them failed, the max once one did."""
    times = sorted(s["time_to_target_s"] if s["reached"] else math.inf for s in seeds)
    n = len(times)
    median = (times[(n - 1) // 2] + times[n // 2]) / 2.0 if n else math.inf
    # the confirmed actors on their check episodes (--check-episodes), seed by seed, and the mean
    # and on the same throws a control tick late (a checkout that predates it gives None)
    checks = [(s.get("confirmed_check") or {}).get("success_rate") for s in seeds]
    late = [(s.get("confirmed_check") or {}).get("success_rate_tick") for s in seeds]
    return {"seeds": n, "reached": sum(s["reached"] for s in seeds),
            "check_success": checks, "check_success_mean": _mean(checks),
            "check_success_tick": late, "check_success_tick_mean": _mean(late),
            "failed_seeds": [s["seed"] for s in seeds if not s["reached"]],
            "median_s": median if math.isfinite(median) else None,
            "max_s": times[-1] if n and math.isfinite(times[-1]) else None,
            "times_s": [s["time_to_target_s"] for s in seeds]}


def run_to_success(args: argparse.Namespace) -> int:
    """Seeds to a confirmed bar, optionally beside a baseline recipe; one JSON line with --json."""
    from sim.errors import QuadhilError
    from sim.report import emit_json, print_table

    if not 0.0 < args.to_success <= 1.0:
        raise QuadhilError(f"--to-success must be in (0, 1], got {args.to_success}")
    if args.seeds < 1 or args.max_seconds <= 0 or args.confirm_episodes < 1 or args.first_seed < 0 or args.check_episodes < 0:
        raise QuadhilError("--seeds and --confirm-episodes must be >= 1, --first-seed >= 0, --check-episodes >= 0 "
                           "and --max-seconds > 0")
    vehicles = args.vehicle or ["crazyflie"]
    baseline = list(args.baseline_set or []) + (list(PREVIOUS_RECIPE) if args.compare_previous else [])
    recipes = {"recipe": ([], None, None)}
    baseline_history = {key: getattr(args, "baseline_" + key) for key in HISTORY_OPTIONS}
    checkout = _checkout(args.baseline_checkout) if args.baseline_checkout else None
    if (args.baseline_set is not None or args.compare_previous or checkout is not None
            or any(v is not None for v in baseline_history.values())):
        recipes["baseline"] = (baseline, baseline_history, checkout)
    tmp = None if args.out else tempfile.TemporaryDirectory()
    root = Path(args.out or tmp.name).resolve()  # absolute: a baseline checkout runs in its own directory
    figures: dict = {"bar": args.to_success, "confirm_episodes": args.confirm_episodes, "max_seconds": args.max_seconds,
                     "check_episodes": args.check_episodes,
                     "first_seed": args.first_seed,
                     "action_mode": args.action_mode, "set": args.set, "no_randomization": args.no_randomization,
                     "time_counts_from": "quadhil train's start (import of train.cli_train, before TensorFlow's)",
                     "cpu_count": os.cpu_count(), "loadavg_start": os.getloadavg()}
    figures.update({key: getattr(args, key) for key in HISTORY_OPTIONS})
    if "baseline" in recipes:
        figures["baseline_set"] = baseline
        figures.update({"baseline_" + key: value for key, value in baseline_history.items()})
        figures["baseline_checkout"] = checkout and {"path": checkout, "commit": _commit(checkout)}
    figures["commit"] = _commit(THIS_CHECKOUT)
    try:
        for vid in vehicles:
            per: dict[str, list] = {name: [] for name in recipes}
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                order = list(recipes) if seed % 2 == 0 else list(reversed(recipes))  # alternate who goes first
                for name in order:
                    per[name].append(run_seed(vid, args, seed, root / vid / f"{name}-seed{seed}", *recipes[name]))
            fig = {name: {**summarize(runs), "runs": runs} for name, runs in per.items()}
            if "baseline" in fig:
                a, b = fig["recipe"]["median_s"], fig["baseline"]["median_s"]
                fig["speedup_median"] = b / a if a and b else None  # baseline time / recipe time
                fig["speedup_per_seed"] = [rb["time_to_target_s"] / ra["time_to_target_s"]
                                           if ra["reached"] and rb["reached"] else None
                                           for ra, rb in zip(per["recipe"], per["baseline"])]
            figures[vid] = fig
    finally:
        if tmp is not None:
            tmp.cleanup()
    figures["loadavg_end"] = os.getloadavg()
    rows = []
    for vid in vehicles:
        for name in recipes:
            f = figures[vid][name]
            rows += [(f"{vid} {name}: reached {args.to_success:.0%} (confirmed)", f"{f['reached']} of {f['seeds']}"),
                     (f"{vid} {name}: median s", f["median_s"] if f["median_s"] is not None else "not reached"),
                     (f"{vid} {name}: max s", f["max_s"] if f["max_s"] is not None else "not reached")]
            if f["check_success_mean"] is not None:
                rows.append((f"{vid} {name}: confirmed actors on {args.check_episodes} more episodes, mean success",
                             f["check_success_mean"]))
            if f["check_success_tick_mean"] is not None:
                rows.append((f"{vid} {name}: the same, every action a tick late", f["check_success_tick_mean"]))
        if "speedup_median" in figures[vid]:
            rows.append((f"{vid} baseline median / recipe median", figures[vid]["speedup_median"] or "n/a"))
    rows.append(("loadavg (1 min) at start / end", f"{figures['loadavg_start'][0]:.2f} / {figures['loadavg_end'][0]:.2f}"))
    print_table(f"quadhil bench train --to-success {args.to_success}", rows)
    if args.json:
        emit_json(figures)
    return 0


def run(args: argparse.Namespace) -> int:
    """Throughput, or time to a bar with ``--to-success``."""
    if args.to_success is not None:
        return run_to_success(args)
    return run_throughput(args)
