"""Telemetry: a snapshot of the vehicle in PX4's frames, the MAVLink messages built from it,
and per-link stream rates.

Default rates are PX4's (src/modules/mavlink/mavlink_main.cpp, configure_streams_to_default):
``onboard`` is MAVLINK_MODE_ONBOARD (the offboard/API link, 14580 -> 14540); ``normal`` is
MAVLINK_MODE_NORMAL plus the ``mavlink stream -r 50 ...`` lines that
ROMFS/px4fmu_common/init.d-posix/px4-rc.mavlink adds on the GCS link (18570 -> 14550).
HEARTBEAT is 1 Hz on every link (streams/HEARTBEAT.hpp). Conversions from the simulator's
ENU/FLU happen in the twin with ``sim.frames``; this module only packs NED/FRD numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pymavlink.dialects.v20 import common as mavlink

MAV_TYPE_QUADROTOR = 2
MAV_AUTOPILOT_PX4 = 12
MAV_STATE_STANDBY, MAV_STATE_ACTIVE, MAV_STATE_CRITICAL = 3, 4, 5
MAV_FRAME_LOCAL_NED, MAV_FRAME_BODY_FRD = 1, 12
MAV_ESTIMATOR_TYPE_AUTOPILOT = 8

ONBOARD_RATES_HZ = {
    "HEARTBEAT": 1.0, "ALTITUDE": 10.0, "ATTITUDE": 100.0, "ATTITUDE_QUATERNION": 50.0,
    "BATTERY_STATUS": 0.5, "EXTENDED_SYS_STATE": 5.0, "GLOBAL_POSITION_INT": 50.0,
    "HIGHRES_IMU": 50.0, "HOME_POSITION": 0.5, "LOCAL_POSITION_NED": 30.0, "ODOMETRY": 30.0,
    "SYS_STATUS": 5.0, "VFR_HUD": 10.0,
}
NORMAL_RATES_HZ = {
    "HEARTBEAT": 1.0, "ALTITUDE": 1.0, "ATTITUDE": 50.0, "ATTITUDE_QUATERNION": 50.0,
    "BATTERY_STATUS": 0.5, "EXTENDED_SYS_STATE": 1.0, "GLOBAL_POSITION_INT": 50.0,
    "HOME_POSITION": 0.5, "LOCAL_POSITION_NED": 50.0, "SYS_STATUS": 1.0, "VFR_HUD": 4.0,
    "HIGHRES_IMU": 0.0, "ODOMETRY": 0.0,
}
DEFAULT_RATES = {"onboard": ONBOARD_RATES_HZ, "normal": NORMAL_RATES_HZ}
MAX_RATE_HZ = 250.0  # the twin's telemetry tick; faster requests are served at this rate

# MAV_SYS_STATUS_SENSOR bits the twin reports present, enabled and healthy
_SENSORS = (1 | 2 | 4 | 8 | 32 | 1024 | 2048 | 4096 | 32768 | 2097152 | 33554432)  # gyro..AHRS, battery


@dataclass
class Snapshot:
    """Everything telemetry needs, in PX4's frames (NED world, FRD body), SI unless named."""

    time_boot_ms: int
    time_usec: int
    pos_ned: np.ndarray
    vel_ned: np.ndarray
    q_ned: np.ndarray  # FRD-body-to-NED, w first
    euler_ned: np.ndarray  # roll, pitch, yaw (rad)
    rates_frd: np.ndarray
    accel_frd: np.ndarray  # specific force, m/s^2 (z ~ -9.81 at rest)
    gyro_frd: np.ndarray
    mag_frd_gauss: np.ndarray
    pressure_hpa: float
    temperature_c: float
    alt_amsl_m: float
    home_amsl_m: float
    lat_deg: float
    lon_deg: float
    home_lat_deg: float
    home_lon_deg: float
    battery_v: float
    battery_a: float
    battery_remaining: float  # 0..1
    battery_consumed_mah: float
    battery_cells: int
    armed: bool
    custom_mode: int
    base_mode: int
    system_status: int
    landed_state: int
    thrust_fraction: float
    vel_body_frd: np.ndarray = field(default_factory=lambda: np.zeros(3))
    pos_var_m2: float = 1e-4  # EKF variances ODOMETRY reports (diagonal)
    vel_var_m2s2: float = 4e-4
    att_var_rad2: float = 2.5e-5


def _i(x: float) -> int:
    return int(round(x))


