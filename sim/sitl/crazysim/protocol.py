"""The packets between CrazySim's firmware (``cf2``) and its physics side, physics-side codecs.

Every datagram is one CRTP packet: a header byte ``port << 4 | channel`` (bits 2-3 are reserved
and ignored by the firmware's ``CRTPPacket`` bit fields, crazyflie-firmware
src/modules/interface/crtp.h) and at most 30 data bytes. Sources, all from CrazySim's firmware
fork (llanesc/crazyflie-firmware, branch sitl-release, and its simulation submodule
llanesc/crazyflie-simulation), read in the public copies that carry it: dimitriasilveria/ and
DynamicSwarms/crazyflie-firmware (socketlink.c, sensors_sitl.c, main_sitl.c), sarane-dot/CrazySim
(crazysim_plugin.cpp, power_distribution_sitl.c, stabilizer.c, sitl_make/CMakeLists.txt in
crazysim.patch) and llanesc/crazyflie-simulation (CrtpUtils.h, mujoco/crazysim.py). The copies
differ in details that are not protocol (receive-queue size, a calibration shortcut):

- handshake: ``src/hal/src/socketlink.c`` socketlinkInit: ``cf2`` binds an ephemeral port,
  sends the single byte 0xF3 to ADDR:PORT and waits for a datagram of exactly one byte 0xF3;
  after 10 other datagrams (10 ms apart) it sends 0xF3 again. Its socket is blocking, so if the
  first 0xF3 is lost and nothing else arrives it waits forever.
- reply address: socketlinkTask stores the sender of EVERY received datagram in ``remaddr``
  and socketlinkSendPacket answers there: the firmware talks to whoever sent last, so the
  physics side, which streams sensors at 1 kHz, must also relay cflib (crazysim_plugin.cpp
  recvCfLibThread / sendCfFirmwareThread; crazysim.py DroneAgent).
- sensors: ``src/hal/src/sensors_sitl.c`` sensorsTask: port 9 (CRTP_PORT_SETPOINT_SIM),
  channel 0, data[0] = SensorTypeSim_e: 0 = gyro+acc (Axis3i16 acc then Axis3i16 gyro), 1 =
  magnetometer (Axis3i16 / MAG_GAUSS_PER_LSB 666.7), 2 = baro (float pressure mbar, float
  temperature degC, float asl m). Scales: SENSORS_G_PER_LSB_CFG = 2*16/65536 g (2048 LSB/g),
  SENSORS_DEG_PER_LSB_CFG = 2*2000/65536 deg/s (16.384 LSB per deg/s). Every port-9 packet
  gives the stabilizer one step (xSemaphoreGive(dataReady) -> sensorsWaitDataReady in
  stabilizer.c). The gyro bias is the mean of a full 1024-sample buffer whose variance is under
  GYRO_VARIANCE_BASE 5000 (SENSORS_NBR_OF_BIAS_SAMPLES); the accelerometer scale is then the
  mean norm of the next 1000 samples (SENSORS_ACC_SCALE_SAMPLES).
- ready: once the bias is found sensorsTask answers the packet it just read with
  ``data[0] = gyroBiasFound`` (1), size 1: ``0x90 0x01``.
- motors: ``src/modules/src/power_distribution_sitl.c`` motorsSetRatio: header
  CRTP_HEADER(9, 0) and 4 x uint16 PWM m1..m4 (9 bytes), sent at most once per 1 ms FreeRTOS
  tick (``xTaskGetTickCount() - lastSentTime >= M2T(1)``). crazysim_plugin.cpp takes a motor
  packet only when it is exactly 9 bytes long.
- pose: CrtpUtils.h CrtpExtPose_s, crazysim_plugin.cpp OdomCallback: port 6 (localization),
  channel 1 (CRTP_LOC_CHANNEL_GEN_LOC), data[0] = CRTP_GEN_LOC_ID_EXT_POS 8, then x, y, z, qx,
  qy, qz, qw as float32 (world ENU m, body-to-world quaternion), fused by the Kalman filter
  (crazyflie-firmware src/modules/src/crtp_localization_service.c, EXT_POSE).
- argv: ``src/init/main_sitl.c``: ``cf2 PORT [ADDR]`` (ADDR defaults to "INADDR_ANY").
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

HANDSHAKE = b"\xf3"  # socketlink.c: p.header = 0xF3, size 0
SCAN_PROBE = b"\xff"  # cflib udpdriver.py scan_interface: the null CRTP packet 0xFF
FIRMWARE_BASE_PORT = 19950  # main_sitl.c CRTP_PORT; crazysim.py: agent N uses 19950 + N
CFLIB_BASE_PORT = 19850  # crazysim.py CFLIB_PORT_OFFSET -100; cflib udpdriver.py _BASE_PORT

PORT_SIM = 9  # sensors_sitl.c / CrtpUtils.h CRTP_PORT_SETPOINT_SIM
PORT_LOCALIZATION = 6
CHANNEL_GEN_LOC = 1  # CrtpUtils.h CRTP_LOC_CHANNEL_GEN_LOC
GEN_LOC_EXT_POSE = 8  # CrtpUtils.h CRTP_GEN_LOC_ID_EXT_POS
HEADER_SIM = (PORT_SIM << 4) | 0  # 0x90
HEADER_POSE = (PORT_LOCALIZATION << 4) | CHANNEL_GEN_LOC  # 0x61

SENSOR_GYRO_ACC = 0  # sensors_sitl.c SensorTypeSim_e
SENSOR_MAG = 1
SENSOR_BARO = 2

G_PER_LSB = 2.0 * 16.0 / 65536.0  # sensors_sitl.c SENSORS_G_PER_LSB_CFG: 2048 LSB per g
DEG_S_PER_LSB = 2.0 * 2000.0 / 65536.0  # SENSORS_DEG_PER_LSB_CFG: 16.384 LSB per deg/s
MAG_LSB_PER_GAUSS = 666.7  # sensors_sitl.c MAG_GAUSS_PER_LSB (divides the raw value)
# The firmware turns g into m/s^2 with this constant (crazyflie-firmware
# src/modules/interface/physicalConstants.h GRAVITY_MAGNITUDE; CrtpUtils.h GRAVITY_MAGNITUDE_CF).
FIRMWARE_G_MPS2 = 9.81

GYRO_BIAS_SAMPLES = 1024  # sensors_sitl.c SENSORS_NBR_OF_BIAS_SAMPLES
ACC_SCALE_SAMPLES = 1000  # sensors_sitl.c SENSORS_ACC_SCALE_SAMPLES
MOTOR_PACKET_LEN = 9  # power_distribution_sitl.c: header + 4 x uint16
READY_PACKET = bytes((HEADER_SIM, 1))  # sensors_sitl.c: data[0] = gyroBiasFound, size 1

_IMU = struct.Struct("<BB6h")
_POSE = struct.Struct("<BB7f")
_MOTORS = struct.Struct("<B4H")
_BARO = struct.Struct("<BB3f")
_INT16_MIN, _INT16_MAX = -32768, 32767


def _int16(value: float) -> int:
    return min(max(int(round(value)), _INT16_MIN), _INT16_MAX)


_ACC_LSB_PER_MPS2 = 1.0 / (FIRMWARE_G_MPS2 * G_PER_LSB)
_GYRO_LSB_PER_RAD_S = 180.0 / math.pi / DEG_S_PER_LSB


def imu_packet(specific_force_b_mps2, omega_b_rad_s) -> bytes:
    """The IMU packet (14 bytes) for a body-frame (FLU) specific force in m/s^2 (+9.81 on z at
    rest) and a body rate in rad/s; values beyond the sensor range saturate at int16.
    Plain floats, not numpy: this runs once per drone per 1 ms tick."""
    ax, ay, az = (float(v) * _ACC_LSB_PER_MPS2 for v in specific_force_b_mps2)
    gx, gy, gz = (float(v) * _GYRO_LSB_PER_RAD_S for v in omega_b_rad_s)
    if not all(math.isfinite(v) for v in (ax, ay, az, gx, gy, gz)):
        raise ValueError("IMU values must be finite")
    return _IMU.pack(HEADER_SIM, SENSOR_GYRO_ACC, _int16(ax), _int16(ay), _int16(az),
                     _int16(gx), _int16(gy), _int16(gz))


def baro_packet(pressure_mbar: float, temperature_c: float, asl_m: float) -> bytes:
    """The barometer packet (14 bytes): pressure in mbar, temperature in degC, altitude in m."""
    return _BARO.pack(HEADER_SIM, SENSOR_BARO, pressure_mbar, temperature_c, asl_m)


def pose_packet(pos_w_m: np.ndarray, quat_wb_wxyz: np.ndarray) -> bytes:
    """The external-pose packet (30 bytes): world ENU position in m and the body-to-world
    quaternion given scalar-first (w, x, y, z) as quadhil stores it; sent as x, y, z, w."""
    w, x, y, z = (float(v) for v in quat_wb_wxyz)
    px, py, pz = (float(v) for v in pos_w_m)
    if not all(math.isfinite(v) for v in (px, py, pz, w, x, y, z)):
        raise ValueError("pose must be finite")
    return _POSE.pack(HEADER_POSE, GEN_LOC_EXT_POSE, px, py, pz, x, y, z, w)


@dataclass(frozen=True)
class FirmwarePacket:
    """What one datagram from ``cf2`` means to the physics side."""

    kind: str  # "handshake" | "motors" | "ready" | "crtp" (anything else: relayed to cflib)
    pwm: tuple[int, int, int, int] | None = None


def classify_from_firmware(datagram: bytes) -> FirmwarePacket:
    """Sort one datagram from the firmware: the 1-byte handshake, a 9-byte motor packet on port
    9 channel 0 (crazysim_plugin.cpp recvCfFirmwareThread takes exactly 9 bytes), the ready
    signal ``0x90 0x01``, or a CRTP packet for cflib."""
    if datagram == HANDSHAKE:
        return FirmwarePacket("handshake")
    if datagram and (datagram[0] & 0xF3) == HEADER_SIM:
        if len(datagram) == MOTOR_PACKET_LEN:
            return FirmwarePacket("motors", tuple(_MOTORS.unpack(datagram)[1:]))
        if datagram[1:] == b"\x01":
            return FirmwarePacket("ready")
    return FirmwarePacket("crtp")
