"""``quadhil demo``: from nothing to a flown policy, end to end, on a laptop CPU.

Train a hover policy (progress bar), evaluate it, export it to .tflite (parity figures), start the
vehicle's SITL twin, fly the exported policy through the real client library (cflib for the
Crazyflie, pymavlink for PX4), plot the flight, and print one summary table.

Each step is the same ``quadhil`` command a user would type, run as a child process: what the demo
shows is exactly what the commands do. Every child that reports figures is run with ``--json`` and
its last stdout line is parsed; the twin is ended by pid whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from sim.errors import QuadhilError
from sim.report import emit_json, print_table
from sim.sitl.processes import free_port, ready_process, twin_command


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil demo``."""
    parser.add_argument("--vehicle", default="crazyflie", choices=["crazyflie", "x500"])
    parser.add_argument("--budget-minutes", type=float, default=4.0,
                        help="training wall-clock budget; training stops earlier at 95 %% eval success")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/demo", help="folder for the run, the model and the flight")
    parser.add_argument("--flight-s", type=float, default=15.0, help="seconds of flight in the twin")
    parser.add_argument("--skip-training", action="store_true",
                        help="fly the committed policy in policies/VEHICLE-hover instead of training one")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")


def _quadhil(*args: str, step: str) -> dict:
    """Run ``quadhil ARGS --json``, streaming its output; return its last-line JSON."""
    cmd = [sys.executable, "-m", "quadhil", *args, "--json"]
    print(f"\n$ quadhil {' '.join(args)}", flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1)
    last = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip():
            last = line
        if not line.startswith("{"):
            sys.stdout.write(line)
            sys.stdout.flush()
    rc = proc.wait()
    try:
        figures = json.loads(last)
    except json.JSONDecodeError:
        figures = {}
    if rc != 0:
        raise QuadhilError(f"demo step '{step}' failed (exit {rc}); its output is above")
    return figures


@contextmanager
def _twin(vehicle: str, out: Path):
    """Start the vehicle's twin on free loopback ports; yields the bridge's link URI. The twin is
    ended by pid on the way out."""
    if vehicle == "crazyflie":
        cmd = twin_command("crazyflie", "--port", "0")
    else:
        cmd = twin_command("px4", "--port", str(free_port()), "--listen-port", str(free_port()),
                           "--gcs-port", str(free_port()), "--gcs-listen-port", str(free_port()))
    with open(out / f"twin-{vehicle}.log", "w+") as log:
        try:
            with ready_process(cmd, timeout_s=60.0, stderr=log) as proc:
                print(f"twin: ready {proc.uri}", flush=True)
                yield proc.uri
        except RuntimeError as exc:
            raise QuadhilError(f"the {vehicle} twin did not start: {exc}") from None


def run(args: argparse.Namespace) -> int:
    """Train, export, fly, plot and summarize."""
    out = Path(args.out) / args.vehicle
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides the progress bar
    t0 = time.monotonic()
    summary: dict = {"vehicle": args.vehicle}
    run_dir = out / "run"
    if run_dir.exists():  # a previous demo's run: the demo starts from scratch every time
        shutil.rmtree(run_dir)
    if args.skip_training:  # a copy, so eval's figures never overwrite the committed ones
        shutil.copytree(Path("policies") / f"{args.vehicle}-hover", run_dir,
                        ignore=shutil.ignore_patterns("*.tflite"))
    else:
        trained = _quadhil("train", "--vehicle", args.vehicle, "--task", "hover", "--budget-minutes",
                           str(args.budget_minutes), "--seed", str(args.seed), "--out", str(run_dir),
                           "--stop-at-target", step="train")
        summary["training_s"] = trained.get("wall_s")
    evaluated = _quadhil("eval", str(run_dir), "--episodes", "100", step="eval")
    summary["eval_success"] = evaluated.get("success_rate")
    model = out / "policy.tflite"
    exported = _quadhil("export", str(run_dir), "--out", str(model), step="export")
    summary["export_max_abs_diff"] = exported.get("max_abs_diff")
    with _twin(args.vehicle, out) as uri:
        flown = _quadhil("fly", "--model", str(model), "--link", uri, "--duration", str(args.flight_s),
                         "--arm", "--realtime", "--quiet", "--log", str(out / "flights"), step="fly")
    summary["hover_rmse_m"] = flown.get("rmse_m")
    summary["failsafe"] = flown.get("failsafe")
    summary["loop_latency_p99_ms"] = flown.get("latency_p99_ms")
    summary["flight_log"] = flown.get("log")
    if flown.get("log"):
        plotted = _quadhil("plot", str(flown["log"]), step="plot")
        summary["plots"] = plotted.get("pngs")
    summary["demo_wall_s"] = time.monotonic() - t0
    print_table(f"quadhil demo: {args.vehicle}", [(k, v) for k, v in summary.items() if not isinstance(v, list)])
    if args.json:
        emit_json(summary)
    return 0
