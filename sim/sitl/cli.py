"""``quadhil sitl TWIN``: run one SITL twin in real time until Ctrl-C / SIGTERM.

TWIN is ``crazyflie`` (CRTP over UDP for cflib's udp driver), ``px4`` (a PX4-dialect MAVLink
vehicle on PX4 SITL's ports), ``px4-hil`` (quadhil's physics as the simulator of a real PX4
SITL over simulator_mavlink) or ``crazyflie-fw`` (quadhil's physics for CrazySim's crazyflie-firmware
SITL binary, with the cflib relay). Each twin's module owns its arguments.
"""

from __future__ import annotations

import argparse
import importlib

TWINS = {
    "crazyflie": ("sim.sitl.crazyflie.cli", "Crazyflie 2.1 twin: CRTP over UDP, for cflib's udp:// driver"),
    "px4": ("sim.sitl.px4.cli", "PX4 twin: MAVLink on PX4 SITL's ports (offboard 14540, GCS 14550)"),
    "px4-hil": ("sim.sitl.px4.hil_cli", "quadhil physics as the simulator of a real PX4 SITL (TCP 4560)"),
    "crazyflie-fw": ("sim.sitl.crazysim.cli",
                     "quadhil physics for CrazySim's real crazyflie-firmware (cf2, UDP 19950+N) and the cflib relay (19850+N)"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    """One sub-parser per twin, configured by the twin's own module."""
    sub = parser.add_subparsers(dest="twin", metavar="TWIN", required=True)
    for name, (module_name, help_text) in TWINS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if not exc.name or not exc.name.startswith("sim.sitl"):
                raise
            p.set_defaults(_missing=name)
            continue
        module.configure(p)


def run(args: argparse.Namespace) -> int:
    """Run the chosen twin."""
    if getattr(args, "_missing", None):
        from sim.errors import NotAvailable

        raise NotAvailable(f"the '{args._missing}' twin is not available yet in this build")
    return importlib.import_module(args._module).run(args)
