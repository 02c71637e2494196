"""``quadhil crosscheck rotorpy --model F.tflite``: fly an exported policy in an independent
simulator (rotorpy, the optional ``crosscheck`` extra) with the project's throws and success test.
See :mod:`deploy.crosscheck_rotorpy` and docs/crosscheck.md."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from sim.errors import QuadhilError

SIMULATORS = ("rotorpy",)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil crosscheck``."""
    parser.add_argument("simulator", choices=SIMULATORS, help="the independent simulator to fly in")
    parser.add_argument("--model", required=True, help="exported policy (.tflite with its contract inside)")
    parser.add_argument("--noise", action="store_true",
                        help="add the vehicle file's sensor noise to the state the policy sees")
    parser.add_argument("--episodes", type=int, default=200, help="throws to fly (one episode each)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the throws and the sensor noise")
    parser.add_argument("--sim-rate-hz", type=float, default=None,
                        help="rotorpy step rate, where its P rate loop runs (default: the vehicle file's rate-loop "
                             "rate, 500 Hz Crazyflie, 400 Hz x500; rotorpy's own examples use 100)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (results do not depend on it)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def run(args: argparse.Namespace) -> int:
    """Cross-check; print a table (and one JSON line with --json)."""
    from deploy.crosscheck_rotorpy import crosscheck, import_rotorpy, rotorpy_airframe
    from deploy.runtime import Policy
    from sim.report import emit_json, print_table
    from sim.vehicle import load_vehicle

    if args.episodes < 1:
        raise QuadhilError(f"--episodes must be >= 1, got {args.episodes}")
    if args.jobs < 1:
        raise QuadhilError(f"--jobs must be >= 1, got {args.jobs}")
    if args.sim_rate_hz is not None and not args.sim_rate_hz > 0:
        raise QuadhilError(f"--sim-rate-hz must be > 0, got {args.sim_rate_hz}")
    _, rotorpy_version = import_rotorpy()
    path = Path(args.model)
    policy = Policy.load(path)  # PolicyFileError (a QuadhilError) names what is wrong with the file
    data = path.read_bytes()
    spec = policy.spec
    vehicle = load_vehicle(spec.vehicle)
    airframe = rotorpy_airframe(vehicle)
    t0 = time.perf_counter()
    result = crosscheck(lambda: Policy.from_bytes(data, str(path)).act, spec, episodes=args.episodes, seed=args.seed,
                        noise=args.noise, sim_rate_hz=args.sim_rate_hz, jobs=args.jobs, airframe=airframe)
    notes = []
    if spec.action_mode == "motors" and not airframe.spin_agrees:
        notes.append(f"rotorpy's rotor directions differ from {vehicle.id}.toml's spin: yaw through motor commands "
                     "is reversed in one of them")
    summary = {
        **result.summary(),
        "simulator": "rotorpy", "rotorpy_version": rotorpy_version, "vehicle_model": airframe.description,
        "rotorpy_thrust_to_weight": airframe.thrust_to_weight, "rotorpy_motor_tau_s": airframe.quad_params["tau_m"],
        "model": str(path), "sha256": policy.sha256, "vehicle": spec.vehicle, "action_mode": spec.action_mode,
        "layout": spec.layout, "control_rate_hz": spec.control_rate_hz, "sim_rate_hz": result.sim_rate_hz,
        "noise": args.noise, "seed": args.seed, "jobs": args.jobs, "notes": notes,
        "wall_s": time.perf_counter() - t0, "loadavg": os.getloadavg(),
    }
    title = f"quadhil crosscheck rotorpy {path}" + (" --noise" if args.noise else "")
    print_table(title, [(k, v) for k, v in summary.items() if k not in ("loadavg", "notes", "sha256")])
    for note in notes:
        print(f"note: {note}")
    if args.json:
        emit_json(summary)
    return 0
