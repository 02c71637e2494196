"""``quadhil sitl px4-hil``: quadhil's physics as the simulator of a real PX4 SITL.

Start it, then PX4 with an external-simulator airframe, e.g. ``make px4_sitl none_iris``; PX4
connects to TCP 4560 (+ instance). See docs/sitl-px4.md.
"""

from __future__ import annotations

import argparse

from sim.errors import QuadhilError
from sim.report import emit_json
from sim.sitl.processes import stop_on_signals


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of the HIL server."""
    parser.add_argument("--vehicle", default="x500", help="vehicle file id (default x500)")
    parser.add_argument("--instance", type=int, default=0, help="PX4 instance: listens on 4560 + N")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default 4560 + instance)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-noise", action="store_true", help="perfect sensors")
    parser.add_argument("--speed", type=float, default=1.0, help="real-time factor of the 250 Hz pacing")
    parser.add_argument("--lockstep-timeout", type=float, default=0.5,
                        help="seconds to wait for PX4's HIL_ACTUATOR_CONTROLS in lockstep")
    parser.add_argument("--duration", type=float, default=None, help="exit after this many seconds")
    parser.add_argument("--json", action="store_true", help="print a JSON status line at exit")


def run(args: argparse.Namespace) -> int:
    """Serve PX4 until stopped."""
    from sim.sitl.px4.hil import HilConfig, HilServer

    if args.speed <= 0:
        raise QuadhilError(f"--speed must be > 0, got {args.speed}")
    server = HilServer(HilConfig(vehicle=args.vehicle, instance=args.instance, port=args.port, bind_host=args.bind,
                                 seed=args.seed, noise=not args.no_noise, speed=args.speed,
                                 lockstep_timeout_s=args.lockstep_timeout))
    stop = stop_on_signals()
    print(f"px4-hil: waiting for PX4 on tcp {args.bind}:{server.port} (simulator_mavlink)", flush=True)
    try:
        server.run(duration_s=args.duration, should_stop=stop.is_set)
        status = server.status()
    finally:
        server.close()
    if args.json:
        emit_json(status)
    return 0
