"""The physics side of CrazySim for N drones: quadhil's simulator, the sensor stream, the cflib relay.

One process, one ``QuadSim`` batch of N vehicles stepped against the wall clock at 1 kHz, and per
drone two UDP sockets on 127.0.0.1: the firmware's (19950 + N, where ``cf2`` sends its 0xF3
handshake) and cflib's (19850 + N). Every tick sends each connected firmware ONE IMU packet, the
pose when it is due (100 Hz by default) and at most one packet relayed from cflib, so nothing this
side sends arrives in a burst: the firmware's socket task hands every datagram to a 5-slot queue
with a zero timeout (socketlink.c: ``xQueueCreate(5, ...)``, ``xQueueSend(..., 0)``) and drops
what does not fit. A tick that starts late is served once (physics catches up by several 1 ms
steps; the firmware gets one IMU packet, not a burst) and is counted.

Motor packets set the held 16-bit value of each motor; it becomes thrust through the vehicle
file's command mapping (``Vehicle.command_to_thrust``: for the Crazyflie linear up to THRUST_MAX,
as the default battery-compensated build makes it), value 0 is a stopped motor. The SITL build
skips battery compensation (CrazySim stabilizer.c: ``#ifndef CONFIG_PLATFORM_SITL
batteryCompensation``) and CrazySim's own physics reads the value as thrust linear in value/65535
(CrtpUtils.h PWM2OMEGA: ``thrust = pwm / 65535 * 0.18``; crazysim.py ``_pwm_to_rpm``), so the
firmware on this physics behaves like the default hardware build, and like the twin and the
bridge's thrust encoding. The firmware's ready signal
(gyro bias found) releases a drone after ``ACC_SCALE_SAMPLES`` more IMU samples: until then it is
held still on the ground (zero thrust), because the firmware calibrates on those samples. A new
handshake on a drone's port (``cf2`` restarted) resets that drone to its start pose.

See ``protocol`` for the packet facts and their sources.
"""

from __future__ import annotations

import collections
import gc
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from sim.dynamics import QuadSim, QuadState
from sim.errors import QuadhilError
from sim.randomization import RealismConfig, sample_params
from sim.sitl.crazysim import protocol
from sim.vehicle import load_vehicle

TICK_S = 0.001  # the firmware's stabilizer runs once per IMU packet, 1 kHz on hardware
LATE_THRESHOLD_S = 0.001
MAX_CATCHUP_STEPS = 50  # beyond this the simulated time slips behind the wall clock (counted)
RELAY_PER_TICK = 1  # cflib packets forwarded to the firmware per tick (no bursts)
RELAY_QUEUE_MAX = 512
HOLD_TIMEOUT_SAMPLES = 10_000  # release a drone whose firmware never reports calibration
MAX_DATAGRAMS_PER_WAKE = 64
HOUSEKEEPING_S = 0.1


class BindError(QuadhilError):
    """A drone's UDP port is taken."""


@dataclass
class ServerConfig:
    """Options of the physics server; ports of drone i are base + i."""

    instances: int = 1
    host: str = "127.0.0.1"
    firmware_base_port: int = protocol.FIRMWARE_BASE_PORT
    cflib_base_port: int = protocol.CFLIB_BASE_PORT
    vehicle: str = "crazyflie"
    randomize: bool = False
    seed: int = 0
    pose_rate_hz: float = 100.0
    spacing_m: float = 0.5  # drone i starts at (i * spacing, 0, 0)


@dataclass
class DroneStats:
    """Traffic and calibration figures of one drone."""

    handshakes: int = 0
    imu_sent: int = 0
    pose_sent: int = 0
    motor_packets: int = 0
    ready_after_s: float | None = None  # handshake -> ready signal, wall time
    relayed_to_firmware: int = 0
    relayed_to_cflib: int = 0
    relay_queue_max: int = 0
    relay_overflow: int = 0
    firmware_packets_without_client: int = 0
    scan_answers: int = 0
    stray_datagrams: int = 0
    send_errors: int = 0
    hold_timeouts: int = 0


