"""quadhil's physics as the simulator of a real PX4 SITL: the simulator side of PX4's
simulator_mavlink (src/modules/simulation/simulator_mavlink/SimulatorMavlink.cpp).

PX4 started with a ``none_*`` airframe runs ``simulator_mavlink start -c 4560+instance``
(ROMFS/px4fmu_common/init.d-posix/px4-rc.simulator) and connects as a TCP *client*; this
server listens there. From the moment PX4 connects it receives HIL_SENSOR at 250 Hz
(IMU_INTEG_RATE 250 in px4-rc.simulator): accel (m/s^2, FRD specific force), gyro (rad/s FRD),
mag (gauss FRD), absolute pressure (hPa), pressure altitude, temperature, with fields_updated
bits. PX4's clock only advances with those time_usec stamps (lockstep), so they are sent before
PX4 has said anything. HIL_GPS goes at 10 Hz and HIL_STATE_QUATERNION (ground truth) at 50 Hz.
PX4 answers each sensor step with HIL_ACTUATOR_CONTROLS: controls[0..3] are the motor outputs
0..1 in PX4 motor order (the vehicle file's), mode carries MAV_MODE_FLAG_SAFETY_ARMED, flags bit
0 is HIL_ACTUATOR_CONTROLS_FLAGS_LOCKSTEP. Once PX4 runs lockstep, the server steps the physics
only when the controls for the previous step have arrived (up to ``lockstep_timeout_s``), the
way Gazebo's mavlink_interface does; the motor outputs go through the vehicle's thrust curve
(T = 8.55 u^2 N for the gz x500), the same model Gazebo uses.

Sensors as hardware reports them: SimulatorMavlink.cpp feeds accel 0 and gyro 0 as int16 FIFO
samples (ACCEL_FIFO_SCALE = g / 2048 per LSB, range 16 g; GYRO_FIFO_SCALE = 2000/32768 deg/s
per LSB, range 2000 deg/s) and casts without saturating, so a sample beyond the range wraps
around; a real IMU saturates there instead, so px4-hil clips to the int16 range (+-16 g,
+-2000 deg/s) before sending. The first HIL_SENSOR carries time_usec 4000, not 0 (PX4 logs a
gyro timestamp error for a zero stamp).

Ground: not the simulator's rigid plane (which stops a 0.7 m/s touch-down within one 1 ms step,
-19 g) but landing gear with compliance: a vertical spring-damper at the body origin, with
horizontal grip while loaded (``GroundContact``). The crash limit (touch-down faster than the
vehicle file's crash_speed_mps, or tilted beyond 60 deg) still marks the vehicle crashed.

Never set SYS_AUTOSTART=0 for this: px4-rc.simulator then starts PX4's own SIH simulator
instead of simulator_mavlink, and nothing ever connects to port 4560.
"""

from __future__ import annotations

import math
import select
import socket
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from pymavlink.dialects.v20 import common as mavlink

from sim.dynamics import QuadSim
from sim.errors import QuadhilError
from sim.frames import enu_to_ned, flu_to_frd, quat_enu_flu_to_ned_frd, quat_to_rotmat
from sim.vehicle import GRAVITY_MPS2, load_vehicle

SENSOR_PERIOD_S = 0.004  # 250 Hz
GPS_PERIOD_S = 0.1
STATE_PERIOD_S = 0.02
HOME_LAT_DEG, HOME_LON_DEG, HOME_AMSL_M = 47.397742, 8.545594, 488.0
EARTH_RADIUS_M = 6371000.0
MAG_NED_GAUSS = np.array([0.21523, 0.00771, 0.42741])
# SimulatorMavlink.cpp SensorSource bits of HIL_SENSOR.fields_updated
FIELDS_ACCEL, FIELDS_GYRO, FIELDS_MAG = 0b111, 0b111000, 0b111000000
FIELDS_BARO = 0b1101000000000  # abs_pressure, pressure_alt, temperature
MODE_FLAG_SAFETY_ARMED = 128
FLAG_LOCKSTEP = 1
SIM_SYSID, SIM_COMPID = 1, 51
# SimulatorMavlink.cpp update_sensors: accel 0 / gyro 0 FIFO scale, int16 samples
ACCEL_FIFO_SCALE_MPS2 = GRAVITY_MPS2 / 2048.0
GYRO_FIFO_SCALE_RAD_S = math.radians(2000.0 / 32768.0)
INT16_MIN, INT16_MAX = -32768, 32767
COS_60_DEG = 0.5


