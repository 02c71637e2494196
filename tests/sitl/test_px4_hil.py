"""px4-hil: the simulator side of PX4's simulator_mavlink, spoken to by a real pymavlink TCP
client acting as PX4 (and, where PX4_SITL_BIN points at a PX4 SITL binary, by PX4 itself)."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pymavlink import mavutil

from tests.sitl.px4_helpers import stop_process

ARMED = 128
LOCKSTEP = 1


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_hil(port: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sim.sitl", "px4-hil", "--port", str(port), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def connect(port: int, proc: subprocess.Popen, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode()[-2000:])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    # the server serves one PX4 at a time; the probe above disconnected, so connect for real
    return mavutil.mavlink_connection(f"tcp:127.0.0.1:{port}", source_system=1, source_component=1)


def test_hil_sensor_at_250_hz_before_px4_speaks_then_actuator_controls_move_the_vehicle():
    port = free_tcp_port()
    proc = start_hil(port, "--no-noise")
    conn = None
    try:
        conn = connect(port, proc)
        first = conn.recv_match(type="HIL_SENSOR", blocking=True, timeout=5.0)
        assert first is not None, "no HIL_SENSOR without any message from 'PX4'"
        # rate: count HIL_SENSOR stamps over one wall second (the stamps drive PX4's clock)
        while conn.recv_match(blocking=False) is not None:  # what queued up since connecting
            pass
        stamps, t_end = [], time.monotonic() + 1.0
        while time.monotonic() < t_end:
            m = conn.recv_match(type="HIL_SENSOR", blocking=True, timeout=0.2)
            if m is not None:
                stamps.append(m.time_usec)
        assert 150 <= len(stamps) <= 300, len(stamps)
        assert np.all(np.diff(stamps) == 4000)  # 250 Hz in simulated time, no gaps
        rest = conn.recv_match(type="HIL_SENSOR", blocking=True, timeout=1.0)
        assert rest.zacc == pytest.approx(-9.80665, abs=0.05)  # FRD specific force at rest
        assert abs(rest.xacc) < 0.05 and abs(rest.yacc) < 0.05
        assert max(abs(rest.xgyro), abs(rest.ygyro), abs(rest.zgyro)) < 1e-6
        assert 0.4 < math.sqrt(rest.xmag ** 2 + rest.ymag ** 2 + rest.zmag ** 2) < 0.6  # gauss
        assert 940 < rest.abs_pressure < 970  # hPa at 488 m AMSL
        assert rest.fields_updated & 0b111111111 == 0b111111111
        gps = conn.recv_match(type="HIL_GPS", blocking=True, timeout=1.0)
        assert gps.fix_type == 3 and abs(gps.lat / 1e7 - 47.397742) < 1e-5
        # garbage and NaN controls on the TCP stream are dropped; the stream resynchronizes
        conn.write(np.random.default_rng(5).integers(0, 256, 3000).astype(np.uint8).tobytes())
        conn.mav.hil_actuator_controls_send(0, [math.nan] * 16, ARMED, LOCKSTEP)
        # act as PX4 in lockstep: answer every HIL_SENSOR with armed motor outputs above hover
        u = 0.85  # hover is sqrt(0.574) = 0.757 on the gz x500 thrust curve
        zacc, t_end = [], time.monotonic() + 1.5
        while time.monotonic() < t_end:
            m = conn.recv_match(type="HIL_SENSOR", blocking=True, timeout=0.5)
            if m is None:
                continue
            conn.mav.hil_actuator_controls_send(m.time_usec, [u] * 4 + [0.0] * 12, ARMED | 1, LOCKSTEP)
            zacc.append(m.zacc)
        thrust_accel = 4 * 8.54858 * u * u / 2.0
        # thrust / mass less a little body drag as it climbs: well beyond gravity's 9.81
        assert -thrust_accel - 0.2 < np.median(zacc[-50:]) < -10.8
        state = conn.recv_match(type="HIL_STATE_QUATERNION", blocking=True, timeout=1.0)
        assert state.alt > 488_000 + 100  # climbed (mm AMSL)
        assert state.vz < 0  # NED: going up
        # disarmed outputs stop the motors whatever the controls say
        for _ in range(100):
            m = conn.recv_match(type="HIL_SENSOR", blocking=True, timeout=0.5)
            if m is not None:
                conn.mav.hil_actuator_controls_send(m.time_usec, [u] * 4 + [0.0] * 12, 1, LOCKSTEP)
        m = conn.recv_match(type="HIL_SENSOR", blocking=True, timeout=0.5)
        assert abs(m.zacc) < 0.5  # free fall: no specific force
    finally:
        if conn is not None:
            conn.close()
        stop_process(proc)
        proc.stdout.close()
        proc.stderr.close()


PX4_SITL_BIN = os.environ.get("PX4_SITL_BIN")


@pytest.mark.skipif(not PX4_SITL_BIN, reason="PX4_SITL_BIN is not set: no PX4 SITL binary to fly "
                                             "(see docs/sitl-px4.md and ci/px4-sitl.yml)")
def test_real_px4_sitl_arms_and_takes_off_on_quadhil_physics(tmp_path):
    """PX4 SITL (airframe none_iris, 10016) connects to px4-hil, boots in lockstep on our
    sensors, arms and takes off; checked through its own MAVLink offboard port 14540."""
    bin_path = Path(PX4_SITL_BIN)
    build_dir = bin_path.parent.parent
    hil = start_hil(4560)
    client = mavutil.mavlink_connection("udpin:127.0.0.1:14540")
    env = dict(os.environ, PX4_SYS_AUTOSTART="10016", PX4_SIM_MODEL="none_iris", HEADLESS="1")
    px4 = subprocess.Popen([str(bin_path), "-d", str(build_dir / "etc"), "-w", str(tmp_path), "-s",
                            "etc/init.d-posix/rcS"], cwd=build_dir, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        hb = client.recv_match(type="HEARTBEAT", blocking=True, timeout=60)
        assert hb is not None and hb.autopilot == mavutil.mavlink.MAV_AUTOPILOT_PX4
        client.mav.heartbeat_send(6, 8, 0, 0, 0)
        deadline = time.monotonic() + 90
        ack = None
        while time.monotonic() < deadline:  # EKF2 needs a few seconds of our GPS to align
            client.mav.command_long_send(1, 1, 400, 0, 1, 0, 0, 0, 0, 0, 0)
            ack = client.recv_match(type="COMMAND_ACK", blocking=True, timeout=2)
            if ack is not None and ack.command == 400 and ack.result == 0:
                break
            time.sleep(1)
        assert ack is not None and ack.result == 0, "PX4 never accepted arming on quadhil's sensors"
        client.mav.command_long_send(1, 1, 22, 0, 0, 0, 0, math.nan, math.nan, math.nan, math.nan)
        deadline = time.monotonic() + 30
        alt = 0.0
        while time.monotonic() < deadline and alt < 2.0:
            lp = client.recv_match(type="LOCAL_POSITION_NED", blocking=True, timeout=2)
            if lp is not None:
                alt = -lp.z
        assert alt >= 2.0
    finally:
        stop_process(px4, 10)
        stop_process(hil)
        client.close()
        for p in (px4, hil):
            p.stdout.close()
        hil.stderr.close()
