"""The PX4 twin, specified through a real pymavlink client on free UDP ports."""

from __future__ import annotations

import math
import time

import pytest
from pymavlink import mavutil

from sim.sitl.px4.modes import (MAIN_AUTO, MAIN_OFFBOARD, MAIN_POSCTL, MODE_FLAG_CUSTOM_MODE_ENABLED,
                                MODE_FLAG_SAFETY_ARMED, SUB_AUTO_LAND, SUB_AUTO_LOITER, SUB_AUTO_TAKEOFF,
                                decode_custom_mode)
from sim.sitl.px4.params import PARAM_DEFS, decode_value, encode_value
from tests.sitl.px4_helpers import free_udp_ports, px4_twin

ACCEPTED, TEMPORARILY_REJECTED, DENIED, UNSUPPORTED, FAILED = 0, 1, 2, 3, 4
HOVER = 2.0 * 9.80665 / (4 * 8.54858)  # x500 hover collective fraction with THR_MDL_FAC 1 (linear thrust)
LINEAR_THRUST = ("--param", "THR_MDL_FAC=1")  # the client-side loop below assumes thrust linear in collective


def stream_for(twin, seconds, **rates):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        twin.send_rates(**rates)
        time.sleep(0.02)


def fly_altitude_hold(twin, target_up_m, seconds):
    """A client-side altitude loop over body-rate/thrust offboard, like a bridge would run."""
    end = time.monotonic() + seconds
    z = vz = 0.0
    while time.monotonic() < end:
        lp = twin.client.recv_match(type="LOCAL_POSITION_NED", blocking=False)
        while lp is not None:
            z, vz = lp.z, lp.vz
            lp = twin.client.recv_match(type="LOCAL_POSITION_NED", blocking=False)
        thrust = HOVER + 0.12 * (target_up_m + z) - 0.15 * (-vz)
        twin.send_rates(thrust=min(max(thrust, 0.0), 1.0))
        time.sleep(0.02)


def enter_offboard(twin):
    stream_for(twin, 0.3, thrust=0.0)
    assert twin.arm() == ACCEPTED
    assert twin.set_mode(MAIN_OFFBOARD) == ACCEPTED


def test_heartbeat_is_a_px4_quadrotor_in_position_mode():
    with px4_twin() as twin:
        hb = twin.heartbeat()
        assert hb.autopilot == mavutil.mavlink.MAV_AUTOPILOT_PX4
        assert hb.type == mavutil.mavlink.MAV_TYPE_QUADROTOR
        assert hb.base_mode & MODE_FLAG_CUSTOM_MODE_ENABLED
        assert not hb.base_mode & MODE_FLAG_SAFETY_ARMED
        assert hb.custom_mode == MAIN_POSCTL << 16
        assert decode_custom_mode(hb.custom_mode) == (MAIN_POSCTL, 0)
        assert hb.system_status == mavutil.mavlink.MAV_STATE_STANDBY
        assert mavutil.mode_string_v10(hb) == "POSCTL"  # pymavlink's own PX4 mode decoding
        ext = twin.recv("EXTENDED_SYS_STATE")
        assert ext.landed_state == mavutil.mavlink.MAV_LANDED_STATE_ON_GROUND
        # arming: an out-of-range param1 is UNSUPPORTED, a plain arm/disarm on the ground works
        assert twin.command(400, 5.0).result == UNSUPPORTED
        assert twin.arm() == ACCEPTED
        hb = twin.heartbeat()
        assert hb.base_mode & MODE_FLAG_SAFETY_ARMED and hb.system_status == mavutil.mavlink.MAV_STATE_ACTIVE
        assert twin.disarm() == ACCEPTED  # landed: no force needed
        assert not twin.heartbeat().base_mode & MODE_FLAG_SAFETY_ARMED


def test_arming_is_denied_before_the_estimator_is_ready_even_when_forced_and_with_a_low_battery():
    with px4_twin("--battery", "0.03", ekf_init_s=3.0) as twin:
        assert twin.recv("ATTITUDE").time_boot_ms < 3000
        assert twin.arm() == TEMPORARILY_REJECTED
        assert twin.recv("STATUSTEXT", 2.0, lambda m: "Preflight Fail" in m.text) is not None
        # Commander.cpp arms with run_preflight_checks = from_external || !forced
        assert twin.arm(force=True) == TEMPORARILY_REJECTED
        assert not twin.heartbeat().base_mode & MODE_FLAG_SAFETY_ARMED
        # estimator ready (sim time past --ekf-init-s): now the 3 % battery is below BAT_CRIT_THR
        assert twin.recv("ATTITUDE", 6.0, lambda m: m.time_boot_ms > 3100) is not None
        assert twin.arm() == TEMPORARILY_REJECTED
        assert twin.recv("STATUSTEXT", 2.0, lambda m: "battery" in m.text) is not None


