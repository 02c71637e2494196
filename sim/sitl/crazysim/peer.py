"""A scripted stand-in for CrazySim's ``cf2``, written from the firmware's side of the protocol.

It does what the firmware's code does, not what quadhil's server expects (it imports nothing from
``sim.sitl.crazysim``): socketlink.c's handshake (bind an ephemeral port, send 0xF3, wait for a
1-byte 0xF3, send it again after 10 other datagrams 10 ms apart) and its reply rule (answer the
sender of the latest datagram); sensors_sitl.c's parsing of port 9 (int16 raw values times
SENSORS_G_PER_LSB_CFG / SENSORS_DEG_PER_LSB_CFG), its gyro bias (mean of a full 1024-sample
buffer with variance < 5000 per axis) and the ready answer ``data[0] = 1``; one stabilizer step
per port-9 packet with power_distribution_sitl.c's motor packet at most once per 1 ms tick;
crtp_localization_service.c's external pose (port 6 channel 1, type 8, 7 floats). Other CRTP
traffic goes to a small service: ``echo`` answers port 15 channel 0 with the same packet
(crtpservice.c linkEcho), ``twin`` hands it to the Crazyflie twin's packet handler so that real
cflib can download TOCs and read parameters through the relay.

The motor output is scripted: a constant PWM, or with ``climb_to_m`` a vertical-speed loop on the
received pose (no attitude control: the physics keeps a symmetric vehicle level). Run it with
cf2's own argv, ``python -m sim.sitl.crazysim.peer 19950 127.0.0.1`` (the bench does, to measure
it as a process).
"""

from __future__ import annotations

import argparse
import math
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

import numpy as np

# socketlink.c
HANDSHAKE_BYTE = 0xF3
HANDSHAKE_RETRY_AFTER = 10  # max_count: datagrams read before 0xF3 is sent again
HANDSHAKE_RETRY_DELAY_S = 0.010  # vTaskDelay(M2T(10)) after each non-handshake datagram
# sensors_sitl.c
PORT_SIM = 9
SENSOR_GYRO_ACC, SENSOR_MAG, SENSOR_BARO = 0, 1, 2
G_PER_LSB = (2 * 16) / 65536.0
DEG_PER_LSB = (2 * 2000.0) / 65536.0
MAG_GAUSS_PER_LSB = 666.7
BIAS_SAMPLES = 1024
GYRO_VARIANCE_BASE = 5000
ACC_SCALE_SAMPLES = 1000
# crtp_localization_service.c / CrtpUtils.h
PORT_LOCALIZATION, CHANNEL_GEN_LOC, EXT_POSE = 6, 1, 8
# crtpservice.c
PORT_LINK, CHANNEL_ECHO = 15, 0
# power_distribution_sitl.c: thrust = a pwm^2 + b pwm (pwm normalized), the firmware's own
# quadSysId.pwmToThrustA/B, used here only to pick a hover PWM for the scripted climb.
PWM_TO_THRUST_A, PWM_TO_THRUST_B = 0.091492681, 0.067673604
CF_MASS_KG = 0.027  # platform_defaults_cf2.h CF_MASS


@dataclass
class PeerLog:
    """What the peer saw; read by tests and the bench (thread-safe enough for counters)."""

    handshake_sends: int = 0
    imu_samples: int = 0
    first_imu_t: float | None = None
    last_imu_t: float | None = None
    acc_g: tuple = (0.0, 0.0, 0.0)
    gyro_dps: tuple = (0.0, 0.0, 0.0)
    acc_g_raw_history: list = field(default_factory=list)
    mag_gauss: tuple | None = None
    baro: tuple | None = None
    pose: tuple | None = None  # x, y, z, qx, qy, qz, qw
    pose_samples: int = 0
    motor_packets: int = 0
    bias_found_at_sample: int | None = None
    acc_scale: float | None = None
    other_arrivals: list = field(default_factory=list)  # (t, datagram) of non-sensor CRTP
    senders: set = field(default_factory=set)
    max_in_one_ms: int = 0


