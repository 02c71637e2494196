"""``quadhil bench TARGET``: every benchmark, each owned by its layer.

Benchmarks measure; tests never assert timings. With ``--json`` each prints exactly one JSON
object as its last line of stdout.
"""

from __future__ import annotations

import argparse
import importlib

TARGETS = {
    "sim": ("sim.bench", "physics steps/s vs batch size, and vs a per-vehicle Python loop"),
    "train": ("train.bench", "gradient updates/s and env-steps/s of the training loop"),
    "policy": ("deploy.bench", "latency of Policy.act vs raw interpreter, numpy and Keras"),
    "sitl": ("sim.sitl.bench", "Crazyflie twin real-time quality and CPU while a client streams"),
    "sitl-fw": ("sim.sitl.crazysim.bench", "CrazySim physics side: tick lateness, IMU rate, CPU per drone (scripted firmware or cf2)"),
    "sitl-px4": ("sim.sitl.px4.bench", "PX4 twin and px4-hil: command RTT, CPU, hold error, failsafe delay, lockstep rate"),
    "bridge": ("firmware_bridge.bench", "bridge loop latency and deadline misses against the twin"),
    "onboard": ("firmware_bridge.onboard_bench", "Cortex-M4 flash and cycle estimate of the Crazyflie app's policy tick"),
    "sb3": ("train.sb3_compare", "stable-baselines3 TD3 vs quadhil's DDPG: wall time to 95 %% eval success"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    """One sub-parser per benchmark target, each configured by its owning module."""
    sub = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    for name, (module_name, help_text) in TARGETS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        module = importlib.import_module(module_name)
        module.configure(p)


def run(args: argparse.Namespace) -> int:
    """Run the chosen benchmark."""
    return importlib.import_module(args._module).run(args)
