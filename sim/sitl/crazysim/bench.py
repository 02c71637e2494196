"""``quadhil bench sitl-fw``: the CrazySim physics side's real-time quality and CPU, per drone.

Starts ``quadhil sitl crazyflie-fw --instances N`` and N firmwares: with ``--firmware PATH`` the
real ``cf2`` (the server starts them), otherwise N processes of the scripted peer
(``python -m sim.sitl.crazysim.peer``, cf2's argv), each climbing to 0.5 m on the pose it
receives once calibrated. After ``--duration`` seconds it stops the server and reports, from the
server's own counters: the fraction of 1 kHz ticks that started more than 1 ms late and the worst
lateness, the IMU rate each firmware received, and CPU as a fraction of one core (user + system
from /proc/PID/stat over the run) for the server (shared by all drones; per drone = / N) and for
each firmware process. The scripted peer's CPU says nothing about cf2's: with it, the figures
are the physics side's only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sim.errors import QuadhilError
from sim.report import emit_json, print_table
from sim.sitl.processes import process_cpu_s, stop_process, twin_command

START_TIMEOUT_S = 60.0


def configure(parser: argparse.ArgumentParser) -> None:
    """Benchmark options."""
    parser.add_argument("--instances", type=int, default=2, help="drones at once (default 2)")
    parser.add_argument("--duration", type=float, default=10.0, help="run time after start-up, s (default 10)")
    parser.add_argument("--firmware", default=None, metavar="PATH",
                        help="CrazySim's cf2 binary (default: the scripted firmware peer)")
    parser.add_argument("--realtime", action="store_true", help="run the server (and cf2) with --realtime")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _read_until_ready(proc: subprocess.Popen, timeout_s: float) -> list[int]:
    """Firmware ports from the server's ``drone N firmware HOST:PORT ...`` lines, up to ``ready``."""
    import select

    ports: list[int] = []
    deadline = time.monotonic() + timeout_s
    buf = b""
    while True:
        *lines, buf = buf.split(b"\n")
        for raw in lines:
            parts = raw.decode(errors="replace").split()
            if parts[:1] == ["drone"]:
                ports.append(int(parts[3].rsplit(":", 1)[1]))
            elif parts[:1] == ["ready"]:
                return ports
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise QuadhilError(f"the physics server did not get ready within {timeout_s:.0f} s (exit {proc.poll()})")
        if select.select([proc.stdout], [], [], left)[0]:
            buf += os.read(proc.stdout.fileno(), 4096)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; prints a table (and a JSON line with --json)."""
    if not 1 <= args.instances <= 10 or args.duration <= 0:
        raise QuadhilError("--instances must be 1..10 and --duration > 0")
    stats_path = Path(tempfile.mkdtemp(prefix="quadhil-bench-fw-")) / "stats.json"
    cmd = twin_command("crazyflie-fw", "--instances", str(args.instances), "--firmware-port", "0",
                       "--cflib-port", "0", "--stats-json", str(stats_path))
    if args.firmware:
        cmd += ["--firmware", args.firmware, "--work-dir", str(stats_path.parent / "cf2")]
    if args.realtime:
        cmd.append("--realtime")
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peers: list[subprocess.Popen] = []
    try:
        ports = _read_until_ready(server, START_TIMEOUT_S)
        if args.firmware:
            fw_pids = _children(server.pid)
        else:
            peers = [subprocess.Popen([sys.executable, "-m", "sim.sitl.crazysim.peer", str(p), "127.0.0.1",
                                       "--climb-to", "0.5"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for p in ports]
            fw_pids = [p.pid for p in peers]
        pids = [server.pid, *fw_pids]
        cpu0, t0 = {p: process_cpu_s(p) for p in pids}, time.monotonic()
        time.sleep(args.duration)
        window = time.monotonic() - t0
        cpu = {p: (None if cpu0[p] is None or process_cpu_s(p) is None else (process_cpu_s(p) - cpu0[p]) / window) for p in pids}
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=20)
        if server.returncode != 0:
            raise QuadhilError(f"the physics server failed: {err.decode(errors='replace')[-500:]}")
        st = json.loads(stats_path.read_text())
    finally:
        for p in peers:
            stop_process(p)
        stop_process(server)
    n = args.instances
    server_cpu = cpu[server.pid]
    figures = {
        "firmware": "cf2" if args.firmware else "scripted peer",
        "instances": n,
        "late_tick_fraction": st["late_tick_fraction"],
        "max_tick_lateness_ms": st["max_lateness_ms"],
        "slipped_steps": st["slipped_steps"],
        "lateness_hist_ms": st["lateness_hist_ms"],
        "server_cpu_fraction": server_cpu,
        "server_cpu_fraction_per_drone": None if server_cpu is None else server_cpu / n,
        "firmware_cpu_fraction": [cpu[p] for p in fw_pids],
        "imu_rate_hz": [d["imu_rate_hz"] for d in st["drones"]],
        "ready_after_s": [d["ready_after_s"] for d in st["drones"]],
        "motor_packets": [d["motor_packets"] for d in st["drones"]],
        "height_m": [d["position_enu_m"][2] for d in st["drones"]],
        "duration_s": window,
        "loadavg_1min": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
        "realtime": bool(args.realtime),
    }
    rows = [(k, v if not isinstance(v, list) else ", ".join(f"{x:.4g}" if isinstance(x, float) else str(x) for x in v))
            for k, v in figures.items() if k != "lateness_hist_ms"]
    print_table(f"CrazySim physics side, {n} drone(s), {figures['firmware']}", rows)
    if args.json:
        emit_json(figures)
    return 0
