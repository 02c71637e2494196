"""``quadhil sitl crazyflie-fw``: the real crazyflie-firmware (CrazySim's ``cf2``) on quadhil physics.

Binds, per drone N, the firmware port 19950+N and the cflib port 19850+N on 127.0.0.1, prints one
line per drone (``drone N firmware HOST:PORT cflib udp://HOST:PORT``), then ``ready URI`` (drone
0's cflib URI, flushed) and serves until Ctrl-C / SIGTERM. With ``--firmware PATH`` it starts
``PATH PORT HOST`` per drone itself, prints ``ready`` only once every firmware has shaken hands
and calibrated, and ends the processes on exit. Port 0 binds any free port (what tests use).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from sim.errors import QuadhilError
from sim.report import emit_json
from sim.sitl.processes import raise_priority, stop_on_signals

MAX_INSTANCES = 10  # cflib's udp scan probes 19850..19859


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of the CrazySim physics server."""
    parser.add_argument("--instances", type=int, default=1, help=f"number of drones, 1..{MAX_INSTANCES} (default 1)")
    parser.add_argument("--firmware", default=None, metavar="PATH",
                        help="CrazySim's cf2 binary: start one per drone (cf2 PORT HOST) and stop them on exit")
    parser.add_argument("--realtime", action="store_true",
                        help="SCHED_FIFO for the physics loop (else nice -10) and nice -10 for cf2; "
                             "needs privileges, falls back with a warning")
    parser.add_argument("--randomize", action="store_true",
                        help="randomize mass, inertia, thrust and motor lag within the vehicle file's ranges")
    parser.add_argument("--seed", type=int, default=0, help="seed of the randomization")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--firmware-port", type=int, default=19950,
                        help="firmware UDP port of drone 0; drone N uses +N (0: any free port)")
    parser.add_argument("--cflib-port", type=int, default=19850,
                        help="cflib UDP port of drone 0; drone N uses +N (0: any free port)")
    parser.add_argument("--pose-rate", type=float, default=100.0, help="external-pose rate, Hz (default 100)")
    parser.add_argument("--spacing", type=float, default=0.5, help="drone N starts at x = N * spacing m (default 0.5)")
    parser.add_argument("--work-dir", default=None, metavar="DIR",
                        help="where each cf2 runs and logs (DIR/N/out.log, error.log); default a temp dir")
    parser.add_argument("--ready-timeout", type=float, default=30.0,
                        help="with --firmware: seconds for every cf2 to shake hands and calibrate (default 30)")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    parser.add_argument("--stats-json", default=None, metavar="PATH", help="write the figures to PATH on exit")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line on exit")


def _validate(args: argparse.Namespace) -> None:
    if not 1 <= args.instances <= MAX_INSTANCES:
        raise QuadhilError(f"--instances must be 1..{MAX_INSTANCES}, got {args.instances}")
    for name in ("firmware_port", "cflib_port"):
        v = getattr(args, name)
        if v != 0 and not 1 <= v <= 65535 - args.instances:
            raise QuadhilError(f"--{name.replace('_', '-')} must be 0 or 1..{65535 - args.instances}, got {v}")
    if args.duration is not None and args.duration <= 0:
        raise QuadhilError(f"--duration must be > 0, got {args.duration}")
    if args.ready_timeout <= 0:
        raise QuadhilError(f"--ready-timeout must be > 0, got {args.ready_timeout}")
    if args.spacing < 0:
        raise QuadhilError(f"--spacing must be >= 0, got {args.spacing}")


def run(args: argparse.Namespace) -> int:
    """Serve until stopped; 0 on a normal stop, 2 if the firmware never became ready."""
    from sim.sitl.crazysim.firmware import FirmwareProcesses, check_firmware
    from sim.sitl.crazysim.server import CrazySimServer, ServerConfig

    _validate(args)
    binary = check_firmware(args.firmware) if args.firmware else None
    server = CrazySimServer(ServerConfig(
        instances=args.instances, host=args.host, firmware_base_port=args.firmware_port,
        cflib_base_port=args.cflib_port, randomize=args.randomize, seed=args.seed,
        pose_rate_hz=args.pose_rate, spacing_m=args.spacing))
    fw = None
    failure: list[str] = []
    try:
        if args.realtime:
            raise_priority()
        stop_on_signals(server.stop_event)
        for d in server.drones:
            print(f"drone {d.index} firmware {d.host}:{d.firmware_port} cflib {d.uri}", flush=True)
        if binary is None:
            print(f"ready {server.drones[0].uri}", flush=True)
        else:
            work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="quadhil-cf2-"))
            fw = FirmwareProcesses(binary, work)
            fw.start([d.firmware_port for d in server.drones], args.host, realtime=args.realtime)
            print(f"crazyflie-fw: started {len(fw.procs)} x {binary.name} (logs in {work})", file=sys.stderr, flush=True)
            server.housekeeping = _firmware_watch(server, fw, args.ready_timeout, failure)
        stats = server.serve(duration_s=args.duration)
        status = server.status()
    finally:
        if fw is not None:
            fw.stop()
        server.close()
    if fw is not None:
        status["firmware"] = {"binary": str(binary), "work_dir": str(fw.work_dir), "pids": fw.pids(),
                              "exit_codes": [p.returncode for p in fw.procs]}
    if args.stats_json:
        with open(args.stats_json, "w") as f:
            json.dump(status, f)
    print(f"crazyflie-fw: stopped after {stats.ticks} ticks, late fraction {stats.late_tick_fraction:.4f}",
          file=sys.stderr, flush=True)
    if args.json:
        emit_json(status)
    if failure:
        raise QuadhilError(failure[0])
    return 0


def _firmware_watch(server, fw, ready_timeout_s: float, failure: list[str]):
    """Housekeeping: print ``ready`` once every firmware calibrated; stop with a reason if one
    exits or the deadline passes first."""
    state = {"ready": False}

    def watch(t_s: float) -> None:
        gone = fw.exited()
        if gone:
            i, code = gone[0]
            failure.append(f"cf2 instance {i} exited with {code} (see {fw.work_dir / str(i)}/error.log)")
            server.stop_event.set()
            return
        if state["ready"]:
            return
        if all(d.ready for d in server.drones):
            state["ready"] = True
            print(f"ready {server.drones[0].uri}", flush=True)
        elif t_s > ready_timeout_s:
            waiting = [str(d.index) for d in server.drones if not d.ready]
            shaken = [str(d.index) for d in server.drones if d.fw_addr is not None]
            failure.append(f"cf2 not ready within {ready_timeout_s:.0f} s (drones waiting: {', '.join(waiting)}; "
                           f"handshakes from: {', '.join(shaken) or 'none'}; logs in {fw.work_dir})")
            server.stop_event.set()

    return watch