def test_offboard_is_rejected_without_a_setpoint_stream_and_accepted_with_one():
    with px4_twin() as twin:
        assert twin.set_mode(MAIN_OFFBOARD) == TEMPORARILY_REJECTED
        assert twin.recv("STATUSTEXT", 2.0, lambda m: "offboard" in m.text.lower()) is not None
        # SET_ACTUATOR_CONTROL_TARGET is ignored as PX4 v1.14 ignores it: it is no offboard signal
        for _ in range(10):
            twin.client.mav.set_actuator_control_target_send(0, 0, 1, 1, [0.5] * 8)
            time.sleep(0.02)
        assert twin.set_mode(MAIN_OFFBOARD) == TEMPORARILY_REJECTED
        stream_for(twin, 0.5, thrust=0.0)  # 50 Hz of SET_ATTITUDE_TARGET
        assert twin.set_mode(MAIN_OFFBOARD) == ACCEPTED
        assert twin.wait_mode(MAIN_OFFBOARD)


def test_a_body_rate_thrust_stream_lifts_and_holds_and_losing_it_triggers_position_hold():
    with px4_twin(*LINEAR_THRUST) as twin:
        enter_offboard(twin)
        # lift and hold: a client-side altitude loop over SET_ATTITUDE_TARGET rates + thrust
        fly_altitude_hold(twin, 1.5, 3.5)
        heights = []
        for _ in range(5):
            heights.append(-twin.local_position().z)
            fly_altitude_hold(twin, 1.5, 0.2)
        t_stop = time.monotonic()  # the last setpoint went out just before
        assert all(1.2 < h < 1.8 for h in heights), heights
        att = twin.recv("ATTITUDE")
        assert abs(att.roll) < 0.05 and abs(att.pitch) < 0.05
        assert twin.recv("EXTENDED_SYS_STATE").landed_state == mavutil.mavlink.MAV_LANDED_STATE_IN_AIR
        # the stream has stopped: after COM_OF_LOSS_T (1.0 s) COM_OBL_RC_ACT = 0 -> Position hold
        hb = twin.recv("HEARTBEAT", 4.0, lambda m: decode_custom_mode(m.custom_mode) == (MAIN_POSCTL, 0))
        elapsed = time.monotonic() - t_stop
        assert hb is not None
        assert 0.9 <= elapsed <= 2.2, elapsed  # HEARTBEAT at 10 Hz in these tests
        assert hb.system_status == mavutil.mavlink.MAV_STATE_CRITICAL
        assert hb.base_mode & MODE_FLAG_SAFETY_ARMED
        assert any("offboard" in t.lower() for t in twin.statustexts) or \
            twin.recv("STATUSTEXT", 1.0, lambda m: "offboard" in m.text.lower()) is not None
        time.sleep(1.0)
        assert -twin.local_position().z > 1.0  # holding, not falling
        # in the air a plain disarm is refused; the force magic disarms
        assert twin.disarm() == TEMPORARILY_REJECTED
        assert twin.disarm(force=True) == ACCEPTED


def test_takeoff_then_land_then_auto_disarm():
    with px4_twin("--param", "MIS_TAKEOFF_ALT=1.5", "--param", "MPC_TKO_SPEED=2.5", "--param", "MPC_LAND_SPEED=1.5",
                  "--param", "COM_DISARM_LAND=0.5") as twin:
        assert twin.arm() == ACCEPTED
        assert twin.command(22, 0, 0, 0, math.nan, math.nan, math.nan, math.nan).result == ACCEPTED
        assert twin.wait_mode(MAIN_AUTO, SUB_AUTO_TAKEOFF, 2.0)
        # spool-up 1 s + takeoff ramp 3 s (COM_SPOOLUP_TIME, MPC_TKO_RAMP_T), then the climb
        assert twin.wait_mode(MAIN_AUTO, SUB_AUTO_LOITER, 10.0)  # navigator loiters after takeoff
        assert 1.3 < -twin.local_position().z < 1.7
        assert twin.command(21).result == ACCEPTED
        assert twin.wait_mode(MAIN_AUTO, SUB_AUTO_LAND, 2.0)
        disarmed = twin.recv("HEARTBEAT", 8.0, lambda m: not m.base_mode & MODE_FLAG_SAFETY_ARMED)
        assert disarmed is not None
        assert twin.recv("EXTENDED_SYS_STATE").landed_state == mavutil.mavlink.MAV_LANDED_STATE_ON_GROUND


