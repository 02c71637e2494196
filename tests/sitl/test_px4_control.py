"""The twin's PX4-like controllers, in-process and faster than real time (``Px4Twin.advance``)."""

from __future__ import annotations

import math

import pytest
from pymavlink.dialects.v20 import common as mavlink

from sim.frames import quat_to_euler, tilt_rad
from sim.sitl.px4.commander import ACCEPTED
from sim.sitl.px4.modes import NavState
from sim.sitl.px4.twin import Px4Twin, TwinConfig


def offboard_position(twin, x_ned, y_ned, z_ned, yaw_ned=math.nan, seconds=8.0):
    mav = mavlink.MAVLink(None, srcSystem=255, srcComponent=190)
    mask = 0b0000_1101_1111_1000 if math.isnan(yaw_ned) else 0b0000_1001_1111_1000
    msg = mav.set_position_target_local_ned_encode(0, 1, 1, 1, mask, x_ned, y_ned, z_ned, 0, 0, 0, 0, 0, 0,
                                                   0.0 if math.isnan(yaw_ned) else yaw_ned, 0)
    for _ in range(int(seconds / 0.1)):
        twin.handle(msg, link=None)  # a 10 Hz setpoint stream
        twin.advance(0.1)
        if twin.commander.nav_state != NavState.OFFBOARD:
            assert twin.commander.request_mode(NavState.OFFBOARD)


@pytest.mark.parametrize("realism", [{}, {"noise": True, "wind_mps": (2.0, -1.0, 0.0), "gust_std_mps": 0.5}])
def test_offboard_position_setpoints_are_reached_and_held(realism):
    twin = Px4Twin(TwinConfig(ekf_init_s=0.0, seed=3, **realism), open_links=False)
    twin.advance(0.1)
    assert twin.commander.arm()
    # straight up first: spool-up 1 s and the 3 s takeoff ramp (COM_SPOOLUP_TIME, MPC_TKO_RAMP_T)
    # with the tilt limited to MPC_TILTMAX_LND; a far horizontal setpoint on the ground would tilt
    # the vehicle against the twin's rigid ground, which does not let it tip over a leg
    offboard_position(twin, 0.0, 0.0, -2.0, yaw_ned=math.radians(90), seconds=8.0)
    offboard_position(twin, 1.0, 2.0, -2.0, yaw_ned=math.radians(90), seconds=8.0)
    pos = twin.sim.state.pos_w[0]
    assert pos == pytest.approx([2.0, 1.0, 2.0], abs=0.25)  # NED (1 N, 2 E, 2 up) is ENU (2, 1, 2)
    assert math.degrees(quat_to_euler(twin.sim.state.quat_wb[0])[2]) == pytest.approx(0.0, abs=5.0)  # east
    assert float(tilt_rad(twin.sim.state.quat_wb[0])) < math.radians(10)
    assert not twin.sim.state.crashed[0]


def test_takeoff_command_climbs_to_mis_takeoff_alt_then_loiters_and_land_disarms():
    twin = Px4Twin(TwinConfig(ekf_init_s=0.0), open_links=False)
    twin.advance(0.1)
    assert twin.commander.arm()
    assert twin.commander.handle_command(22, (0, 0, 0, math.nan, math.nan, math.nan, math.nan)) == ACCEPTED
    twin.advance(10.0)  # spool-up 1 s + takeoff ramp 3 s + climb
    assert twin.commander.nav_state == NavState.AUTO_LOITER
    assert twin.sim.state.pos_w[0, 2] == pytest.approx(2.5, abs=0.15)  # MIS_TAKEOFF_ALT
    assert twin.commander.handle_command(21, ()) == ACCEPTED
    twin.advance(2.5 / 0.7 + 2.0)  # descent, then the land detector's 0.35 + 0.25 + 0.3 s
    assert twin.commander.landed
    twin.advance(2.5)  # COM_DISARM_LAND = 2 s
    assert not twin.commander.armed
    assert not twin.sim.state.crashed[0]


def test_rate_gains_follow_param_set():
    twin = Px4Twin(TwinConfig(ekf_init_s=0.0), open_links=False)
    kp_before = twin.controller.rate.kp.copy()
    twin.params.set("MC_ROLLRATE_P", 0.3)
    assert twin.controller.rate.kp[0] == pytest.approx(2 * kp_before[0])
    assert twin.controller.rate.kp[1] == pytest.approx(kp_before[1])
    # the vehicle file's gains are PX4's defaults: unchanged params reproduce them
    assert kp_before == pytest.approx(twin.vehicle.rate_controller.kp_nm_per_rad_s)


def test_auto_disarm_when_no_takeoff_follows_arming():
    twin = Px4Twin(TwinConfig(ekf_init_s=0.0, params={"COM_DISARM_PRFLT": 1.0}), open_links=False)
    twin.advance(0.1)
    assert twin.commander.arm()
    twin.advance(1.2)
    assert not twin.commander.armed  # no takeoff within COM_DISARM_PRFLT
    assert ("Disarmed by auto preflight disarming" in [t for _, t in twin.commander.messages])
