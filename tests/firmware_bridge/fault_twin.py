"""A Crazyflie twin process with faults injected, for the bridge's fault tests.

Runs the real twin (:class:`sim.sitl.crazyflie.twin.CrazyflieTwin` behind its UDP server, as
``quadhil sitl crazyflie`` does) and bends it from the outside:

* ``--nan-after S``: S seconds after the first non-zero thrust setpoint, the state estimate the
  twin logs becomes NaN (a failed estimator).
* ``--stall-after S``: S seconds after the first log block started, the twin stops sending log
  data (telemetry goes stale; the link itself keeps answering).
* ``--battery-charge F``: start with the battery at charge fraction F (0..1).
* ``--payload-kg KG``: the vehicle carries this much more mass than its file says (a deck or a
  payload the policy was not trained with).
* ``--wind MPS``: mean wind along +x, as the twin's own flag; ``--realtime`` as the twin's own.

Prints ``ready udp://HOST:PORT`` like the twin, then serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import sys

from sim.sitl.crazyflie.server import CrazyflieServer
from sim.sitl.crazyflie.twin import CrazyflieTwin, TwinConfig
from sim.vehicle import load_vehicle


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--nan-after", type=float, default=None)
    p.add_argument("--stall-after", type=float, default=None)
    p.add_argument("--battery-charge", type=float, default=None)
    p.add_argument("--payload-kg", type=float, default=0.0)
    p.add_argument("--wind", type=float, default=0.0)
    p.add_argument("--realtime", action="store_true")
    args = p.parse_args(argv)

    vehicle = load_vehicle("crazyflie")
    vehicle = dataclasses.replace(vehicle, mass_kg=vehicle.mass_kg + args.payload_kg)
    twin = CrazyflieTwin(TwinConfig(wind_mps=args.wind), vehicle=vehicle)
    if args.battery_charge is not None:
        twin.battery.charge = args.battery_charge
        twin.battery.update(0.0, 0.0)
    marks: dict[str, float] = {}

    if args.nan_after is not None:
        original = twin._estimate

        def estimate_with_nan() -> None:
            original()
            if "thrust" not in marks and twin.thrust_sp > 0:
                marks["thrust"] = twin.now_s()
            if "thrust" in marks and twin.now_s() - marks["thrust"] >= args.nan_after:
                twin.est_pos = [math.nan] * 3
                twin.est_vel = [math.nan] * 3

        twin._estimate = estimate_with_nan  # type: ignore[method-assign]

    if args.stall_after is not None:
        due = twin.log.due

        def stalling_due(now_ms: float) -> list[bytes]:
            out = due(now_ms)
            if out and "log" not in marks:
                marks["log"] = twin.now_s()
            if "log" in marks and twin.now_s() - marks["log"] >= args.stall_after:
                return []
            return out

        twin.log.due = stalling_due  # type: ignore[method-assign]

    server = CrazyflieServer(twin, "127.0.0.1", 0)
    if args.realtime:
        from sim.sitl.processes import raise_priority  # the twin's own --realtime

        raise_priority()
    signal.signal(signal.SIGTERM, lambda s, f: server.stop_event.set())
    signal.signal(signal.SIGINT, lambda s, f: server.stop_event.set())
    print(f"ready {server.uri}", flush=True)
    try:
        server.serve()
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
