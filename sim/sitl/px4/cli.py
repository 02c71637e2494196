"""``quadhil sitl px4``: one simulated PX4 quadrotor on PX4 SITL's MAVLink ports, in real time,
until Ctrl-C / SIGTERM (or ``--duration``)."""

from __future__ import annotations

import argparse
import sys

from sim.errors import QuadhilError
from sim.report import emit_json, start_arg, xyz_arg
from sim.sitl.mocap_stream import add_mocap_stream_arguments, open_mocap_stream
from sim.sitl.processes import stop_on_signals


def _param(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"parameter value must be a number, got {text!r}") from None


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of the PX4 twin; ports default to PX4 SITL's for --instance."""
    parser.add_argument("--vehicle", default="x500", help="vehicle file id (default x500)")
    parser.add_argument("--instance", type=int, default=0, help="PX4 SITL instance: ports + N, sysid 1 + N")
    parser.add_argument("--port", type=int, default=0, help="offboard client port the twin sends to (14540+N)")
    parser.add_argument("--listen-port", type=int, default=0, help="onboard link local port (14580+N)")
    parser.add_argument("--gcs-port", type=int, default=0, help="ground station port the twin sends to (14550)")
    parser.add_argument("--gcs-listen-port", type=int, default=0, help="GCS link local port (18570+N)")
    parser.add_argument("--no-gcs", action="store_true", help="open only the onboard link")
    parser.add_argument("--sysid", type=int, default=0, help="MAV_SYS_ID (default 1 + instance)")
    parser.add_argument("--bind", default="127.0.0.1", help="address the links listen on")
    parser.add_argument("--remote-host", default="127.0.0.1", help="address telemetry goes to first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", action="store_true", help="noisy state estimate (vehicle file's EKF noise)")
    parser.add_argument("--wind", type=xyz_arg, nargs="?", const=(2.0, 0.0, 0.0), default=None, metavar="E,N,U",
                        help="mean wind, m/s ENU (bare --wind: 2 m/s from the west)")
    parser.add_argument("--gust-std", type=float, default=0.0, help="gust std with --wind, m/s")
    parser.add_argument("--start", type=start_arg, default=(0.0, 0.0, 0.0), metavar="X,Y,Z",
                        help="start position, m ENU (world frame; PX4's local origin is here)")
    parser.add_argument("--ekf-init-s", type=float, default=1.0, help="seconds before arming is allowed")
    parser.add_argument("--battery", type=float, default=1.0, help="initial battery charge fraction 0..1")
    parser.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                        help="set a PX4 parameter at boot (repeatable)")
    parser.add_argument("--controller", default="px4",
                        help="flight controller: px4 (PX4's cascade) or mc_nn:PATH.npz (mc_nn_control, docs/onboard.md)")
    parser.add_argument("--duration", type=float, default=None, help="exit after this many seconds")
    parser.add_argument("--estimate", choices=("truth", "vision"), default="truth",
                        help="what the estimate follows: truth (default) or the VISION_POSITION_ESTIMATE messages a "
                             "client sends (EKF2 on external vision)")
    add_mocap_stream_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON status line at exit")


def run(args: argparse.Namespace) -> int:
    """Start the twin and serve until stopped."""
    from sim.sitl.px4.params import ParamError
    from sim.sitl.px4.twin import Px4Twin, TwinConfig

    if not 0.0 <= args.battery <= 1.0:
        raise QuadhilError(f"--battery must be within 0..1, got {args.battery}")
    config = TwinConfig(
        vehicle=args.vehicle, instance=args.instance, sysid=args.sysid, bind_host=args.bind,
        remote_host=args.remote_host, onboard_listen_port=args.listen_port, onboard_remote_port=args.port,
        gcs_listen_port=args.gcs_listen_port, gcs_remote_port=args.gcs_port, gcs=not args.no_gcs,
        start_enu_m=args.start, seed=args.seed, noise=args.noise, wind_mps=args.wind, gust_std_mps=args.gust_std,
        ekf_init_s=args.ekf_init_s, battery_fraction=args.battery, params=dict(args.param), controller=args.controller,
        estimate=args.estimate,
    )
    try:
        twin = Px4Twin(config)
    except (ParamError, ValueError) as exc:
        raise QuadhilError(str(exc)) from None
    mocap = None
    if args.mocap_port is not None:
        try:
            mocap = open_mocap_stream(args, args.bind, twin.tick_hooks, lambda tw: (
                tw.time_s, tw.sim.state.pos_w[0], tw.sim.state.quat_wb[0], bool(tw.commander.armed)))
        except QuadhilError:
            twin.close()
            raise
    stop = stop_on_signals()
    c = twin.config
    print(f"px4 twin sysid {twin.sysid}: onboard udp {c.bind_host}:{c.onboard_listen_port} -> {c.remote_host}:"
          f"{c.onboard_remote_port}" + (f", gcs udp {c.bind_host}:{c.gcs_listen_port} -> {c.remote_host}:"
                                        f"{c.gcs_remote_port}" if c.gcs else ""), flush=True)
    print(f"ready udpin:{c.remote_host}:{c.onboard_remote_port}", flush=True)  # sim.sitl.processes
    try:
        twin.run(duration_s=args.duration, should_stop=stop.is_set)
        status = twin.status()
    finally:
        twin.close()
        if mocap is not None:
            mocap.close()
    if args.json:
        emit_json(status)
    else:
        print(f"px4 twin stopped after {twin.time_s:.1f} s simulated, {twin.overruns} overruns", file=sys.stderr)
    return 0