def build(name: str, s: Snapshot, mav: mavlink.MAVLink):
    """The MAVLink message ``name`` for snapshot ``s`` (None if the twin cannot send it)."""
    if name == "HEARTBEAT":
        return mav.heartbeat_encode(MAV_TYPE_QUADROTOR, MAV_AUTOPILOT_PX4, s.base_mode, s.custom_mode,
                                    s.system_status, 3)
    if name == "SYS_STATUS":
        return mav.sys_status_encode(_SENSORS, _SENSORS, _SENSORS, 150, _i(s.battery_v * 1000),
                                     _i(s.battery_a * 100), _i(s.battery_remaining * 100), 0, 0, 0, 0, 0, 0)
    if name == "EXTENDED_SYS_STATE":
        return mav.extended_sys_state_encode(0, s.landed_state)
    if name == "BATTERY_STATUS":
        cell_mv = min(_i(s.battery_v / s.battery_cells * 1000), 65534)
        cells = [cell_mv] * s.battery_cells + [65535] * (10 - s.battery_cells)
        return mav.battery_status_encode(0, 1, 1, 32767, cells, _i(s.battery_a * 100),
                                         _i(s.battery_consumed_mah), -1, _i(s.battery_remaining * 100))
    if name == "ATTITUDE":
        r, p, y = s.euler_ned
        return mav.attitude_encode(s.time_boot_ms, r, p, y, *s.rates_frd)
    if name == "ATTITUDE_QUATERNION":
        return mav.attitude_quaternion_encode(s.time_boot_ms, *s.q_ned, *s.rates_frd)
    if name == "LOCAL_POSITION_NED":
        return mav.local_position_ned_encode(s.time_boot_ms, *s.pos_ned, *s.vel_ned)
    if name == "ODOMETRY":
        # PX4 main: streams/ODOMETRY.hpp sends vehicle_odometry, which EKF2::PublishOdometry fills
        # with pose_frame NED and velocity_frame NED -> frame_id = child_frame_id =
        # MAV_FRAME_LOCAL_NED (1), velocity in NED; the diagonal variances, NaN elsewhere;
        # estimator_type AUTOPILOT; quality 0 (EKF2 sets it so).
        pose_cov, vel_cov = [math.nan] * 21, [math.nan] * 21
        for i, k in enumerate((0, 6, 11)):
            pose_cov[k] = s.pos_var_m2
            vel_cov[k] = s.vel_var_m2s2
        for k in (15, 18, 20):
            pose_cov[k] = s.att_var_rad2
        return mav.odometry_encode(s.time_usec, MAV_FRAME_LOCAL_NED, MAV_FRAME_LOCAL_NED, *s.pos_ned, list(s.q_ned),
                                   *s.vel_ned, *s.rates_frd, pose_cov, vel_cov, 0, MAV_ESTIMATOR_TYPE_AUTOPILOT, 0)
    if name == "HIGHRES_IMU":
        return mav.highres_imu_encode(s.time_usec, *s.accel_frd, *s.gyro_frd, *s.mag_frd_gauss, s.pressure_hpa,
                                      0.0, s.alt_amsl_m, s.temperature_c, 0x1FFF)
    if name == "ALTITUDE":
        rel = -s.pos_ned[2]
        return mav.altitude_encode(s.time_usec, s.alt_amsl_m, s.alt_amsl_m, rel, rel, math.nan, math.nan)
    if name == "GLOBAL_POSITION_INT":
        hdg = _i(math.degrees(s.euler_ned[2]) % 360.0 * 100) % 36000
        return mav.global_position_int_encode(s.time_boot_ms, _i(s.lat_deg * 1e7), _i(s.lon_deg * 1e7),
                                              _i(s.alt_amsl_m * 1000), _i((s.alt_amsl_m - s.home_amsl_m) * 1000),
                                              *(_i(v * 100) for v in s.vel_ned), hdg)
    if name == "HOME_POSITION":
        return mav.home_position_encode(_i(s.home_lat_deg * 1e7), _i(s.home_lon_deg * 1e7), _i(s.home_amsl_m * 1000),
                                        0.0, 0.0, 0.0, [1.0, 0.0, 0.0, 0.0], 0.0, 0.0, 0.0, s.time_usec)
    if name == "VFR_HUD":
        gs = float(np.linalg.norm(s.vel_ned[:2]))
        hdg = _i(math.degrees(s.euler_ned[2]) % 360.0) % 360
        return mav.vfr_hud_encode(gs, gs, hdg, _i(s.thrust_fraction * 100), s.alt_amsl_m, -s.vel_ned[2])
    return None


MESSAGE_IDS = {name: getattr(mavlink, f"MAVLINK_MSG_ID_{name}") for name in ONBOARD_RATES_HZ}
NAMES_BY_ID = {v: k for k, v in MESSAGE_IDS.items()}


class StreamSchedule:
    """Which messages a link sends at what rate; SET_MESSAGE_INTERVAL edits it."""

    def __init__(self, mode: str):
        if mode not in DEFAULT_RATES:
            raise ValueError(f"link mode must be one of {sorted(DEFAULT_RATES)}, got {mode!r}")
        self.defaults = dict(DEFAULT_RATES[mode])
        self.rates_hz = dict(self.defaults)
        self._next_s = {name: 0.0 for name in self.rates_hz}

    def set_interval(self, message_id: int, interval_us: float) -> bool:
        """MAV_CMD_SET_MESSAGE_INTERVAL: -1 disables, 0 restores the default, > 0 sets the
        interval. False if the message is not one this twin streams (the command then FAILS, as
        mavlink_receiver.cpp set_message_interval does for an unknown stream)."""
        name = NAMES_BY_ID.get(int(message_id))
        if name is None or not math.isfinite(interval_us):
            return False
        if interval_us < 0:
            rate = 0.0
        elif interval_us == 0:
            rate = self.defaults.get(name, 0.0)
        else:
            rate = min(1e6 / interval_us, MAX_RATE_HZ)
        self.rates_hz[name] = rate
        self._next_s[name] = 0.0
        return True

    def interval_us(self, message_id: int) -> int:
        """MESSAGE_INTERVAL reply: interval in us, -1 when off, 0 when unknown."""
        name = NAMES_BY_ID.get(int(message_id))
        if name is None:
            return 0
        rate = self.rates_hz.get(name, 0.0)
        return -1 if rate <= 0 else int(round(1e6 / rate))

    def due(self, now_s: float) -> list[str]:
        """Names of the messages due at ``now_s`` (advances their schedule)."""
        out = []
        for name, rate in self.rates_hz.items():
            if rate <= 0:
                continue
            nxt = self._next_s[name]
            if now_s >= nxt:
                out.append(name)
                period = 1.0 / rate
                self._next_s[name] = nxt + period if now_s - nxt < period else now_s + period
        return out
