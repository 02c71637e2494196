"""``quadhil bench sim``: physics steps per second, batched vs a per-vehicle Python loop.

Figures (side by side in one run, since these machines are noisy):

* ``steps_per_s[N]``: vehicle-physics-steps per second (N vehicles x 1 kHz steps) for each N;
* ``single_step_us``: one physics step of one vehicle, through the public ``QuadSim.step``;
* ``loop_ratio``: batched N=4096 throughput over the same model stepped one vehicle at a time
  from a Python loop (the "straightforward" way);
* ``env_steps_per_s``: control-rate ticks of the hover vector env (ctbr, 10 physics substeps,
  rate controller, sensor noise, reward), what the trainer sees.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sim.dynamics import QuadSim
from sim.env import HoverVecEnv
from sim.report import emit_json, print_table
from sim.vehicle import load_vehicle

BATCHES = (1, 64, 1024, 4096)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil bench sim``."""
    parser.add_argument("--vehicle", default="crazyflie")
    parser.add_argument("--seconds", type=float, default=1.0, help="time budget per measurement, s")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")


def _rate(fn, steps_per_call: int, seconds: float) -> float:
    """Best-of-3 rate of ``fn`` (calls whose work is ``steps_per_call`` steps), steps/s."""
    fn()  # warm-up (and JIT compile)
    best = 0.0
    for _ in range(3):
        calls, t0 = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            dt = time.perf_counter() - t0
            if dt > seconds / 3:
                break
        best = max(best, calls * steps_per_call / dt)
    return best


def _airborne(vehicle, n: int) -> QuadSim:
    sim = QuadSim.create(vehicle, n, ground=False)
    sim.state.pos_w[:, 2] = 100.0
    sim.state.on_ground[:] = False
    return sim


def measure(vehicle_name: str = "crazyflie", seconds: float = 1.0) -> dict:
    """Run every measurement and return the figures dictionary."""
    vehicle = load_vehicle(vehicle_name)
    steps_per_s = {}
    for n in BATCHES:
        sim = _airborne(vehicle, n)
        cmd = sim.hover_thrust_n()
        substeps = 10
        steps_per_s[str(n)] = _rate(lambda: sim.step(cmd, substeps), n * substeps, seconds)

    single = _airborne(vehicle, 1)
    cmd1 = single.hover_thrust_n()
    single_rate = _rate(lambda: single.step(cmd1, 1), 1, seconds)

    n = 4096
    singles = [_airborne(vehicle, 1) for _ in range(n)]

    def loop():
        for s in singles:
            s.step(cmd1, 1)

    loop_rate = _rate(loop, n, seconds)

    env = HoverVecEnv(vehicle, 1024, seed=0)
    env.reset()
    actions = np.zeros((1024, 4))
    env_rate = _rate(lambda: env.step(actions), 1024, seconds)
    return {
        "vehicle": vehicle.id,
        "steps_per_s": steps_per_s,
        "single_step_us": 1e6 / single_rate,
        "loop_steps_per_s": loop_rate,
        "loop_ratio": steps_per_s["4096"] / loop_rate,
        "env_steps_per_s": env_rate,
        "env_batch": 1024,
    }


def run(args: argparse.Namespace) -> int:
    """Measure and print the figures (and one JSON line with --json)."""
    figures = measure(args.vehicle, args.seconds)
    rows = [(f"physics steps/s, N={n}", f"{r / 1e6:.2f} M") for n, r in figures["steps_per_s"].items()]
    rows += [
        ("single-vehicle step", f"{figures['single_step_us']:.2f} us"),
        ("per-vehicle Python loop, N=4096", f"{figures['loop_steps_per_s'] / 1e6:.3f} M steps/s"),
        ("batched / loop at N=4096", f"{figures['loop_ratio']:.1f}x"),
        ("hover env ticks/s (ctbr, N=1024)", f"{figures['env_steps_per_s'] / 1e3:.0f} k"),
    ]
    print_table(f"quadhil bench sim ({figures['vehicle']})", rows)
    if args.json:
        emit_json(figures)
    return 0