@pytest.fixture(scope="module")
def shared_twin():
    """One twin for the tests that only read telemetry, parameters and command results."""
    with px4_twin() as twin:
        yield twin


def test_param_list_read_and_set(shared_twin):
    twin = shared_twin
    twin.drain()
    twin.client.mav.param_request_list_send(1, 1)
    seen = {}
    while len(seen) < len(PARAM_DEFS):
        pv = twin.recv("PARAM_VALUE", 3.0)
        assert pv is not None, f"only {len(seen)} of {len(PARAM_DEFS)} parameters arrived"
        assert pv.param_count == len(PARAM_DEFS)
        seen[pv.param_index] = pv
    assert sorted(seen) == list(range(len(PARAM_DEFS)))
    by_name = {pv.param_id: pv for pv in seen.values()}
    assert by_name["COM_OF_LOSS_T"].param_value == pytest.approx(1.0)
    assert decode_value(by_name["COM_OBL_RC_ACT"].param_value, 6) == 0
    # REAL32 set
    twin.client.mav.param_set_send(1, 1, b"COM_OF_LOSS_T", 2.5, 9)
    pv = twin.recv("PARAM_VALUE", 2.0, lambda m: m.param_id == "COM_OF_LOSS_T")
    assert pv.param_value == pytest.approx(2.5)
    # INT32 travels bytewise, as PX4 sends it
    twin.client.mav.param_set_send(1, 1, b"COM_OBL_RC_ACT", encode_value(4, 6), 6)
    pv = twin.recv("PARAM_VALUE", 2.0, lambda m: m.param_id == "COM_OBL_RC_ACT")
    assert pv.param_type == 6 and decode_value(pv.param_value, 6) == 4
    # read back by name and by index
    twin.client.mav.param_request_read_send(1, 1, b"COM_OF_LOSS_T", -1)
    assert twin.recv("PARAM_VALUE", 2.0, lambda m: m.param_id == "COM_OF_LOSS_T").param_value == pytest.approx(2.5)
    idx = by_name["MPC_XY_P"].param_index
    twin.client.mav.param_request_read_send(1, 1, b"", idx)
    assert twin.recv("PARAM_VALUE", 2.0, lambda m: m.param_index == idx).param_id == "MPC_XY_P"
    # out of range is refused and the old value is reported
    twin.client.mav.param_set_send(1, 1, b"MPC_XY_P", 99.0, 9)
    assert twin.recv("PARAM_VALUE", 2.0, lambda m: m.param_id == "MPC_XY_P").param_value == pytest.approx(0.95)
    # unknown names get no PARAM_VALUE
    twin.client.mav.param_request_read_send(1, 1, b"NO_SUCH_PARAM", -1)
    assert twin.recv("STATUSTEXT", 2.0, lambda m: "unknown param" in m.text) is not None


def _rate_hz(twin, msg_type, seconds=1.0):
    twin.drain()
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        if twin.client.recv_match(type=msg_type, blocking=True, timeout=0.05) is not None:
            n += 1
    return n / seconds


def _interval_us(twin, msg_id):
    twin.drain()
    twin.client.mav.command_long_send(1, 1, 510, 0, msg_id, 0, 0, 0, 0, 0, 0)  # GET_MESSAGE_INTERVAL
    return twin.recv("MESSAGE_INTERVAL", 2.0, lambda m: m.message_id == msg_id).interval_us


