"""``quadhil sitl crazyflie``: one simulated Crazyflie 2.1 serving CRTP on UDP for cflib.

Prints ``ready udp://HOST:PORT`` on stdout (flushed) once the socket is bound, then runs in
real time until Ctrl-C or SIGTERM. ``--port 0`` binds a free port and reports it in that line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from sim.errors import QuadhilError
from sim.report import start_arg
from sim.sitl.mocap_stream import add_mocap_stream_arguments, open_mocap_stream
from sim.sitl.processes import raise_priority, stop_on_signals


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of the Crazyflie twin."""
    parser.add_argument("--port", type=int, default=19850, help="UDP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--seed", type=int, default=0, help="seed of noise and wind")
    parser.add_argument("--noise", action="store_true", help="sensor noise on the state estimate")
    parser.add_argument("--wind", type=float, nargs="?", const=0.5, default=0.0, metavar="MPS",
                        help="mean wind along +x in m/s (default 0.5 when given) with gusts")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="extra one-way link latency, each direction, ms")
    parser.add_argument("--start", type=start_arg, default=(0.0, 0.0, 0.0), metavar="X,Y,Z",
                        help="start position, world ENU metres")
    parser.add_argument("--no-auto-arm", action="store_true",
                        help="require an arming request (supervisor port) before motors run")
    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="stop after S seconds of wall time (default: run until stopped)")
    parser.add_argument("--realtime", action="store_true",
                        help="ask the OS for real-time scheduling (SCHED_FIFO, else nice -10); "
                             "needs privileges, falls back with a warning")
    parser.add_argument("--estimate", choices=("truth", "noisy", "mocap"), default=None,
                        help="what the twin's state estimate follows: truth, noisy truth (= --noise) or the "
                             "external poses a client sends (cflib extpose, CRTP localization port)")
    parser.add_argument("--app-policy", default=None, metavar="WEIGHTS.h",
                        help="the onboard app's mode-2 network: a policy_weights.h from `quadhil export RUN --format c "
                             "--out WEIGHTS.h`, built with gcc from the app's own C (default: the app's placeholder, "
                             "which mode 2 refuses)")
    add_mocap_stream_arguments(parser)
    parser.add_argument("--stats-json", default=None, metavar="PATH",
                        help="write real-time and traffic figures to PATH (JSON) on exit")


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C / SIGTERM; returns 0."""
    from sim.sitl.crazyflie.server import CrazyflieServer
    from sim.sitl.crazyflie.twin import CrazyflieTwin, TwinConfig

    if not 0 <= args.port <= 65535:
        raise QuadhilError(f"--port must be 0..65535, got {args.port}")
    if args.latency_ms < 0:
        raise QuadhilError(f"--latency-ms must be >= 0, got {args.latency_ms}")
    if args.wind < 0:
        raise QuadhilError(f"--wind must be >= 0 m/s, got {args.wind}")
    estimate = args.estimate or ("noisy" if args.noise else "truth")
    twin = CrazyflieTwin(TwinConfig(seed=args.seed, noise=args.noise or estimate == "noisy", wind_mps=args.wind,
                                    start_m=tuple(args.start), auto_arm=not args.no_auto_arm,
                                    estimate=estimate, app_policy=args.app_policy))
    mocap = None
    if args.mocap_port is not None:
        mocap = open_mocap_stream(args, args.host, twin.tick_hooks, lambda tw: (
            tw.now_s(), tw.sim.state.pos_w[0], tw.sim.state.quat_wb[0], bool(tw.sim.state.thrust_n.sum() > 0)))
    try:
        server = CrazyflieServer(twin, args.host, args.port, latency_ms=args.latency_ms)
    except OSError as exc:
        raise QuadhilError(f"cannot bind UDP {args.host}:{args.port}: {exc.strerror}") from None

    if args.realtime:
        raise_priority()
    stop_on_signals(server.stop_event)
    print(f"ready {server.uri}", flush=True)
    try:
        stats = server.serve(duration_s=args.duration)
    finally:
        server.close()
        if mocap is not None:
            mocap.close()
    if args.stats_json:
        figures = dict(dataclasses.asdict(stats), late_tick_fraction=stats.late_tick_fraction,
                       bad_packets=twin.bad_packets, log_samples=twin.log.samples_sent)
        with open(args.stats_json, "w") as f:
            json.dump(figures, f)
    print(f"stopped after {stats.ticks} ticks, late fraction {stats.late_tick_fraction:.4f}, "
          f"bad packets {twin.bad_packets}", file=sys.stderr, flush=True)
    return 0
