"""``quadhil sweep``: seeds and hyper-parameters on Ray Tune (see docs/training.md, "Sweeps")."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from sim.errors import QuadhilError


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil sweep``."""
    parser.add_argument("config", metavar="CONFIG.toml", help="the sweep file (seeds, train arguments, grid or search)")
    parser.add_argument("--out", default=None, help="sweep folder (default runs/sweeps/NAME)")
    parser.add_argument("--address", default=None,
                        help="join an existing Ray cluster: auto, HOST:PORT or ray://HOST:PORT "
                             "(default: start Ray here with this machine's cores)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0,
                        help="CPUs each trial reserves (default 1: on 2 cores, 2 trials at once)")
    parser.add_argument("--resume", action="store_true", help="continue the sweep in --out after a crash or Ctrl-C")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="env-step budget of every trial instead of the file's (deterministic)")
    parser.add_argument("--budget-minutes", type=float, default=None, help="wall budget of every trial instead of the file's")
    parser.add_argument("--ray-temp-dir", default=None, help="Ray's session folder when Ray starts here (default Ray's own)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def run(args: argparse.Namespace) -> int:
    """Run the sweep, print the table, write summary.json and the PNG; exit 1 if a trial failed."""
    from sim.report import emit_json
    from train import sweep_report
    from train.sweep import run_sweep, with_budget
    from train.sweep_spec import load_sweep

    t0 = time.perf_counter()
    spec = load_sweep(args.config)
    if args.resume and (args.max_steps is not None or args.budget_minutes is not None):
        raise QuadhilError("a resumed sweep keeps the budget it started with; drop --max-steps/--budget-minutes")
    if args.max_steps is not None and args.max_steps <= 0:
        raise QuadhilError(f"--max-steps must be > 0, got {args.max_steps}")
    if args.budget_minutes is not None and not args.budget_minutes > 0:
        raise QuadhilError(f"--budget-minutes must be > 0, got {args.budget_minutes}")
    spec = with_budget(spec, args.max_steps, args.budget_minutes)
    out = Path(args.out) if args.out else Path("runs") / "sweeps" / spec.name
    outcomes = run_sweep(spec, out, address=args.address, cpus_per_trial=args.cpus_per_trial, resume=args.resume,
                         temp_dir=args.ray_temp_dir)
    if not outcomes:
        raise QuadhilError(f"the sweep in {out} ran no trial")
    target = _target_success(outcomes)
    summaries = sweep_report.summarize(outcomes)
    diffs = sweep_report.paired(outcomes, spec.baseline) if spec.baseline else []
    png = sweep_report.plot_success_vs_time(outcomes, out / "success_vs_time.png", target,
                                            f"quadhil sweep {spec.name}")
    wall_s = time.perf_counter() - t0
    sweep_report.print_report(f"quadhil sweep {spec.name} -> {out} ({wall_s:.0f} s)", summaries, diffs, target)
    for o in outcomes:
        if o.status == "error":
            print(f"trial {o.configuration} seed {o.seed} failed: {o.error}\n  its output: {o.run_dir}/stdout.log")
    unfinished = sum(o.status == "unfinished" for o in outcomes)
    if unfinished:
        print(f"the sweep was interrupted with {unfinished} trial(s) unfinished; continue it with "
              f"quadhil sweep {args.config} --out {out} --resume")
    result = {"sweep": spec.name, "out": str(out), "address": args.address or "local",
              "cpus_per_trial": args.cpus_per_trial, "cpus": os.cpu_count(), "wall_s": wall_s,
              "target_success": target, "png": str(png), "loadavg": os.getloadavg(), "unfinished": unfinished,
              **sweep_report.report_dict(summaries, diffs, outcomes)}
    (out / "summary.json").write_text(json.dumps(_plain(result), indent=2, sort_keys=True) + "\n")
    if args.json:
        emit_json(result)
    if unfinished:
        return 130
    return 1 if any(o.status == "error" for o in outcomes) else 0


def _target_success(outcomes) -> float:
    """The bar the trials timed (train.target_success of the first run's config.json; 0.95)."""
    for o in outcomes:
        path = Path(o.run_dir) / "config.json"
        if path.exists():
            try:
                return float(json.loads(path.read_text())["train"]["target_success"])
            except (KeyError, ValueError, json.JSONDecodeError):
                pass
    return 0.95


def _plain(obj):
    from sim.report import _clean

    return _clean(obj)