def test_default_onboard_rates_and_requested_rates(shared_twin):
    twin = shared_twin
    ml = mavutil.mavlink
    # ONBOARD defaults (mavlink_main.cpp): ATTITUDE 100 Hz, ATTITUDE_QUATERNION and HIGHRES_IMU 50 Hz,
    # LOCAL_POSITION_NED and ODOMETRY 30 Hz, ALTITUDE 10 Hz. Received rates depend on the host's
    # load and are measured by `quadhil bench sitl-px4`; here the configuration is checked.
    assert _interval_us(twin, ml.MAVLINK_MSG_ID_ATTITUDE) == 10000
    assert _interval_us(twin, ml.MAVLINK_MSG_ID_ATTITUDE_QUATERNION) == 20000
    assert _interval_us(twin, ml.MAVLINK_MSG_ID_HIGHRES_IMU) == 20000
    assert _interval_us(twin, ml.MAVLINK_MSG_ID_LOCAL_POSITION_NED) == 33333
    assert _interval_us(twin, ml.MAVLINK_MSG_ID_ODOMETRY) == 33333
    assert _interval_us(twin, ml.MAVLINK_MSG_ID_ALTITUDE) == 100000
    att, lpn = _rate_hz(twin, "ATTITUDE"), _rate_hz(twin, "LOCAL_POSITION_NED")
    assert att > lpn > 0, (att, lpn)
    hid = ml.MAVLINK_MSG_ID_HIGHRES_IMU
    assert twin.command(511, hid, 100000).result == ACCEPTED  # 10 Hz
    assert _interval_us(twin, hid) == 100000
    assert 0 < _rate_hz(twin, "HIGHRES_IMU", 0.5) <= 14  # 10 Hz, not the 50 Hz default
    assert twin.command(511, hid, -1).result == ACCEPTED
    assert _interval_us(twin, hid) == -1
    assert _rate_hz(twin, "HIGHRES_IMU", 0.5) == 0
    assert twin.command(511, hid, 0).result == ACCEPTED  # 0 restores the default
    assert _interval_us(twin, hid) == 20000
    assert twin.command(511, 9999, 100000).result == FAILED  # no such stream
    twin.drain()
    twin.client.mav.command_long_send(1, 1, 512, 0, ml.MAVLINK_MSG_ID_AUTOPILOT_VERSION, 0, 0, 0, 0, 0, 0)
    av = twin.recv("AUTOPILOT_VERSION")
    assert av.capabilities & ml.MAV_PROTOCOL_CAPABILITY_MAVLINK2
    assert twin.recv("COMMAND_ACK", 2.0, lambda m: m.command == 512).result == ACCEPTED  # after the message
    assert twin.command(512, 60000).result == FAILED


def test_commands_for_another_vehicle_fail_and_unknown_commands_are_unsupported(shared_twin):
    twin = shared_twin
    assert twin.command(400, 1.0, target_system=7).result == FAILED
    assert twin.command(400, 1.0, target_component=99).result == FAILED
    assert not twin.heartbeat().base_mode & MODE_FLAG_SAFETY_ARMED
    assert twin.command(31000).result == UNSUPPORTED  # MAV_CMD_USER_1
    assert twin.set_mode(MAIN_AUTO, 77) == TEMPORARILY_REJECTED  # "Unsupported auto mode"
    # navigator/takeoff.cpp: an AMSL takeoff altitude below home + MIS_TAKEOFF_ALT is raised
    assert twin.command(22, 0, 0, 0, math.nan, math.nan, math.nan, 2.0).result == ACCEPTED
    assert twin.recv("STATUSTEXT", 2.0, lambda m: "minimum takeoff altitude" in m.text) is not None


def test_a_ground_station_link_and_a_second_twin_at_the_same_time():
    with px4_twin(sysid=1) as a, px4_twin(sysid=2) as b:
        gcs = mavutil.mavlink_connection(f"udpin:127.0.0.1:{a.gcs_port}", source_system=254)
        try:
            hb = gcs.recv_match(type="HEARTBEAT", blocking=True, timeout=3.0)
            assert hb is not None and hb.get_srcSystem() == 1
            gcs.mav.heartbeat_send(6, 8, 0, 0, 0)
            assert a.arm() == ACCEPTED  # command on the offboard link, ACK on both links
            ack = gcs.recv_match(type="COMMAND_ACK", blocking=True, timeout=3.0)
            assert ack is not None and ack.command == 400 and ack.result == ACCEPTED
            assert b.heartbeat().get_srcSystem() == 2
            assert not b.heartbeat().base_mode & MODE_FLAG_SAFETY_ARMED
        finally:
            gcs.close()


def test_free_port_helper_gives_distinct_ports():
    ports = free_udp_ports(6)
    assert len(set(ports)) == 6