def saturate_int16(values: np.ndarray, scale: float) -> np.ndarray:
    """What a sensor with an int16 output of ``scale`` per LSB can report: clipped to its range."""
    return np.clip(np.asarray(values, dtype=np.float64), INT16_MIN * scale, INT16_MAX * scale)


@dataclass
class GroundContact:
    """Landing gear as a spring-damper under the body origin, N/m and N*s/m.

    The X500's gear stiffness and damping are not published (PX4-gazebo-models' x500_base uses
    ODE's rigid contact, PX4's SIH stops the vehicle in one step): these are the twin's choice,
    set by two targets instead of a datasheet: an 8 Hz bounce of the 2 kg vehicle on its skids
    (k = m (2 pi 8)^2, 3.9 mm static deflection) with a damping ratio of 0.7, so a 0.7 m/s
    touch-down (MPC_LAND_SPEED) decelerates over ~60 ms at a few g instead of -19 g in 1 ms.
    """

    natural_hz: float = 8.0
    damping_ratio: float = 0.7
    grip_n_per_mps: float = 200.0  # horizontal damping while loaded (no sliding), capped by friction
    friction: float = 0.8

    def force_w(self, mass_kg: float, pos_w: np.ndarray, vel_w: np.ndarray) -> np.ndarray:
        """Ground reaction (world ENU, N) on a vehicle whose body origin is at ``pos_w``."""
        pen = -float(pos_w[2])
        if pen <= 0.0:
            return np.zeros(3)
        omega = 2.0 * math.pi * self.natural_hz
        k, c = mass_kg * omega * omega, 2.0 * self.damping_ratio * mass_kg * omega
        fz = max(k * pen - c * float(vel_w[2]), 0.0)
        fxy = -self.grip_n_per_mps * np.asarray(vel_w[:2], dtype=np.float64)
        cap = self.friction * fz
        norm = float(np.linalg.norm(fxy))
        if norm > cap:
            fxy *= cap / max(norm, 1e-12)
        return np.array([fxy[0], fxy[1], fz])


class HilError(QuadhilError):
    """The HIL server cannot listen (port in use)."""


@dataclass
class HilConfig:
    """Server options. port 0 -> 4560 + instance."""

    vehicle: str = "x500"
    instance: int = 0
    port: int = 0
    bind_host: str = "127.0.0.1"
    seed: int = 0
    noise: bool = True
    speed: float = 1.0  # real-time factor of the pacing (lockstep still waits for PX4)
    lockstep_timeout_s: float = 0.5
    start_enu_m: tuple[float, float, float] = (0.0, 0.0, 0.0)


