"""``quadhil bench sitl-px4`` (to be registered in quadhil/bench.py): figures of the PX4 twin and
of px4-hil, measured through real pymavlink clients on free loopback ports.

Twin: command round trip (COMMAND_LONG -> COMMAND_ACK), CPU of the twin process as a fraction of
one core while a client holds 1.5 m over body-rate/thrust offboard at 50 Hz, the altitude error
of that hold, telemetry rates received, the delay from the last setpoint to the HEARTBEAT that
shows the COM_OF_LOSS_T failsafe, and the twin's own overrun counter.
px4-hil: HIL_SENSOR rate and real-time factor with a client answering every step in lockstep,
and the server's CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
from pymavlink import mavutil

from sim.errors import QuadhilError
from sim.report import emit_json, print_table
from sim.sitl.processes import free_port, process_cpu_s

HOVER_FRACTION = 2.0 * 9.80665 / (4 * 8.54858)  # x500


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
    return out.decode(errors="replace") if out else ""


def _recv(conn, types, timeout_s, cond=None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = conn.recv_match(type=types, blocking=True, timeout=min(0.1, max(deadline - time.monotonic(), 0.001)))
        if m is not None and (cond is None or cond(m)):
            return m
    return None


def bench_twin(hold_s: float) -> dict:
    """Run one twin and measure it (see module docstring)."""
    cport, lport = free_port(), free_port()
    conn = mavutil.mavlink_connection(f"udpin:127.0.0.1:{cport}", source_system=255, source_component=190)
    proc = subprocess.Popen([sys.executable, "-m", "sim.sitl", "px4", "--port", str(cport), "--listen-port",
                             str(lport), "--no-gcs", "--ekf-init-s", "0", "--json",
                             "--param", "THR_MDL_FAC=1"],  # the hold below sends thrust linear in force
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        if _recv(conn, "HEARTBEAT", 30.0) is None:
            raise QuadhilError("the PX4 twin sent no HEARTBEAT within 30 s")
        conn.mav.heartbeat_send(6, 8, 0, 0, 0)
        rtt = []
        for i in range(35):  # the first five warm up both processes and are not counted
            t0 = time.perf_counter()
            conn.mav.command_long_send(1, 1, 511, 0, 0, 100000, 0, 0, 0, 0, 0)  # HEARTBEAT at 10 Hz
            if _recv(conn, "COMMAND_ACK", 1.0, lambda m: m.command == 511) is not None and i >= 5:
                rtt.append((time.perf_counter() - t0) * 1e3)
        for _ in range(15):
            conn.mav.set_attitude_target_send(0, 1, 1, 128, [1, 0, 0, 0], 0, 0, 0, 0.0)
            time.sleep(0.02)
        conn.mav.command_long_send(1, 1, 400, 0, 1, 0, 0, 0, 0, 0, 0)
        conn.mav.command_long_send(1, 1, 176, 0, 1, 6, 0, 0, 0, 0, 0)
        z = vz = 0.0
        counts = {"ATTITUDE": 0, "LOCAL_POSITION_NED": 0}
        errors = []
        c0, w0 = process_cpu_s(proc.pid), time.monotonic()
        while time.monotonic() - w0 < hold_s:
            m = conn.recv_match(blocking=False)
            while m is not None:
                if m.get_type() in counts:
                    counts[m.get_type()] += 1
                if m.get_type() == "LOCAL_POSITION_NED":
                    z, vz = m.z, m.vz
                    if time.monotonic() - w0 > hold_s / 2:
                        errors.append(-z - 1.5)
                m = conn.recv_match(blocking=False)
            thrust = HOVER_FRACTION + 0.12 * (1.5 + z) + 0.15 * vz
            conn.mav.set_attitude_target_send(0, 1, 1, 128, [1, 0, 0, 0], 0, 0, 0, float(np.clip(thrust, 0, 1)))
            time.sleep(0.02)
        wall = time.monotonic() - w0
        cpu = (process_cpu_s(proc.pid) - c0) / wall
        t_last = time.monotonic()
        hb = _recv(conn, "HEARTBEAT", 5.0, lambda m: (m.custom_mode >> 16) & 0xFF == 3)
        failsafe_s = time.monotonic() - t_last if hb is not None else None
    finally:
        out = _stop(proc)
        conn.close()
    try:
        status = json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        status = {}
    return {
        "twin_command_rtt_p50_ms": float(np.percentile(rtt, 50)) if rtt else None,
        "twin_command_rtt_p99_ms": float(np.percentile(rtt, 99)) if rtt else None,
        "twin_cpu_fraction_flying": cpu,
        "twin_hold_rms_error_m": float(np.sqrt(np.mean(np.square(errors)))) if errors else None,
        "twin_attitude_rate_hz": counts["ATTITUDE"] / wall,
        "twin_local_position_rate_hz": counts["LOCAL_POSITION_NED"] / wall,
        "twin_offboard_loss_to_failsafe_heartbeat_s": failsafe_s,
        "twin_overruns": status.get("overruns"),
        "twin_sim_time_s": status.get("sim_time_s"),
    }


def bench_hil(duration_s: float) -> dict:
    """Run px4-hil with a lockstep pymavlink 'PX4' and measure it."""
    port = free_port(socket.SOCK_STREAM)
    proc = subprocess.Popen([sys.executable, "-m", "sim.sitl", "px4-hil", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn = None
    try:
        deadline = time.monotonic() + 30
        while conn is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                conn = mavutil.mavlink_connection(f"tcp:127.0.0.1:{port}")
            except OSError:
                time.sleep(0.1)
        if conn is None:
            raise QuadhilError("px4-hil did not listen within 30 s")
        _recv(conn, "HIL_SENSOR", 5.0)
        while conn.recv_match(blocking=False) is not None:
            pass
        n, first, last = 0, None, None
        c0, w0 = process_cpu_s(proc.pid), time.monotonic()
        while time.monotonic() - w0 < duration_s:
            m = conn.recv_match(type="HIL_SENSOR", blocking=True, timeout=0.5)
            if m is None:
                continue
            n += 1
            first = first if first is not None else m.time_usec
            last = m.time_usec
            conn.mav.hil_actuator_controls_send(m.time_usec, [0.757] * 4 + [0.0] * 12, 129, 1)
        wall = time.monotonic() - w0
        cpu = (process_cpu_s(proc.pid) - c0) / wall
    finally:
        if conn is not None:
            conn.close()
        _stop(proc)
    return {"hil_sensor_rate_hz": n / wall, "hil_real_time_factor": (last - first) / 1e6 / wall if n > 1 else None,
            "hil_cpu_fraction": cpu}


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of the PX4 SITL bench."""
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of offboard hold (default 6)")
    parser.add_argument("--hil-duration", type=float, default=3.0, help="seconds of lockstep HIL (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def run(args: argparse.Namespace) -> int:
    """Measure and report."""
    if args.duration <= 1 or args.hil_duration <= 0:
        raise QuadhilError("--duration must be > 1 s and --hil-duration > 0 s")
    figures = bench_twin(args.duration)
    figures.update(bench_hil(args.hil_duration))
    with open("/proc/loadavg") as f:
        figures["loadavg_1min"] = float(f.read().split()[0])
    figures["cpu_count"] = os.cpu_count()
    print_table("PX4 twin and px4-hil", list(figures.items()))
    if args.json:
        emit_json(figures)
    return 0


if __name__ == "__main__":  # python -m sim.sitl.px4.bench
    _p = argparse.ArgumentParser(prog="quadhil bench sitl-px4")
    configure(_p)
    raise SystemExit(run(_p.parse_args()))
