"""``quadhil fly``: fly an exported .tflite policy over cflib or MAVLink, with the supervisor.

Exit status: 0 landed normally; 2 refused (bad input, refused to arm, no link); 3 the flight
ended in failsafe (the reason is printed and is in the log).
"""

from __future__ import annotations

import argparse
import math
import sys

from sim.errors import QuadhilError
from sim.report import emit_json, print_table, xyz_arg

EXIT_FAILSAFE = 3


def _geofence(text: str):
    from firmware_bridge.supervisor import Geofence

    try:
        return Geofence.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil fly``."""
    parser.add_argument("--model", required=True, help="exported policy (.tflite with the quadhil contract inside)")
    parser.add_argument("--link", required=True,
                        help="radio://0/80/2M/E7E7E7E7E7, usb://0, udp://127.0.0.1:19850 (Crazyflie, cflib); "
                             "udpin:0.0.0.0:14540, udpout:HOST:PORT, tcp:HOST:PORT, serial:/dev/ttyAMA0:921600 "
                             "(PX4, pymavlink)")
    parser.add_argument("--target", type=xyz_arg, default=None,
                        help="hover target x,y,z in m, world ENU (default: above the start at the takeoff height)")
    parser.add_argument("--duration", type=_positive, default=10.0, help="hover time at the target, s (default 10)")
    parser.add_argument("--arm", action="store_true",
                        help="really arm and fly; without it: a dry run that sends nothing that spins motors")
    parser.add_argument("--geofence", type=_geofence, default=None, help="xmin,xmax,ymin,ymax,zmax in m (ENU)")
    parser.add_argument("--log", default="flights", help="directory for the flight log (default flights/)")
    parser.add_argument("--takeoff-height", type=_positive, default=None,
                        help="climb straight up to this height (m) before moving to the target (default: target z)")
    parser.add_argument("--handover", action="store_true",
                        help="take over a vehicle already in the air: skip the level-and-on-ground check and the climb")
    parser.add_argument("--battery-min", type=_positive, default=None,
                        help="refuse to arm below this battery voltage (default: the vehicle file's low_voltage_v)")
    parser.add_argument("--connect-timeout", type=_positive, default=10.0, help="s (default 10)")
    parser.add_argument("--rate", type=_positive, default=None,
                        help="control rate override, Hz (default: the policy's own; for benchmarks)")
    parser.add_argument("--realtime", action="store_true",
                        help="raise the bridge's scheduling priority (SCHED_FIFO, else nice -5) on a busy computer")
    parser.add_argument("--quiet", action="store_true", help="no live status line")
    parser.add_argument("--json", action="store_true", help="print one JSON summary as the last line")


def run(args: argparse.Namespace) -> int:
    """Fly; print the summary; exit 0 (landed), 2 (refused) or 3 (failsafe)."""
    from firmware_bridge.flight import Flight, FlyConfig, RefusedToArm

    cfg = FlyConfig(model=args.model, link=args.link, target_w=args.target, duration_s=args.duration,
                    arm=args.arm, geofence=args.geofence, log_dir=args.log, takeoff_height_m=args.takeoff_height,
                    handover=args.handover, connect_timeout_s=args.connect_timeout, battery_min_v=args.battery_min,
                    rate_hz=args.rate, status=not args.quiet, realtime=args.realtime)
    flight = Flight(cfg)
    try:
        result = flight.run()
    except RefusedToArm as exc:
        if args.json:
            emit_json({"rmse_m": None, "failsafe": None, "refused": flight.sup.refusals, "ticks": 0,
                       "deadline_miss_rate": None, "log": str(flight.log.path) if flight.log else None,
                       "final_state": flight.sup.state.value})
        raise QuadhilError(f"{exc} (log: {flight.log.path})") from None
    d = result.as_dict()
    rows = [("final state", result.final_state), ("dry run", result.dry_run), ("ticks", result.ticks),
            ("control rate (Hz)", result.rate_hz),
            ("hover RMSE (m)", "n/a" if result.rmse_m is None else result.rmse_m),
            ("deadline miss rate", result.deadline_miss_rate),
            ("latency p50 / p99 (ms)", f"{_f(result.latency_p50_ms)} / {_f(result.latency_p99_ms)}"),
            ("state age p99 (ms)", _f(result.state_age_p99_ms)), ("inference p99 (ms)", _f(result.infer_p99_ms)),
            ("failsafe", result.failsafe or "none"), ("log", result.log)]
    if result.failsafe:
        rows.insert(-1, ("failsafe action", f"{result.failsafe_action} ({_f(result.failsafe_response_ms)} ms "
                                             "after detection)"))
    print_table("quadhil fly", rows)
    if result.failsafe:
        print(f"quadhil fly: FAILSAFE: {result.failsafe}; {result.failsafe_action} carried out "
              f"(log: {result.log})", file=sys.stderr)
    if args.json:
        emit_json(d)
    return EXIT_FAILSAFE if result.failsafe else 0


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"