class HilServer:
    """Serve one PX4 SITL at a time over TCP with simulator_mavlink's protocol."""

    def __init__(self, config: HilConfig):
        self.config = config
        self.port = config.port or 4560 + config.instance
        self.vehicle = load_vehicle(config.vehicle)
        self.rng = np.random.default_rng(config.seed)
        self.sim = QuadSim.create(self.vehicle, 1, ground=False)  # the gear below is the ground
        self.sim.state.pos_w[0] = np.asarray(config.start_enu_m, dtype=np.float64)
        self.gear = GroundContact()
        self.in_contact = True
        self.crashed = False
        self.touchdown_speeds_mps: list[float] = []
        self.last_accel_frd_raw = np.zeros(3)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.listener.bind((config.bind_host, self.port))
        except OSError as exc:
            self.listener.close()
            raise HilError(f"px4-hil cannot listen on {config.bind_host}:{self.port}: {exc.strerror}") from None
        self.listener.listen(1)
        self.conn: socket.socket | None = None
        self.mav = mavlink.MAVLink(self, srcSystem=SIM_SYSID, srcComponent=SIM_COMPID)
        self.parser = mavlink.MAVLink(None)
        self.parser.robust_parsing = True
        self.counters: Counter = Counter()
        self.time_us = int(SENSOR_PERIOD_S * 1e6)  # the first HIL_SENSOR is stamped 4000 us, never 0
        self.controls = np.zeros(4)
        self.armed = False
        self.lockstep = False
        self._controls_fresh = False
        self._prev_vel_w = np.zeros(3)
        self._accel_w = np.zeros(3)
        self._next_gps_us = 0
        self._next_state_us = 0

    # pymavlink output "file"
    def write(self, data: bytes) -> None:
        """Send bytes to PX4 (drops the connection on error)."""
        if self.conn is None:
            return
        try:
            self.conn.sendall(data)
        except OSError:
            self.counters["tx_errors"] += 1
            self._disconnect()

    def _disconnect(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.lockstep = False
        self.counters["disconnects"] += 1

    def close(self) -> None:
        """Close every socket."""
        self._disconnect()
        self.listener.close()

    # ---- physics and sensors ---------------------------------------------------------------

    def step(self) -> None:
        """Advance 4 ms with the current motor outputs."""
        u = self.controls if self.armed else np.zeros(4)
        thrust_n = self.vehicle.command_to_thrust(np.clip(u, 0.0, 1.0))
        s = self.sim.state
        for _ in range(int(round(SENSOR_PERIOD_S * self.sim.physics_rate_hz))):
            touching = s.pos_w[0, 2] <= 0.0
            if touching and not self.in_contact:  # touch-down: the crash limit of the rigid ground stays
                speed = -float(s.vel_w[0, 2])
                self.touchdown_speeds_mps.append(speed)
                up_z = 1.0 - 2.0 * float(s.quat_wb[0, 1] ** 2 + s.quat_wb[0, 2] ** 2)
                if speed > self.vehicle.crash_speed_mps or up_z < COS_60_DEG:
                    self.crashed = True
                    self.counters["crashes"] += 1
            self.in_contact = touching
            self.sim.disturbance.force_w[0] = self.gear.force_w(self.vehicle.mass_kg, s.pos_w[0], s.vel_w[0])
            self.sim.step(thrust_n[None, :], 1)
        vel = self.sim.state.vel_w[0]
        self._accel_w = (vel - self._prev_vel_w) / SENSOR_PERIOD_S
        self._prev_vel_w = vel.copy()
        self.time_us += int(SENSOR_PERIOD_S * 1e6)

    def _geo(self):
        s = self.sim.state
        pos = s.pos_w[0]
        lat = HOME_LAT_DEG + math.degrees(pos[1] / EARTH_RADIUS_M)
        lon = HOME_LON_DEG + math.degrees(pos[0] / (EARTH_RADIUS_M * math.cos(math.radians(HOME_LAT_DEG))))
        return lat, lon, HOME_AMSL_M + pos[2]

    def sensor_message(self):
        """HIL_SENSOR for the current state (FRD, SI / gauss / hPa)."""
        s = self.sim.state
        q = s.quat_wb[0]
        rot_wb = quat_to_rotmat(q)
        accel = flu_to_frd(rot_wb.T @ (self._accel_w + np.array([0.0, 0.0, GRAVITY_MPS2])))
        self.last_accel_frd_raw = accel.copy()
        gyro = flu_to_frd(s.omega_b[0])
        mag = quat_to_rotmat(quat_enu_flu_to_ned_frd(q)).T @ MAG_NED_GAUSS
        _, _, alt = self._geo()
        pressure_hpa = 1013.25 * (1.0 - 2.25577e-5 * alt) ** 5.25588
        if self.config.noise:
            accel = accel + self.rng.normal(0.0, 0.02, 3)
            gyro = gyro + self.rng.normal(0.0, 0.002, 3)
            mag = mag + self.rng.normal(0.0, 0.002, 3)
            pressure_hpa += self.rng.normal(0.0, 0.01)
        accel = saturate_int16(accel, ACCEL_FIFO_SCALE_MPS2)
        gyro = saturate_int16(gyro, GYRO_FIFO_SCALE_RAD_S)
        return self.mav.hil_sensor_encode(self.time_us, *accel, *gyro, *mag, pressure_hpa, 0.0, alt, 25.0,
                                          FIELDS_ACCEL | FIELDS_GYRO | FIELDS_MAG | FIELDS_BARO)

    def gps_message(self):
        """HIL_GPS: 3D fix at the current position."""
        lat, lon, alt = self._geo()
        vel_ned = enu_to_ned(self.sim.state.vel_w[0])
        gs = float(np.linalg.norm(vel_ned[:2]))
        cog = int(round(math.degrees(math.atan2(vel_ned[1], vel_ned[0])) % 360 * 100)) if gs > 0.1 else 65535
        return self.mav.hil_gps_encode(self.time_us, 3, int(round(lat * 1e7)), int(round(lon * 1e7)),
                                       int(round(alt * 1000)), 50, 80, int(round(gs * 100)),
                                       *(int(round(v * 100)) for v in vel_ned), cog, 12)

    def state_message(self):
        """HIL_STATE_QUATERNION: ground truth (PX4 publishes it as vehicle_*_groundtruth)."""
        s = self.sim.state
        lat, lon, alt = self._geo()
        vel_ned = enu_to_ned(s.vel_w[0])
        acc_frd = flu_to_frd(quat_to_rotmat(s.quat_wb[0]).T @ (self._accel_w + np.array([0.0, 0.0, GRAVITY_MPS2])))
        speed = int(round(float(np.linalg.norm(vel_ned)) * 100))
        return self.mav.hil_state_quaternion_encode(
            self.time_us, list(quat_enu_flu_to_ned_frd(s.quat_wb[0])), *flu_to_frd(s.omega_b[0]),
            int(round(lat * 1e7)), int(round(lon * 1e7)), int(round(alt * 1000)),
            *(int(round(v * 100)) for v in vel_ned), speed, speed,
            *(int(np.clip(round(a / GRAVITY_MPS2 * 1000), -32768, 32767)) for a in acc_frd))

    def send_step_messages(self) -> None:
        """HIL_SENSOR every step, HIL_GPS and HIL_STATE_QUATERNION when due."""
        self.mav.send(self.sensor_message())
        self.counters["tx_hil_sensor"] += 1
        if self.time_us >= self._next_gps_us:
            self.mav.send(self.gps_message())
            self._next_gps_us = self.time_us + int(GPS_PERIOD_S * 1e6)
        if self.time_us >= self._next_state_us:
            self.mav.send(self.state_message())
            self._next_state_us = self.time_us + int(STATE_PERIOD_S * 1e6)

    # ---- receiving -------------------------------------------------------------------------

    def _receive(self, timeout_s: float) -> None:
        """Read what PX4 sent (waiting up to timeout_s); apply HIL_ACTUATOR_CONTROLS."""
        if self.conn is None:
            return
        ready, _, _ = select.select([self.conn], [], [], max(timeout_s, 0.0))
        if not ready:
            return
        try:
            data = self.conn.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._disconnect()
            return
        try:
            msgs = self.parser.parse_buffer(data) or []
        except Exception:
            self.counters["rx_bad_frames"] += 1
            return
        for m in msgs:
            kind = m.get_type()
            if kind == "BAD_DATA" or kind.startswith("UNKNOWN_"):
                self.counters["rx_bad_frames"] += 1
            elif kind == "HIL_ACTUATOR_CONTROLS":
                self._apply_controls(m)
            else:
                self.counters["rx_other"] += 1

    def _apply_controls(self, m) -> None:
        controls = np.asarray(m.controls[:4], dtype=np.float64)
        if not np.all(np.isfinite(controls)):
            self.counters["rx_nan_controls"] += 1
            return
        self.controls = np.clip(controls, 0.0, 1.0)
        self.armed = bool(m.mode & MODE_FLAG_SAFETY_ARMED)
        self.lockstep = bool(m.flags & FLAG_LOCKSTEP)
        self._controls_fresh = True
        self.counters["rx_actuator_controls"] += 1

    # ---- loop -------------------------------------------------------------------------------

    def _accept(self, timeout_s: float) -> bool:
        ready, _, _ = select.select([self.listener], [], [], timeout_s)
        if not ready:
            return False
        conn, _ = self.listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = conn
        self.parser = mavlink.MAVLink(None)
        self.parser.robust_parsing = True
        self.counters["connections"] += 1
        return True

    def run(self, duration_s: float | None = None, should_stop=lambda: False) -> None:
        """Serve until stopped: accept PX4, then step/send/receive at 250 Hz (lockstep when PX4
        asks for it)."""
        t_start = time.monotonic()
        period = SENSOR_PERIOD_S / max(self.config.speed, 1e-3)
        while not should_stop():
            if duration_s is not None and time.monotonic() - t_start >= duration_s:
                return
            if self.conn is None:
                self._accept(0.1)
                t_next = time.monotonic()
                continue
            self.send_step_messages()
            self._controls_fresh = False
            t_next += period
            if self.lockstep:
                deadline = time.monotonic() + self.config.lockstep_timeout_s
                while not self._controls_fresh and self.conn is not None and time.monotonic() < deadline:
                    self._receive(deadline - time.monotonic())
                if not self._controls_fresh and self.conn is not None:
                    self.counters["lockstep_timeouts"] += 1
                    self.lockstep = False  # PX4 went quiet: free-run until it answers again
            wait = t_next - time.monotonic()
            if wait > 0:
                self._receive(wait)
                wait = t_next - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            else:
                self._receive(0.0)
                if wait < -0.1:
                    t_next = time.monotonic()  # fell behind: do not burst
                    self.counters["overruns"] += 1
            self.step()

    def status(self) -> dict:
        """Counters and state for --json."""
        return {"sim_time_s": self.time_us / 1e6, "armed": self.armed, "lockstep": self.lockstep,
                "crashed": self.crashed, "touchdown_speeds_mps": [round(v, 3) for v in self.touchdown_speeds_mps],
                "position_enu_m": [round(float(x), 3) for x in self.sim.state.pos_w[0]],
                "counters": dict(self.counters)}