class Drone:
    """Sockets, relay queue and motor state of one simulated Crazyflie."""

    def __init__(self, index: int, host: str, firmware_port: int, cflib_port: int):
        self.index = index
        self.fw_sock = _bind(host, firmware_port, f"drone {index} firmware")
        try:
            self.cflib_sock = _bind(host, cflib_port, f"drone {index} cflib")
        except BindError:
            self.fw_sock.close()
            raise
        self.firmware_port = self.fw_sock.getsockname()[1]
        self.cflib_port = self.cflib_sock.getsockname()[1]
        self.host = host
        self.fw_addr: tuple | None = None
        self.cflib_addr: tuple | None = None
        self.to_firmware: collections.deque[bytes] = collections.deque()
        self.pwm = np.zeros(4)
        self.ready = False
        self.released = False
        self.samples = 0  # IMU samples since the last handshake
        self.samples_at_ready = 0
        self.t_handshake = 0.0
        self.t_first_imu: float | None = None
        self.t_last_imu: float | None = None
        self.stats = DroneStats()

    @property
    def uri(self) -> str:
        """The cflib URI of this drone (through the relay)."""
        return f"udp://{self.host}:{self.cflib_port}"

    def close(self) -> None:
        """Release both sockets."""
        self.fw_sock.close()
        self.cflib_sock.close()

    def send_firmware(self, data: bytes) -> None:
        """One datagram to the firmware (dropped while none has shaken hands)."""
        if self.fw_addr is None:
            return
        try:
            self.fw_sock.sendto(data, self.fw_addr)
        except OSError:  # e.g. ICMP port unreachable after cf2 died: keep serving
            self.stats.send_errors += 1


def _world_to_body(q_wxyz, v) -> tuple[float, float, float]:
    """R(q)^T v for a body-to-world quaternion (w, x, y, z): a world vector in body axes."""
    w, x, y, z = q_wxyz
    v0, v1, v2 = v
    return ((1 - 2 * (y * y + z * z)) * v0 + 2 * (x * y + w * z) * v1 + 2 * (x * z - w * y) * v2,
            2 * (x * y - w * z) * v0 + (1 - 2 * (x * x + z * z)) * v1 + 2 * (y * z + w * x) * v2,
            2 * (x * z + w * y) * v0 + 2 * (y * z - w * x) * v1 + (1 - 2 * (x * x + y * y)) * v2)


