"""CrazySim packet layouts on the physics side, checked against the firmware's own arithmetic.

The expected numbers are written from CrazySim's sources (sensors_sitl.c scales, CrtpUtils.h
structs, power_distribution_sitl.c motor packet), not from quadhil's encoder.
"""

import math
import struct

import numpy as np
import pytest

from sim.sitl.crazysim import protocol


def test_imu_packet_is_14_bytes_port9_type0_with_2048_lsb_per_g_and_16_384_lsb_per_deg_s():
    pk = protocol.imu_packet(np.array([0.0, 0.0, 9.81]), np.radians([100.0, -50.0, 10.0]))
    assert len(pk) == 14  # CrtpUtils.h imu_s: header, type, Axis3i16 acc, Axis3i16 gyro
    header, kind, ax, ay, az, gx, gy, gz = struct.unpack("<BB6h", pk)
    assert (header >> 4, header & 3, kind) == (9, 0, 0)
    assert (ax, ay, az) == (0, 0, 2048)  # +1 g on body z at rest: 65536 / (2 * 16)
    assert (gx, gy, gz) == (1638, -819, 164)  # deg/s * 65536 / (2 * 2000)


def test_imu_values_beyond_the_sensor_range_saturate_instead_of_wrapping():
    pk = protocol.imu_packet(np.array([0.0, 0.0, 20 * 9.81]), np.radians([3000.0, -3000.0, 0.0]))
    _, _, _, _, az, gx, gy, _ = struct.unpack("<BB6h", pk)
    assert (az, gx, gy) == (32767, 32767, -32768)


def test_imu_refuses_non_finite_values():
    with pytest.raises(ValueError):
        protocol.imu_packet(np.array([math.nan, 0.0, 9.81]), np.zeros(3))


def test_pose_packet_is_port6_channel1_type8_xyz_then_quaternion_x_y_z_w():
    q_wxyz = np.array([math.cos(0.25), 0.0, 0.0, math.sin(0.25)])
    pk = protocol.pose_packet(np.array([1.0, -2.0, 0.5]), q_wxyz)
    assert len(pk) == 30  # CrtpExtPose_s: header, id, 7 floats
    header, ident = pk[0], pk[1]
    assert (header >> 4, header & 3, ident) == (6, 1, 8)
    x, y, z, qx, qy, qz, qw = struct.unpack_from("<7f", pk, 2)
    assert (x, y, z) == (1.0, -2.0, 0.5)
    assert (qx, qy) == (0.0, 0.0)
    assert qz == pytest.approx(math.sin(0.25)) and qw == pytest.approx(math.cos(0.25))


def test_a_9_byte_port9_packet_from_the_firmware_is_the_motor_pwm_m1_to_m4():
    pk = protocol.classify_from_firmware(struct.pack("<B4H", 0x90, 1, 2, 40000, 65535))
    assert pk.kind == "motors" and pk.pwm == (1, 2, 40000, 65535)


def test_the_ready_signal_the_handshake_and_other_crtp_are_told_apart():
    assert protocol.classify_from_firmware(b"\x90\x01").kind == "ready"
    assert protocol.classify_from_firmware(b"\xf3").kind == "handshake"
    assert protocol.classify_from_firmware(b"\xf3\x00").kind == "crtp"  # only the 1-byte datagram
    assert protocol.classify_from_firmware(b"\x5c\x01\x02").kind == "crtp"  # a log reply for cflib
    assert protocol.classify_from_firmware(b"\x90\x00\x00").kind == "crtp"  # port 9 but neither layout
    # the reserved header bits 2-3 do not change the port or channel (crtp.h bit fields)
    assert protocol.classify_from_firmware(struct.pack("<B4H", 0x9C, 0, 0, 0, 0)).kind == "motors"


def test_the_accelerometer_reads_gravity_in_body_axes_the_way_the_frames_module_rotates():
    from sim.frames import quat_from_euler, quat_to_rotmat
    from sim.sitl.crazysim.server import _world_to_body

    q = quat_from_euler(0.3, -0.2, 1.1)
    v = np.array([0.5, -1.0, 9.80665])
    assert _world_to_body(q.tolist(), v.tolist()) == pytest.approx(quat_to_rotmat(q).T @ v)
