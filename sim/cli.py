"""``quadhil sim``: fly the nominal vehicle open-loop and report what the physics did.

A quick look at a vehicle file: ``--command hover`` should hold altitude exactly,
``--command off`` should fall at g until the ground.
"""

from __future__ import annotations

import argparse

import numpy as np

from sim.dynamics import QuadSim
from sim.report import emit_json, print_table, xyz_arg
from sim.vehicle import load_vehicle


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil sim``."""
    parser.add_argument("--vehicle", default="crazyflie", help="vehicle id or path to a vehicle TOML")
    parser.add_argument("--command", choices=["hover", "off", "full"], default="hover",
                        help="open-loop motor command held for the whole run")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds of simulated time")
    parser.add_argument("--start", type=xyz_arg, default=(0.0, 0.0, 1.0), help="x,y,z start (m, ENU)")
    parser.add_argument("--physics-rate", type=float, default=1000.0, help="physics rate, Hz")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")


def run(args: argparse.Namespace) -> int:
    """Simulate and print the final state."""
    vehicle = load_vehicle(args.vehicle)
    sim = QuadSim.create(vehicle, 1, physics_rate_hz=args.physics_rate)
    sim.state.pos_w[0] = np.asarray(args.start)
    sim.state.on_ground[0] = args.start[2] <= 0
    hover = sim.hover_thrust_n()
    cmd = {"hover": hover, "off": np.zeros((1, 4)), "full": np.full((1, 4), vehicle.max_thrust_n)}[args.command]
    if args.command == "hover":
        sim.state.thrust_n[:] = hover
    steps = int(round(args.duration * args.physics_rate))
    sim.step(cmd, steps)
    s = sim.state
    figures = {
        "vehicle": vehicle.id,
        "command": args.command,
        "duration_s": args.duration,
        "final_pos_m": s.pos_w[0],
        "final_vel_mps": s.vel_w[0],
        "on_ground": bool(s.on_ground[0]),
        "crashed": bool(s.crashed[0]),
        "hover_thrust_fraction": vehicle.hover_thrust_fraction,
    }
    print_table(f"quadhil sim: {vehicle.name}, command {args.command}",
                [(k, v if not isinstance(v, np.ndarray) else np.array2string(v, precision=4))
                 for k, v in figures.items()])
    if args.json:
        emit_json(figures)
    return 0
