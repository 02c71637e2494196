"""NED/FRD on the PX4 twin's MAVLink side equals ENU/FLU in the simulator after conversion.

In-process: the twin's physics state is set to a known ENU pose, its telemetry is packed and
parsed back with pymavlink, and setpoints go the other way through the twin's handlers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pymavlink.dialects.v20 import common as mavlink

from sim.frames import quat_from_euler, quat_ned_frd_to_enu_flu, quat_to_euler
from sim.sitl.px4.streams import build
from sim.sitl.px4.twin import Px4Twin, TwinConfig


def roundtrip(msg):
    mav = mavlink.MAVLink(None)
    out = mav.parse_buffer(msg.pack(mavlink.MAVLink(None, srcSystem=1, srcComponent=1)))
    assert out and out[0].get_type() == msg.get_type()
    return out[0]


@pytest.fixture()
def twin():
    t = Px4Twin(TwinConfig(ekf_init_s=0.0), open_links=False)
    s = t.sim.state
    s.pos_w[0] = [1.0, 2.0, 3.0]  # 1 m east, 2 m north, 3 m up
    s.vel_w[0] = [0.5, -0.2, 0.1]
    s.quat_wb[0] = quat_from_euler(math.radians(10), math.radians(10), math.radians(30))  # ENU yaw 30 deg
    s.omega_b[0] = [0.1, 0.2, 0.3]
    t.estimate = t._estimate()
    yield t
    t.close()


def telemetry(twin, name):
    return roundtrip(build(name, twin.snapshot(), mavlink.MAVLink(None, srcSystem=1, srcComponent=1)))


def test_local_position_and_velocity_are_ned(twin):
    lp = telemetry(twin, "LOCAL_POSITION_NED")
    assert (lp.x, lp.y, lp.z) == pytest.approx((2.0, 1.0, -3.0), abs=1e-5)  # north, east, down
    assert (lp.vx, lp.vy, lp.vz) == pytest.approx((-0.2, 0.5, -0.1), abs=1e-5)


def test_attitude_is_frd_to_ned(twin):
    att = telemetry(twin, "ATTITUDE")
    # FLU roll +10 deg is right-side-down, the same as FRD roll +10 deg; FLU pitch +10 deg is
    # nose-down, FRD pitch -10 deg; ENU heading 30 deg from east is 60 deg from north
    assert math.degrees(att.roll) == pytest.approx(10.0, abs=1e-3)
    assert math.degrees(att.pitch) == pytest.approx(-10.0, abs=1e-3)
    assert math.degrees(att.yaw) == pytest.approx(60.0, abs=1e-3)
    assert (att.rollspeed, att.pitchspeed, att.yawspeed) == pytest.approx((0.1, -0.2, -0.3), abs=1e-6)
    aq = telemetry(twin, "ATTITUDE_QUATERNION")
    q_back = quat_ned_frd_to_enu_flu(np.array([aq.q1, aq.q2, aq.q3, aq.q4]))
    assert q_back == pytest.approx(twin.sim.state.quat_wb[0], abs=1e-6)


def test_odometry_is_what_px4_main_sends_ned_velocity_child_frame_1(twin):
    """streams/ODOMETRY.hpp + EKF2::PublishOdometry: pose and velocity both LOCAL_NED (1),
    estimator AUTOPILOT (8), quality 0, the EKF's diagonal variances and NaN elsewhere."""
    twin.sim.state.quat_wb[0] = quat_from_euler(0.0, 0.0, math.radians(30))
    twin.sim.state.vel_w[0] = [1.0, 0.0, 0.0]  # flying east, nose 30 deg left of east
    twin.estimate = twin._estimate()
    od = telemetry(twin, "ODOMETRY")
    assert od.frame_id == 1 and od.child_frame_id == 1
    assert (od.vx, od.vy, od.vz) == pytest.approx((0.0, 1.0, 0.0), abs=1e-5)  # east is NED +y, whatever the nose
    assert od.estimator_type == 8 and od.quality == 0
    assert od.pose_covariance[0] > 0 and math.isnan(od.pose_covariance[1])
    assert od.velocity_covariance[11] > 0 and math.isnan(od.velocity_covariance[2])


def test_highres_imu_reads_gravity_as_minus_z_at_rest():
    t = Px4Twin(TwinConfig(ekf_init_s=0.0), open_links=False)
    t.advance(0.1)
    imu = roundtrip(build("HIGHRES_IMU", t.snapshot(), mavlink.MAVLink(None)))
    assert imu.zacc == pytest.approx(-9.80665, abs=1e-3)
    assert abs(imu.xacc) < 1e-6 and abs(imu.yacc) < 1e-6


def test_ned_setpoints_arrive_in_the_simulator_as_enu(twin):
    mav = mavlink.MAVLink(None, srcSystem=255, srcComponent=190)
    msg = roundtrip(mav.set_position_target_local_ned_encode(0, 1, 1, 1, 0b0000_1001_1111_1000, 2.0, 1.0, -3.0,
                                                             0, 0, 0, 0, 0, 0, math.radians(60), 0))
    twin.handle(msg, link=None)
    sp = twin.commander.offboard.setpoint
    assert sp.kind == "trajectory"
    assert sp.pos_w == pytest.approx([1.0, 2.0, 3.0])
    assert math.degrees(sp.yaw_rad) == pytest.approx(30.0, abs=1e-4)  # 60 deg from north = 30 deg from east
    msg = roundtrip(mav.set_attitude_target_encode(0, 1, 1, 128, [1, 0, 0, 0], 0.1, 0.2, 0.3, 0.6))
    twin.handle(msg, link=None)
    sp = twin.commander.offboard.setpoint
    assert sp.kind == "rates" and sp.thrust_fraction == pytest.approx(0.6)
    assert sp.rate_b == pytest.approx([0.1, -0.2, -0.3], abs=1e-6)  # FRD -> FLU
    q_ned = quat_from_euler(0.0, 0.0, math.radians(90))  # facing east
    msg = roundtrip(mav.set_attitude_target_encode(0, 1, 1, 7, list(q_ned), 0, 0, 0, 0.5))
    twin.handle(msg, link=None)
    sp = twin.commander.offboard.setpoint
    assert sp.kind == "attitude"
    assert math.degrees(quat_to_euler(sp.quat_wb)[2]) == pytest.approx(0.0, abs=1e-4)  # ENU: east is yaw 0


def test_body_ned_velocity_is_rotated_by_the_attitude(twin):
    twin.sim.state.quat_wb[0] = quat_from_euler(0.0, 0.0, math.radians(90))  # nose north
    twin.estimate = twin._estimate()
    mav = mavlink.MAVLink(None, srcSystem=255, srcComponent=190)
    msg = roundtrip(mav.set_position_target_local_ned_encode(0, 1, 1, 8, 0b0000_1101_1100_0111, 0, 0, 0,
                                                             1.0, 0, 0, 0, 0, 0, 0, 0))
    twin.handle(msg, link=None)
    sp = twin.commander.offboard.setpoint
    assert sp.vel_w == pytest.approx([0.0, 1.0, 0.0], abs=1e-6)  # body forward = north = ENU +y
    assert np.all(np.isnan(sp.pos_w))