def _bind(host: str, port: int, what: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((host, port))
    except OSError as exc:
        s.close()
        raise BindError(f"{what}: cannot bind UDP {host}:{port}: {exc.strerror}") from None
    s.setblocking(False)
    return s


@dataclass
class ServerStats:
    """Real-time figures of the 1 kHz loop (all drones share it)."""

    ticks: int = 0  # loop iterations that sent each connected firmware one IMU packet
    physics_steps: int = 0  # 1 ms physics steps simulated
    late_ticks: int = 0  # ticks that started more than 1 ms after they were due
    max_lateness_s: float = 0.0
    slipped_steps: int = 0  # 1 ms steps never simulated (the loop was > 50 ms late)
    wall_s: float = 0.0
    lateness_hist_ms: dict = field(default_factory=lambda: collections.Counter())

    @property
    def late_tick_fraction(self) -> float:
        """Fraction of ticks that started more than 1 ms late."""
        return self.late_ticks / self.ticks if self.ticks else 0.0


class CrazySimServer:
    """N drones' physics, sensor streams and cflib relays, served from one loop."""

    def __init__(self, config: ServerConfig = ServerConfig()):
        if config.instances < 1:
            raise QuadhilError(f"--instances must be >= 1, got {config.instances}")
        if not 1.0 <= config.pose_rate_hz <= 1000.0:
            raise QuadhilError(f"--pose-rate must be 1..1000 Hz, got {config.pose_rate_hz}")
        self.config = config
        self.vehicle = load_vehicle(config.vehicle)
        n = config.instances
        rng = np.random.default_rng(config.seed)
        realism = RealismConfig(randomize=config.randomize, sensor_noise=False)
        self.sim = QuadSim(self.vehicle, sample_params(self.vehicle, n, rng, realism), QuadState.zeros(n),
                           physics_rate_hz=1.0 / TICK_S)
        # load the compiled kernel now, not on the first real-time tick
        QuadSim.create(self.vehicle, 1, physics_rate_hz=1.0 / TICK_S).step(np.zeros((1, 4)), 1)
        self.start_w = np.zeros((n, 3))
        self.start_w[:, 0] = config.spacing_m * np.arange(n)
        self.sim.state.pos_w[:] = self.start_w
        self.drones: list[Drone] = []
        try:
            for i in range(n):
                fw = config.firmware_base_port + i if config.firmware_base_port else 0
                cl = config.cflib_base_port + i if config.cflib_base_port else 0
                self.drones.append(Drone(i, config.host, fw, cl))
        except BindError:
            self.close()
            raise
        self._prev_vel = self.sim.state.vel_w.copy()
        self._pose_every = max(1, int(round(1.0 / (config.pose_rate_hz * TICK_S))))
        self.stats = ServerStats()
        self.stop_event = threading.Event()
        self.housekeeping: Callable[[float], None] | None = None
        self._socks = {d.fw_sock: (d, "fw") for d in self.drones}
        self._socks.update({d.cflib_sock: (d, "cflib") for d in self.drones})

    def close(self) -> None:
        """Release every socket."""
        for d in self.drones:
            d.close()

    # -- physics and sensors -----------------------------------------------------------------
    def thrust_command_n(self) -> np.ndarray:
        """(N, 4) per-motor thrust commands (N) from the held PWM; zero while a drone is held."""
        pwm = np.stack([d.pwm if d.released else np.zeros(4) for d in self.drones])
        return self.vehicle.command_to_thrust(pwm / 65535.0) * (pwm > 0)

    def specific_force_b(self, accel_w: np.ndarray) -> list[tuple[float, float, float]]:
        """Accelerometer reading of each drone, body FLU, m/s^2: R^T (a + g z), +g on z at rest.
        Plain floats: this runs every 1 ms tick."""
        out = []
        g = self.sim.gravity_mps2
        for q, a in zip(self.sim.state.quat_wb.tolist(), accel_w.tolist()):
            out.append(_world_to_body(q, (a[0], a[1], a[2] + g)))
        return out

    def step_physics(self, n_steps: int) -> np.ndarray:
        """Advance every drone ``n_steps`` ms with the held motor commands; returns the world
        acceleration (N, 3) over that interval (m/s^2)."""
        self.sim.step(self.thrust_command_n(), n_steps)
        vel = self.sim.state.vel_w
        accel = (vel - self._prev_vel) / (n_steps * TICK_S)
        self._prev_vel = vel.copy()
        return accel

    def reset_drone(self, i: int) -> None:
        """Put drone ``i`` back at its start, level, at rest, motors off (a new firmware)."""
        fresh = QuadState.zeros(1)
        fresh.pos_w[0] = self.start_w[i]
        self.sim.state.put(slice(i, i + 1), fresh)
        self._prev_vel[i] = 0.0

    def send_tick(self, accel_w: np.ndarray) -> None:
        """One IMU packet per connected firmware, the pose when due, one relayed cflib packet."""
        s = self.sim.state
        force = self.specific_force_b(accel_w)
        for d in self.drones:
            if d.fw_addr is None:
                continue
            i = d.index
            d.send_firmware(protocol.imu_packet(force[i], s.omega_b[i].tolist()))
            d.t_last_imu = time.monotonic()
            if d.t_first_imu is None:
                d.t_first_imu = d.t_last_imu
            d.stats.imu_sent += 1
            d.samples += 1
            if d.samples % self._pose_every == 0:
                d.send_firmware(protocol.pose_packet(s.pos_w[i], s.quat_wb[i]))
                d.stats.pose_sent += 1
            for _ in range(min(RELAY_PER_TICK, len(d.to_firmware))):
                d.send_firmware(d.to_firmware.popleft())
                d.stats.relayed_to_firmware += 1
            if not d.released:
                self._maybe_release(d)

    def _maybe_release(self, d: Drone) -> None:
        if d.ready and d.samples - d.samples_at_ready >= protocol.ACC_SCALE_SAMPLES:
            d.released = True
        elif d.samples >= HOLD_TIMEOUT_SAMPLES:
            d.released = True
            d.stats.hold_timeouts += 1
            print(f"crazyflie-fw: drone {d.index}: no ready signal after {HOLD_TIMEOUT_SAMPLES} IMU samples; "
                  "releasing it uncalibrated", file=sys.stderr, flush=True)

    # -- receiving ---------------------------------------------------------------------------
    def receive(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for datagrams and handle what arrived."""
        readable, _, _ = select.select(list(self._socks), [], [], max(timeout_s, 0.0))
        for sock in readable:
            drone, side = self._socks[sock]
            for _ in range(MAX_DATAGRAMS_PER_WAKE):
                try:
                    data, addr = sock.recvfrom(2048)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # ICMP errors surface here on Linux: keep serving
                    drone.stats.send_errors += 1
                    continue
                if side == "fw":
                    self._from_firmware(drone, data, addr)
                else:
                    self._from_cflib(drone, data, addr)

    def _from_firmware(self, d: Drone, data: bytes, addr: tuple) -> None:
        pk = protocol.classify_from_firmware(data)
        if pk.kind == "handshake":
            if d.fw_addr is not None:
                self.reset_drone(d.index)  # a restarted cf2: a fresh vehicle on the ground
            d.fw_addr = addr
            d.pwm = np.zeros(4)
            d.ready = d.released = False
            d.samples = d.samples_at_ready = 0
            d.to_firmware.clear()
            d.t_handshake = time.monotonic()
            d.stats.handshakes += 1
            d.send_firmware(protocol.HANDSHAKE)
            return
        if addr != d.fw_addr:
            d.stats.stray_datagrams += 1
            return
        if pk.kind == "motors":
            d.pwm = np.asarray(pk.pwm, dtype=np.float64)
            d.stats.motor_packets += 1
        elif pk.kind == "ready":
            if not d.ready:
                d.ready = True
                d.samples_at_ready = d.samples
                d.stats.ready_after_s = time.monotonic() - d.t_handshake
        elif d.cflib_addr is None:
            d.stats.firmware_packets_without_client += 1
        else:
            try:
                d.cflib_sock.sendto(data, d.cflib_addr)
                d.stats.relayed_to_cflib += 1
            except OSError:
                d.stats.send_errors += 1

    def _from_cflib(self, d: Drone, data: bytes, addr: tuple) -> None:
        d.cflib_addr = addr
        if data == protocol.SCAN_PROBE:
            # cflib's udp scan sends one 0xFF and takes any answer as "a Crazyflie is here";
            # the firmware has nothing to say to it, so the relay answers (crazysim_plugin.cpp).
            try:
                d.cflib_sock.sendto(protocol.SCAN_PROBE, addr)
                d.stats.scan_answers += 1
            except OSError:
                d.stats.send_errors += 1
            return
        if not 1 <= len(data) <= 31:
            d.stats.stray_datagrams += 1
            return
        if len(d.to_firmware) >= RELAY_QUEUE_MAX:
            d.stats.relay_overflow += 1
            return
        d.to_firmware.append(data)
        d.stats.relay_queue_max = max(d.stats.relay_queue_max, len(d.to_firmware))

    # -- loop --------------------------------------------------------------------------------
    def serve(self, duration_s: float | None = None) -> ServerStats:
        """Run the 1 kHz loop until ``stop_event`` is set or ``duration_s`` of wall time passed."""
        clock = time.monotonic
        st = self.stats
        # The start-up heap lives for the whole run: keep it away from the cyclic collector so a
        # full collection cannot stall a tick (as the Crazyflie twin's server does).
        gc.collect()
        gc.freeze()
        start = clock()
        next_tick = start
        next_housekeeping = start
        while not self.stop_event.is_set():
            now = clock()
            if duration_s is not None and now - start >= duration_s:
                break
            if now >= next_tick:
                due = int((now - next_tick) / TICK_S) + 1
                lateness = now - next_tick
                steps = min(due, MAX_CATCHUP_STEPS)
                st.slipped_steps += due - steps
                st.ticks += 1
                st.physics_steps += steps
                if lateness > LATE_THRESHOLD_S:
                    st.late_ticks += 1
                st.max_lateness_s = max(st.max_lateness_s, lateness)
                st.lateness_hist_ms[min(int(lateness * 1000), 10)] += 1
                self.send_tick(self.step_physics(steps))
                next_tick += due * TICK_S
            if self.housekeeping is not None and now >= next_housekeeping:
                self.housekeeping(now - start)
                next_housekeeping = now + HOUSEKEEPING_S
            self.receive(next_tick - clock())
        st.wall_s = clock() - start
        return st

    def status(self) -> dict:
        """Figures for --json / --stats-json."""
        st = self.stats
        drones = []
        for d in self.drones:
            ds = d.stats.__dict__.copy()
            span = (d.t_last_imu - d.t_first_imu) if d.t_first_imu is not None else 0.0
            ds.update(index=d.index, firmware_port=d.firmware_port, cflib_uri=d.uri,
                      imu_rate_hz=(d.stats.imu_sent - 1) / span if span > 0 else 0.0,
                      ready=d.ready, released=d.released,
                      pwm=[int(p) for p in d.pwm],
                      position_enu_m=[round(float(v), 4) for v in self.sim.state.pos_w[d.index]])
            drones.append(ds)
        return {"ticks": st.ticks, "physics_steps": st.physics_steps, "late_ticks": st.late_ticks,
                "late_tick_fraction": st.late_tick_fraction, "max_lateness_ms": 1000.0 * st.max_lateness_s,
                "slipped_steps": st.slipped_steps, "wall_s": st.wall_s,
                "sim_time_s": st.physics_steps * TICK_S,
                "lateness_hist_ms": {str(k): v for k, v in sorted(st.lateness_hist_ms.items())},
                "drones": drones}