class FirmwarePeer:
    """One scripted firmware connected to a physics server at ``host:port``."""

    def __init__(self, host: str, port: int, services: str = "echo", pwm: int = 0,
                 climb_to_m: float | None = None, record_acc: bool = False):
        if services not in ("echo", "twin", "none"):
            raise ValueError(f"services must be echo, twin or none, got {services!r}")
        self.server = (host, port)
        self.services = services
        self.pwm = [int(pwm)] * 4
        self.climb_to_m = climb_to_m
        self.record_acc = record_acc
        self.log = PeerLog()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))  # socketlink.c: the OS picks this instance's port
        self.remaddr = self.server
        self.stop_event = threading.Event()
        self._gyro_buf: list[tuple[int, int, int]] = []
        self._bias_found = False
        self._ready_sent = False
        self._acc_sum, self._acc_n = 0.0, 0
        self._t0 = time.monotonic()
        self._last_motor_tick = -1
        self._window = (-1, 0)
        self._twin = None
        self._prev_pose: tuple | None = None
        if services == "twin":
            from sim.sitl.crazyflie.twin import CrazyflieTwin

            self._twin = CrazyflieTwin()

    @property
    def port(self) -> int:
        """This firmware's own UDP port."""
        return self.sock.getsockname()[1]

    def close(self) -> None:
        """Release the socket."""
        self.sock.close()

    # -- socketlink.c ------------------------------------------------------------------------
    def handshake(self, timeout_s: float = 10.0) -> bool:
        """Send 0xF3 and wait for a 1-byte 0xF3; resend after 10 other datagrams. False on timeout
        (the real firmware has no timeout: it would wait forever)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.sock.sendto(bytes((HANDSHAKE_BYTE,)), self.server)
            self.log.handshake_sends += 1
            count = 0
            while count < HANDSHAKE_RETRY_AFTER:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                    return False
                data, addr = self.sock.recvfrom(64)
                self.remaddr = addr
                if len(data) == 1 and data[0] == HANDSHAKE_BYTE:
                    return True
                count += 1
                time.sleep(HANDSHAKE_RETRY_DELAY_S)
        return False

    def send(self, data: bytes) -> None:
        """socketlinkSendPacket: to whoever sent the latest datagram."""
        try:
            self.sock.sendto(data, self.remaddr)
        except OSError:
            pass

    def run(self, duration_s: float | None = None) -> None:
        """socketlinkTask + the tasks that consume its packets, until stopped."""
        start = time.monotonic()
        while not self.stop_event.is_set():
            if duration_s is not None and time.monotonic() - start > duration_s:
                return
            if not select.select([self.sock], [], [], 0.05)[0]:
                continue
            try:
                data, addr = self.sock.recvfrom(64)
            except OSError:
                return
            if not data:
                continue
            self.remaddr = addr  # recvfrom(..., &remaddr, ...): replies follow the latest sender
            self.log.senders.add(addr)
            self._count_window()
            self.handle(data)

    def _count_window(self) -> None:
        ms = int((time.monotonic() - self._t0) * 1000)
        w_ms, n = self._window
        n = n + 1 if ms == w_ms else 1
        self._window = (ms, n)
        self.log.max_in_one_ms = max(self.log.max_in_one_ms, n)

    # -- crtp routing ------------------------------------------------------------------------
    def handle(self, data: bytes) -> None:
        """Route one CRTP packet by port (crtp.h: port = header >> 4, channel = header & 3)."""
        port, channel, payload = data[0] >> 4, data[0] & 0x03, data[1:]
        if port == PORT_SIM:
            self._sensors(data[0], payload)
        elif port == PORT_LOCALIZATION and channel == CHANNEL_GEN_LOC and payload[:1] == bytes((EXT_POSE,)):
            if len(payload) >= 29:
                self.log.pose = struct.unpack_from("<7f", payload, 1)
                self.log.pose_samples += 1
        else:
            self.log.other_arrivals.append((time.monotonic(), data))
            self._service(port, channel, data)

    def _service(self, port: int, channel: int, data: bytes) -> None:
        if self.services == "echo":
            if port == PORT_LINK and channel == CHANNEL_ECHO:
                self.send(data)
        elif self._twin is not None:
            self._twin.handle_datagram(data)
            for out in self._twin.outbox:
                self.send(out)
            self._twin.outbox.clear()

    # -- sensors_sitl.c ----------------------------------------------------------------------
    def _sensors(self, header: int, payload: bytes) -> None:
        if not payload:
            return
        kind = payload[0]
        if kind == SENSOR_GYRO_ACC and len(payload) >= 13:
            ax, ay, az, gx, gy, gz = struct.unpack_from("<6h", payload, 1)
            self._imu(ax, ay, az, gx, gy, gz)
        elif kind == SENSOR_MAG and len(payload) >= 7:
            mx, my, mz = struct.unpack_from("<3h", payload, 1)
            self.log.mag_gauss = (mx / MAG_GAUSS_PER_LSB, my / MAG_GAUSS_PER_LSB, mz / MAG_GAUSS_PER_LSB)
        elif kind == SENSOR_BARO and len(payload) >= 13:
            self.log.baro = struct.unpack_from("<3f", payload, 1)
        if self._bias_found and not self._ready_sent:
            self._ready_sent = True
            self.send(bytes((header, 1)))  # p.data[0] = gyroBiasFound; p.size = 1
        self._stabilizer_step()

    def _imu(self, ax: int, ay: int, az: int, gx: int, gy: int, gz: int) -> None:
        lg = self.log
        now = time.monotonic()
        lg.imu_samples += 1
        lg.first_imu_t = lg.first_imu_t or now
        lg.last_imu_t = now
        if not self._bias_found:
            self._gyro_buf = (self._gyro_buf + [(gx, gy, gz)])[-BIAS_SAMPLES:]
            if len(self._gyro_buf) == BIAS_SAMPLES:
                g = np.asarray(self._gyro_buf, dtype=np.int64)
                s, sq = g.sum(axis=0), (g * g).sum(axis=0)
                var = sq - (s * s) // BIAS_SAMPLES  # sensorsCalculateVarianceAndMean
                if np.all(var < GYRO_VARIANCE_BASE):
                    self._bias = s / BIAS_SAMPLES
                    self._bias_found = True
                    lg.bias_found_at_sample = lg.imu_samples
        elif self._acc_n < ACC_SCALE_SAMPLES:
            self._acc_sum += math.sqrt(sum((v * G_PER_LSB) ** 2 for v in (ax, ay, az)))
            self._acc_n += 1
            if self._acc_n == ACC_SCALE_SAMPLES:
                lg.acc_scale = self._acc_sum / ACC_SCALE_SAMPLES
        bias = self._bias if self._bias_found else (0.0, 0.0, 0.0)
        lg.gyro_dps = tuple((v - b) * DEG_PER_LSB for v, b in zip((gx, gy, gz), bias))
        lg.acc_g = (ax * G_PER_LSB, ay * G_PER_LSB, az * G_PER_LSB)
        if self.record_acc:
            lg.acc_g_raw_history.append(lg.acc_g)

    # -- stabilizer.c + power_distribution_sitl.c --------------------------------------------
    def _stabilizer_step(self) -> None:
        if self.climb_to_m is not None and self._bias_found and self.log.pose is not None:
            self.pwm = [self._climb_pwm()] * 4
        tick = int((time.monotonic() - self._t0) * 1000)  # xTaskGetTickCount(), 1 ms ticks
        if tick - self._last_motor_tick >= 1:
            self.send(struct.pack("<B4H", PORT_SIM << 4, *self.pwm))
            self._last_motor_tick = tick
            self.log.motor_packets += 1

    def _climb_pwm(self) -> int:
        z = self.log.pose[2]
        prev = self._prev_pose
        now = time.monotonic()
        vz = 0.0 if prev is None or now - prev[0] <= 0 else (z - prev[1]) / max(now - prev[0], 1e-3)
        if prev is None or now - prev[0] > 0.01:
            self._prev_pose = (now, z)
        hover_n = CF_MASS_KG * 9.81 / 4.0
        a, b = PWM_TO_THRUST_A, PWM_TO_THRUST_B
        hover_u = (-b + math.sqrt(b * b + 4 * a * hover_n)) / (2 * a)
        vz_ref = max(-0.3, min(0.3, 1.5 * (self.climb_to_m - z)))
        u = hover_u * (1.0 + 0.6 * (vz_ref - vz))
        return int(max(0.0, min(1.0, u)) * 65535)


def main(argv: list[str] | None = None) -> int:
    """``python -m sim.sitl.crazysim.peer PORT [ADDR]`` (cf2's own argv, main_sitl.c): shake
    hands with the physics side at ADDR:PORT, then serve until SIGTERM."""
    from sim.sitl.processes import stop_on_signals

    p = argparse.ArgumentParser(prog="python -m sim.sitl.crazysim.peer")
    p.add_argument("port", type=int, help="the physics side's firmware port")
    p.add_argument("addr", nargs="?", default="127.0.0.1", help="its address (default 127.0.0.1)")
    p.add_argument("--services", default="echo", choices=("echo", "twin", "none"))
    p.add_argument("--climb-to", type=float, default=None, metavar="M", help="scripted climb to this height")
    args = p.parse_args(argv)
    peer = FirmwarePeer(args.addr, args.port, services=args.services, climb_to_m=args.climb_to)
    peer.stop_event = stop_on_signals()
    if not peer.handshake(timeout_s=30.0):
        print("peer: no handshake answer", flush=True)
        return 1
    print(f"peer: connected from port {peer.port}", flush=True)
    peer.run()
    peer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
