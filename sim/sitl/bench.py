"""``quadhil bench sitl``: real-time quality and CPU of the Crazyflie twin under client load.

Starts a twin process, then a plain CRTP client (no cflib: sim/ may not import it; the same
packets cflib sends) resets logging, finds six stateEstimate variables in the log TOC, starts a
10 ms log block and streams legacy setpoints at 100 Hz for ``--duration`` seconds (the twin
takes off on 37000 and climbs slowly). Reports the fraction of physics ticks that started more
than 1 ms late (from the twin's own counters), the twin's CPU use as a fraction of one core
(user + system time from /proc/PID/stat over the streaming window), and the rates seen.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

from sim.errors import QuadhilError
from sim.report import emit_json, print_table
from sim.sitl.processes import process_cpu_s

LOG_NAMES = ("stateEstimate.x", "stateEstimate.y", "stateEstimate.z",
             "stateEstimate.vx", "stateEstimate.vy", "stateEstimate.vz")


def configure(parser: argparse.ArgumentParser) -> None:
    """Benchmark options."""
    parser.add_argument("--duration", type=float, default=15.0, help="streaming time, s")
    parser.add_argument("--rate-hz", type=float, default=100.0, help="setpoint rate")
    parser.add_argument("--realtime", action="store_true", help="run the twin with --realtime")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")


class _Client:
    """Minimal CRTP-over-UDP client with request/response by predicate."""

    def __init__(self, port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))
        self.log_packets = 0

    def send(self, port: int, channel: int, payload: bytes) -> None:
        self.sock.send(bytes(((port << 4) | channel,)) + payload)

    def request(self, port: int, channel: int, payload: bytes, match, timeout_s: float = 2.0) -> bytes:
        self.send(port, channel, payload)
        end = time.monotonic() + timeout_s
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise QuadhilError(f"twin did not answer port {port} channel {channel} request")
            d = self.sock.recv(64)
            if match(d):
                return d

    def pump(self) -> None:
        while select.select([self.sock], [], [], 0)[0]:
            d = self.sock.recv(64)
            if d and d[0] >> 4 == 5 and d[0] & 3 == 2:
                self.log_packets += 1


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; prints a table (and a JSON line with --json)."""
    if args.duration <= 0 or args.rate_hz <= 0:
        raise QuadhilError("--duration and --rate-hz must be > 0")
    stats_path = tempfile.mktemp(prefix="quadhil-sitl-bench-", suffix=".json")
    cmd = [sys.executable, "-m", "quadhil", "sitl", "crazyflie", "--port", "0", "--stats-json", stats_path]
    if args.realtime:
        cmd.append("--realtime")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        if not select.select([proc.stdout], [], [], 60)[0]:
            raise QuadhilError("twin did not start within 60 s")
        line = proc.stdout.readline()
        if not line.startswith("ready "):
            raise QuadhilError(f"twin did not start: {line!r}")
        port = int(line.split(":")[-1])
        c = _Client(port)
        c.request(5, 1, b"\x05", lambda d: d[:2] == b"\x51\x05")
        info = c.request(5, 0, b"\x03", lambda d: d[:2] == b"\x50\x03")
        count = struct.unpack_from("<H", info, 2)[0]
        ids = {}
        for ident in range(count):
            item = c.request(5, 0, struct.pack("<BH", 2, ident), lambda d, i=ident: d[:4] == struct.pack("<BBH", 0x50, 2, i))
            group, name = item[5:].split(b"\0")[:2]
            full = f"{group.decode()}.{name.decode()}"
            if full in LOG_NAMES:
                ids[full] = ident
        ops = b"".join(struct.pack("<BH", 7, ids[n]) for n in LOG_NAMES)
        c.request(5, 1, bytes((6, 1)) + ops, lambda d: d[:3] == b"\x51\x06\x01")
        c.request(5, 1, bytes((3, 1, 1)), lambda d: d[:3] == b"\x51\x03\x01")
        c.send(3, 0, struct.pack("<fffH", 0, 0, 0, 0))
        period = 1.0 / args.rate_hz
        cpu0, t0 = process_cpu_s(proc.pid), time.monotonic()
        next_send, sent = t0, 0
        while time.monotonic() - t0 < args.duration:
            c.send(3, 0, struct.pack("<fffH", 0.0, 0.0, 0.0, 37000))
            sent += 1
            next_send += period
            while (left := next_send - time.monotonic()) > 0:
                if select.select([c.sock], [], [], left)[0]:
                    c.pump()
        window = time.monotonic() - t0
        cpu1 = process_cpu_s(proc.pid)
        c.send(3, 0, struct.pack("<fffH", 0, 0, 0, 0))
        c.pump()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        with open(stats_path) as f:
            st = json.load(f)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if os.path.exists(stats_path):
            os.unlink(stats_path)
    figures = {
        "late_tick_fraction": st["late_tick_fraction"],
        "cpu_fraction": None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / window,
        "max_tick_lateness_ms": 1000.0 * st["max_lateness_s"],
        "ticks": st["ticks"],
        "skipped_ticks": st["skipped_ticks"],
        "setpoint_rate_hz": sent / window,
        "log_rate_hz": c.log_packets / window,
        "duration_s": window,
        "loadavg_1min": os.getloadavg()[0],
        "realtime": bool(args.realtime),
    }
    print_table("Crazyflie twin under a 100 Hz client", list(figures.items()))
    if args.json:
        emit_json(figures)
    return 0
