"""``quadhil fly``: fly an exported .tflite policy over cflib or MAVLink, with the supervisor.

Exit status: 0 landed normally; 2 refused (bad input, refused to arm, no link); 3 the flight
ended in failsafe (the reason is printed and is in the log).
"""

from __future__ import annotations

import argparse
import math
import sys

from firmware_bridge.loop_watchdog import STALL_TIMEOUT_S
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


def _non_negative(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
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
    parser.add_argument("--geofence", type=_geofence, default=None,
                        help="xmin,xmax,ymin,ymax,zmax in m (ENU; negative numbers need no '='). Default: the "
                             "vehicle's own (Crazyflie: a box around the start from the vehicle file's [limits]; "
                             "PX4: its GF_MAX_HOR_DIST/GF_MAX_VER_DIST where set, else the vehicle file's box)")
    parser.add_argument("--fence-margin", type=_non_negative, default=None,
                        help="m a target keeps inside every face of the geofence (default: the vehicle file's)")
    parser.add_argument("--min-height", type=_non_negative, default=None,
                        help="lowest target and takeoff height above the start, m (default: the vehicle file's)")
    parser.add_argument("--max-transit", type=_positive, default=None,
                        help="longest planned climb-and-transit to the target, s (default: the vehicle file's)")
    parser.add_argument("--max-flight-time", type=_positive, default=None,
                        help="longest flight, s: refused if planned longer, failsafe if flown longer "
                             "(default: the vehicle file's)")
    parser.add_argument("--log", default="flights", help="directory for the flight log (default flights/)")
    parser.add_argument("--takeoff-height", type=_positive, default=None,
                        help="climb straight up to this height (m) before moving to the target (default: target z)")
    parser.add_argument("--handover", action="store_true",
                        help="take over a vehicle already in the air: skip the level-and-on-ground check and the climb")
    parser.add_argument("--battery-min", type=_positive, default=None,
                        help="refuse to arm below this battery voltage (default: the vehicle file's low_voltage_v)")
    parser.add_argument("--connect-timeout", type=_positive, default=10.0, help="s (default 10)")
    parser.add_argument("--rate", type=_positive, default=None,
                        help="control rate, Hz (default: the policy's trained rate; another rate is refused "
                             "unless --allow-rate-mismatch)")
    parser.add_argument("--allow-rate-mismatch", action="store_true",
                        help="fly a --rate other than the policy's trained rate (a warning instead of a refusal; "
                             "benchmarks)")
    parser.add_argument("--realtime", action="store_true",
                        help="raise the bridge's scheduling priority (SCHED_FIFO, else nice -5) on a busy computer")
    parser.add_argument("--set-params", action="store_true",
                        help="PX4: set the parameters the policy was trained for (its .params file: rate gains, "
                             "THR_MDL_FAC, MPC_THR_HOVER) before arming instead of refusing a vehicle that differs")
    parser.add_argument("--mocap", default=None, metavar="TYPE:HOST[,object=NAME]",
                        help="stream a motion capture rigid body's pose to the vehicle at the mocap rate "
                             "(motioncapture package types: vicon, optitrack, qualisys, vrpn, mock, ...; sitl: a "
                             "twin's --mocap-port stream). Object default cf")
    parser.add_argument("--mocap-frame", choices=("z-up", "y-up"), default="z-up",
                        help="axes the mocap system reports in (default z-up; y-up: OptiTrack Motive's default)")
    parser.add_argument("--mocap-timeout", type=_positive, default=None,
                        help="tracking lost (failsafe) after this many s without a pose of the object (default 0.2)")
    parser.add_argument("--live", action="store_true",
                        help="serve the flight live to Foxglove (foxglove-sdk WebSocket on 127.0.0.1)")
    parser.add_argument("--live-port", type=int, default=8765, help="port of --live (default 8765)")
    parser.add_argument("--no-mcap", action="store_true", help="write the flight log as JSON lines only (no .mcap)")
    parser.add_argument("--quiet", action="store_true", help="no live status line")
    parser.add_argument("--stall-timeout", type=_positive, default=STALL_TIMEOUT_S, metavar="S",
                        help="end the bridge (exit 4) when its control loop makes no progress for S seconds, "
                             f"e.g. a client library wedged on a lost link (default {STALL_TIMEOUT_S:g}; the "
                             "vehicle's own failsafe flies from there)")
    parser.add_argument("--onboard", action="store_true",
                        help="Crazyflie with quadhil's app: its mode 2 flies the network flashed with the app "
                             "(quadhil export --format c); the bridge takes off, streams --target as SETPOINT packets "
                             "for --duration s and lands. --model is checked for what the app accepts")
    parser.add_argument("--json", action="store_true", help="print one JSON summary as the last line")


def run(args: argparse.Namespace) -> int:
    """Fly; print the summary; exit 0 (landed), 2 (refused), 3 (failsafe) or 4 (the control loop
    stalled: firmware_bridge.loop_watchdog.EXIT_STALLED)."""
    from firmware_bridge.flight import Flight, FlyConfig, RefusedToArm

    if args.onboard:
        return _run_onboard(args)
    cfg = FlyConfig(model=args.model, link=args.link, target_w=args.target, duration_s=args.duration,
                    arm=args.arm, geofence=args.geofence, log_dir=args.log, takeoff_height_m=args.takeoff_height,
                    handover=args.handover, connect_timeout_s=args.connect_timeout, battery_min_v=args.battery_min,
                    rate_hz=args.rate, status=not args.quiet, realtime=args.realtime, set_params=args.set_params,
                    allow_rate_mismatch=args.allow_rate_mismatch, fence_margin_m=args.fence_margin,
                    min_height_m=args.min_height, transit_max_s=args.max_transit,
                    flight_time_max_s=args.max_flight_time, mocap=args.mocap, mocap_frame=args.mocap_frame,
                    mocap_timeout_s=args.mocap_timeout, live=args.live, live_port=args.live_port,
                    mcap=not args.no_mcap, exit_on_stall=True, stall_timeout_s=args.stall_timeout)
    flight = Flight(cfg)
    if args.json:
        flight.on_stall_exit = emit_json
    try:
        result = flight.run()
    except RefusedToArm as exc:
        rows = [("final state", flight.sup.state.value), ("dry run", not args.arm), ("ticks", 0),
                *_preflight_rows(flight.preflight_extra())]
        rows += [("refused", r) for r in flight.sup.refusals]
        print_table("quadhil fly: refused before arming", rows)
        if args.json:
            emit_json({"rmse_m": None, "failsafe": None, "refused": flight.sup.refusals, "ticks": 0,
                       "deadline_miss_rate": None, "log": str(flight.log.path) if flight.log else None,
                       "final_state": flight.sup.state.value, "dry_run": not args.arm, "rate_hz": flight.rate_hz,
                       **flight.preflight_extra()})
        raise QuadhilError(f"{exc} (log: {flight.log.path})") from None
    d = result.as_dict()
    rows = [("final state", result.final_state), ("dry run", result.dry_run), ("ticks", result.ticks),
            ("control rate (Hz)", result.rate_hz),
            ("hover RMSE (m)", "n/a" if result.rmse_m is None else result.rmse_m),
            ("deadline miss rate", result.deadline_miss_rate),
            ("latency p50 / p99 (ms)", f"{_f(result.latency_p50_ms)} / {_f(result.latency_p99_ms)}"),
            ("state age p99 (ms)", _f(result.state_age_p99_ms)), ("inference p99 (ms)", _f(result.infer_p99_ms)),
            *_preflight_rows(d), ("failsafe", result.failsafe or "none"), ("log", result.log)]
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


def _run_onboard(args: argparse.Namespace) -> int:
    """``--onboard``: firmware_bridge.onboard_flight; exit 0 landed or dry run, 2 refused, 3 failsafe,
    4 the bridge's loop stalled."""
    from firmware_bridge.onboard_flight import OnboardConfig, fly_onboard

    cfg = OnboardConfig(model=args.model, link=args.link, target_w=args.target, duration_s=args.duration,
                        arm=args.arm, connect_timeout_s=args.connect_timeout,
                        takeoff_height_m=args.takeoff_height or 0.5, log_dir=args.log, exit_on_stall=True,
                        stall_timeout_s=args.stall_timeout)
    d = fly_onboard(cfg, log=(lambda *a: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr)),
                    on_stall_exit=emit_json if args.json else None)
    print_table("quadhil fly --onboard", [
        ("final state", d["final_state"]), ("dry run", d["dry_run"]), ("target (m)", d.get("target_w")),
        ("hover RMSE (m)", _f(d["rmse_m"])), ("max error (m)", _f(d["max_error_m"])),
        ("app states", " -> ".join(d["app_states"]) or "none heard"), ("reason", d["reason"] or "none"),
        ("log", d.get("log"))])
    if args.json:
        emit_json(d)
    if d["final_state"] == "refused":
        raise QuadhilError(f"--onboard refused: {d['reason']}")
    return EXIT_FAILSAFE if d["final_state"] == "failsafe" else 0


def _preflight_rows(d: dict) -> list[tuple[str, str]]:
    """Table rows of the preflight summary: the geofence and where it came from, the planned
    transit and flight time against their limits, warnings."""
    rows = []
    g, p = d.get("geofence"), d.get("preflight")
    if g:
        rows.append(("geofence (m)", f"x [{g['x_min_m']:.2f}, {g['x_max_m']:.2f}] y [{g['y_min_m']:.2f}, "
                                     f"{g['y_max_m']:.2f}] z <= {g['z_max_m']:.2f}"))
        rows.append(("geofence source", g["source"]))
    if p:
        rows.append(("transit planned / limit (s)", f"{p['transit_s']:.1f} / {p['transit_limit_s']:.1f}"))
        rows.append(("flight planned / limit (s)", f"{p['flight_s']:.1f} / {p['limits']['flight_time_max_s']:.0f}"))
    rows += [("warning", w) for w in d.get("warnings") or []]
    return rows


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"
