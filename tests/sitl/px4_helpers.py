"""Start PX4 twins as subprocesses on free ports and talk to them with real pymavlink.

Reusable by other test suites (the MAVLink bridge's)::

    with px4_twin() as twin:            # a Px4TwinProcess
        mav = twin.client               # pymavlink udpin connection on the offboard port
        twin.arm()                      # COMMAND_LONG ARM, returns the COMMAND_ACK result

Every twin is ended by pid in ``finally`` (SIGTERM, then SIGKILL after a timeout); every wait
has a timeout. Ports are picked by binding port 0, so tests run in parallel with other suites.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from pymavlink import mavutil

from sim.sitl.px4.modes import decode_custom_mode, encode_custom_mode, MODE_FLAG_CUSTOM_MODE_ENABLED
from sim.sitl.processes import stop_process  # noqa: F401  (re-exported for the PX4 tests)

READY_TIMEOUT_S = 20.0


def free_udp_ports(n: int) -> list[int]:
    """n distinct free UDP ports on 127.0.0.1 (bound then released)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


@dataclass
class Px4TwinProcess:
    """A running twin and a pymavlink client on its offboard (onboard-link) port."""

    proc: subprocess.Popen
    client: mavutil.mavfile
    client_port: int
    listen_port: int
    gcs_port: int
    gcs_listen_port: int
    sysid: int = 1
    compid: int = 1
    statustexts: list = field(default_factory=list)

    def recv(self, types, timeout_s: float = 3.0, condition=None):
        """Next message of ``types`` (str or list) satisfying ``condition(msg)``, or None."""
        deadline = time.monotonic() + timeout_s
        wanted = types if isinstance(types, (list, tuple, set)) else [types]
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            msg = self.client.recv_match(blocking=True, timeout=min(left, 0.2))
            if msg is None:
                continue
            if msg.get_type() == "STATUSTEXT":
                self.statustexts.append(msg.text)
            if msg.get_type() not in wanted:
                continue
            if condition is None or condition(msg):
                return msg

    def drain(self) -> None:
        """Discard everything queued; remember STATUSTEXTs."""
        while True:
            msg = self.client.recv_match(blocking=False)
            if msg is None:
                return
            if msg.get_type() == "STATUSTEXT":
                self.statustexts.append(msg.text)

    def command(self, command: int, *params: float, target_system=None, target_component=None,
                timeout_s: float = 3.0):
        """COMMAND_LONG; returns the COMMAND_ACK (or None on timeout)."""
        p = list(params) + [0.0] * (7 - len(params))
        self.drain()
        self.client.mav.command_long_send(self.sysid if target_system is None else target_system,
                                          self.compid if target_component is None else target_component,
                                          command, 0, *p)
        return self.recv("COMMAND_ACK", timeout_s, lambda m: m.command == command)

    def arm(self, force: bool = False):
        """ARM_DISARM(1); returns the ACK result (MAV_RESULT) or None."""
        ack = self.command(400, 1.0, 21196.0 if force else 0.0)
        return None if ack is None else ack.result

    def disarm(self, force: bool = False):
        """ARM_DISARM(0); returns the ACK result or None."""
        ack = self.command(400, 0.0, 21196.0 if force else 0.0)
        return None if ack is None else ack.result

    def set_mode(self, main_mode: int, sub_mode: int = 0):
        """DO_SET_MODE with a PX4 custom mode; returns the ACK result or None."""
        ack = self.command(176, float(MODE_FLAG_CUSTOM_MODE_ENABLED), float(main_mode), float(sub_mode))
        return None if ack is None else ack.result

    def heartbeat(self, timeout_s: float = 3.0):
        """The next HEARTBEAT from the twin sent after this call."""
        self.drain()
        return self.recv("HEARTBEAT", timeout_s, lambda m: m.get_srcSystem() == self.sysid)

    def mode(self, timeout_s: float = 3.0) -> tuple[int, int] | None:
        """(main, sub) from the next HEARTBEAT."""
        hb = self.heartbeat(timeout_s)
        return None if hb is None else decode_custom_mode(hb.custom_mode)

    def wait_mode(self, main_mode: int, sub_mode: int = 0, timeout_s: float = 5.0) -> bool:
        """True once a HEARTBEAT reports the mode."""
        want = encode_custom_mode(main_mode, sub_mode)
        self.drain()
        return self.recv("HEARTBEAT", timeout_s, lambda m: m.custom_mode == want) is not None

    def send_rates(self, roll=0.0, pitch=0.0, yaw=0.0, thrust=0.5, target_system=None):
        """One SET_ATTITUDE_TARGET with body rates (FRD, rad/s) and collective thrust 0..1."""
        self.client.mav.set_attitude_target_send(0, self.sysid if target_system is None else target_system,
                                                 self.compid, 128, [1.0, 0.0, 0.0, 0.0], roll, pitch, yaw, thrust)

    def send_position(self, x, y, z, yaw=float("nan")):
        """One SET_POSITION_TARGET_LOCAL_NED with a position (NED, m)."""
        mask = 0b0000_1111_1111_1000 if yaw != yaw else 0b0000_1011_1111_1000
        self.client.mav.set_position_target_local_ned_send(0, self.sysid, self.compid, 1, mask, x, y, z,
                                                           0, 0, 0, 0, 0, 0, 0 if yaw != yaw else yaw, 0)

    def local_position(self, timeout_s: float = 2.0):
        """The next LOCAL_POSITION_NED sent after this call (older queued ones are dropped)."""
        self.drain()
        return self.recv("LOCAL_POSITION_NED", timeout_s)


@contextlib.contextmanager
def px4_twin(*extra_args: str, ekf_init_s: float = 0.0, gcs: bool = True, sysid: int = 1,
             ready_timeout_s: float = READY_TIMEOUT_S, heartbeat_hz: float = 10.0):
    """Start ``python -m sim.sitl px4`` on free ports, wait for its first HEARTBEAT on the
    offboard port, yield a :class:`Px4TwinProcess`; always stop it by pid.

    ``heartbeat_hz`` asks for HEARTBEAT at that rate on the offboard link with
    MAV_CMD_SET_MESSAGE_INTERVAL (PX4 honours it), so mode changes show up quickly; pass 1.0
    for PX4's default.
    """
    client_port, listen_port, gcs_port, gcs_listen_port = free_udp_ports(4)
    client = mavutil.mavlink_connection(f"udpin:127.0.0.1:{client_port}", source_system=255, source_component=190)
    cmd = [sys.executable, "-m", "sim.sitl", "px4", "--port", str(client_port), "--listen-port", str(listen_port),
           "--gcs-port", str(gcs_port), "--gcs-listen-port", str(gcs_listen_port), "--ekf-init-s", str(ekf_init_s),
           "--sysid", str(sysid), *extra_args]
    if not gcs:
        cmd.append("--no-gcs")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        twin = Px4TwinProcess(proc, client, client_port, listen_port, gcs_port, gcs_listen_port, sysid=sysid)
        deadline = time.monotonic() + ready_timeout_s
        hb = None
        while hb is None and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"twin exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
            hb = client.recv_match(type="HEARTBEAT", blocking=True, timeout=0.5)
        if hb is None:
            raise TimeoutError(f"no HEARTBEAT from the twin within {ready_timeout_s} s")
        # the twin answers whoever talks to it: announce ourselves so replies come back here
        client.mav.heartbeat_send(6, 8, 0, 0, 0)
        if heartbeat_hz != 1.0:
            ack = twin.command(511, 0.0, 1e6 / heartbeat_hz)
            if ack is None or ack.result != 0:
                raise RuntimeError(f"twin refused a HEARTBEAT interval: {ack}")
        yield twin
    finally:
        stop_process(proc)
        client.close()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
