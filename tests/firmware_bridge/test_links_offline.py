"""Link selection and wire encodings that need no vehicle: URI parsing, the refusal of motor
policies over MAVLink, the Crazyflie setpoint mapping and quaternion decompression."""

from __future__ import annotations

import math

import numpy as np
import pytest

from firmware_bridge.flight import check_link_for_spec
from firmware_bridge.links import LinkError, link_kind
from firmware_bridge.links.crazyflie import (
    CrazyflieLink, ctbr_to_manual_setpoint, manual_rate_packet, quat_decompress,
)
from firmware_bridge.links.mavlink import MavlinkLink, parse_mavlink_uri, px4_thrust_setpoint
from sim.contract import MotorCommand, act_to_command, default_spec, hover_action
from sim.errors import QuadhilError
from sim.frames import quat_normalize
from sim.vehicle import load_vehicle


@pytest.mark.parametrize("uri, kind", [
    ("radio://0/80/2M/E7E7E7E7E7", "cflib"), ("usb://0", "cflib"), ("udp://127.0.0.1:19850", "cflib"),
    ("udpin:0.0.0.0:14540", "mavlink"), ("udpout:10.0.0.2:14550", "mavlink"), ("tcp:127.0.0.1:5760", "mavlink"),
    ("serial:/dev/ttyAMA0:921600", "mavlink"),
])
def test_the_uri_picks_the_library(uri, kind):
    assert link_kind(uri) == kind


@pytest.mark.parametrize("uri", ["http://x", "/dev/ttyUSB0", "", "udp:127.0.0.1:1"])
def test_unknown_links_are_refused_with_the_accepted_forms(uri):
    with pytest.raises(LinkError, match="radio://"):
        link_kind(uri)


def test_serial_uri_needs_a_baud_rate():
    assert parse_mavlink_uri("serial:/dev/ttyAMA0:921600") == ("/dev/ttyAMA0", {"baud": 921600})
    with pytest.raises(LinkError, match="serial:/dev/DEVICE:BAUD"):
        MavlinkLink("serial:/dev/ttyAMA0")


def test_a_motors_policy_is_refused_over_mavlink_before_connecting():
    spec = default_spec(load_vehicle("x500"), action_mode="motors")
    with pytest.raises(QuadhilError, match="px4-nn"):
        check_link_for_spec("udpin:0.0.0.0:14540", spec)
    check_link_for_spec("udp://127.0.0.1:19850", default_spec(load_vehicle("crazyflie"), action_mode="motors"))


def test_crazyflie_hover_action_maps_to_hover_pwm_and_zero_rates():
    cf = load_vehicle("crazyflie")
    spec = default_spec(cf)
    sp = ctbr_to_manual_setpoint(act_to_command(hover_action(spec, cf)[None], spec, cf), cf)
    per_motor_n = cf.command_to_thrust(sp["thrust_pwm"] / 65535.0)
    assert 4 * per_motor_n == pytest.approx(cf.weight_n, rel=1e-6)
    assert sp["roll_rate_deg_s"] == sp["pitch_rate_deg_s"] == sp["yaw_rate_deg_s"] == 0.0
    assert sp["thrust_u16"] == round(sp["thrust_pwm"])


def _motor_power_link(vbat_v: float | None) -> CrazyflieLink:
    link = CrazyflieLink("udp://127.0.0.1:1")  # never connected: encode only
    cf = load_vehicle("crazyflie")
    link.prepare(default_spec(cf, action_mode="motors"), cf)
    link.battery_v = vbat_v
    return link


def _motor_command(thrust_n: np.ndarray) -> MotorCommand:
    cf = load_vehicle("crazyflie")
    return MotorCommand(thrust_n=thrust_n[None], thrust_fraction=thrust_n[None] / cf.max_thrust_n)


def test_motor_power_pwm_holds_its_thrust_on_a_sagging_cell_as_the_twin_delivers_it():
    """motorPowerSet replaces the PWM after the firmware's battery compensation (motors.c
    motorsSetRatio); the bridge scales it by 4.2 V / pm.vbat as quadhil's app does. Written to the
    twin's motorPowerSet parameters on a 3.7 V cell (the twin weakens raw PWM by (pm.vbat / 4.2 V)^2,
    the simulator's conservative battery model), it gives back most of the 22 % that unscaled PWM
    loses (the curve's linear term keeps a part: the app's own test says the same)."""
    import struct

    from tests.firmware_bridge.test_rotor_directions import _airborne_twin

    cf = load_vehicle("crazyflie")
    asked_n = np.full(4, 0.6 * cf.max_thrust_n)
    full = _motor_power_link(4.2).encode(_motor_command(asked_n))
    unknown = _motor_power_link(None).encode(_motor_command(asked_n))
    sagged = _motor_power_link(3.7).encode(_motor_command(asked_n))
    assert full == unknown  # no reading: the curve's own PWM
    assert sagged["m1_pwm"] == pytest.approx(full["m1_pwm"] * 4.2 / 3.7)

    def delivered(enc: dict) -> np.ndarray:
        """Motor thrust (N) of the twin after 0.3 s on motorPowerSet at 3.7 V."""
        twin = _airborne_twin()
        twin.battery.update = lambda *_: None
        twin.battery.vbat_v = 3.7
        for i in range(1, 5):
            twin.params.set(f"motorPowerSet.m{i}", int(round(enc[f"m{i}_pwm"])))
        twin.params.set("motorPowerSet.enable", 1)
        for k in range(300):
            if k % 10 == 0:  # the stock commander keeps a setpoint for the supervisor
                twin.commander.handle_generic(0, b"\x0b" + struct.pack("<fffHB", 0, 0, 0, 30000, 1), twin.now_s())
            twin.tick()
        return twin.sim.state.thrust_n[0].copy()

    unscaled, scaled = delivered(full) / asked_n, delivered(sagged) / asked_n
    assert np.all(unscaled == pytest.approx((3.7 / 4.2) ** 2, rel=1e-3))
    assert np.all(np.abs(scaled - 1.0) < 0.5 * (1.0 - unscaled)), scaled  # at least half the loss back


def test_motor_power_pwm_never_exceeds_full_scale():
    cf = load_vehicle("crazyflie")
    enc = _motor_power_link(3.0).encode(_motor_command(np.full(4, cf.max_thrust_n)))
    assert all(enc[f"m{i}_pwm"] == 65535.0 for i in range(1, 5))


def test_crazyflie_rates_go_out_in_deg_s_with_flu_signs():
    cf = load_vehicle("crazyflie")
    spec = default_spec(cf)
    a = np.array([[0.0, 0.1, -0.2, 0.3]])
    sp = ctbr_to_manual_setpoint(act_to_command(a, spec, cf), cf)
    assert sp["roll_rate_deg_s"] == pytest.approx(math.degrees(0.1 * 10.0))
    assert sp["pitch_rate_deg_s"] == pytest.approx(math.degrees(-0.2 * 10.0))  # cflib negates on the wire
    assert sp["yaw_rate_deg_s"] == pytest.approx(math.degrees(0.3 * 5.0))


def test_the_manual_rate_packet_is_what_cflib_would_send_but_with_the_full_thrust_range():
    import struct

    from cflib.crtp.crtpstack import CRTPPort

    cf = load_vehicle("crazyflie")
    spec = default_spec(cf)
    zero = ctbr_to_manual_setpoint(act_to_command(np.array([[-1.0, 0.1, -0.2, 0.3]]), spec, cf), cf)
    pk = manual_rate_packet(zero)
    assert pk.port == CRTPPort.COMMANDER_GENERIC and pk.channel == 0
    kind, roll, pitch, yaw, thrust, rate = struct.unpack("<BfffHB", bytes(pk.data))
    assert (kind, rate, thrust) == (11, 1, 0)  # thrust -1 is zero thrust, not cflib's 10001 floor
    assert roll == pytest.approx(zero["roll_rate_deg_s"]) and yaw == pytest.approx(zero["yaw_rate_deg_s"])
    assert pitch == pytest.approx(-zero["pitch_rate_deg_s"])  # cflib's (and the firmware's) pitch sign
    full = ctbr_to_manual_setpoint(act_to_command(np.array([[1.0, 0, 0, 0]]), spec, cf), cf)
    assert full["thrust_u16"] == 65535


def test_px4_thrust_is_the_collective_fraction():
    x5 = load_vehicle("x500")
    spec = default_spec(x5)
    cmd = act_to_command(hover_action(spec, x5)[None], spec, x5)
    assert px4_thrust_setpoint(cmd) == pytest.approx(x5.hover_thrust_fraction)


def test_quat_decompress_inverts_the_firmware_packing_to_within_its_9_bits():
    from sim.sitl.crazyflie.twin import compress_quaternion  # the twin packs like quatcompress.h

    rng = np.random.default_rng(3)
    for q in quat_normalize(rng.normal(size=(200, 4))):
        w, x, y, z = q
        d = np.array(quat_decompress(compress_quaternion(x, y, z, w)))
        assert np.allclose(d * np.sign(d @ [x, y, z, w]), [x, y, z, w], atol=3e-3)


def _blocks(link, t_ms, pos=(1.0, 2.0, 3.0), quat=(1.0, 0.0, 0.0, 0.0), gyro=(0.0, 0.0, 0.0), order=(0, 1, 2)):
    from firmware_bridge.links.crazyflie import BLOCKS

    values = {"posvel": (*pos, 0.1, 0.2, 0.3), "quat": quat, "gyro": gyro}
    for i in order:
        name, vars_ = BLOCKS[i]
        link._make_block_cb(name, vars_)(t_ms, dict(zip(vars_, values[name])), None)


def test_crazyflie_float_blocks_make_one_sample_per_firmware_tick_with_increasing_timestamps():
    from firmware_bridge.links.crazyflie import CrazyflieLink

    link = CrazyflieLink("udp://127.0.0.1:1")
    _blocks(link, 1000, order=(0, 1))
    assert link.telemetry.latest() is None  # gyro block missing: no sample yet
    _blocks(link, 1000, order=(2,), gyro=(90.0, 0.0, -90.0))
    s = link.telemetry.latest()
    assert s.seq == 1 and s.t_vehicle_s == 1.0 and np.allclose(s.pos_w, [1, 2, 3])
    assert np.allclose(s.omega_b, [math.pi / 2, 0, -math.pi / 2])  # gyro deg/s -> rad/s
    _blocks(link, 1000)  # the same firmware tick again: refused
    assert link.telemetry.latest().seq == 1 and link.telemetry.rejected == 1
    _blocks(link, 1010, order=(0,))
    _blocks(link, 1030, order=(1, 2))  # pieces 20 ms apart belong to different ticks
    assert link.telemetry.latest().seq == 1
    _blocks(link, 1030, order=(0,))
    assert link.telemetry.latest().seq == 2 and link.telemetry.latest().t_vehicle_s == 1.03


def test_crazyflie_float_blocks_carry_nan_through():
    from firmware_bridge.links.crazyflie import CrazyflieLink

    link = CrazyflieLink("udp://127.0.0.1:1")
    _blocks(link, 500, pos=(math.nan, 0.0, 0.0))
    assert math.isnan(link.telemetry.latest().pos_w[0])


@pytest.mark.parametrize("child_frame_id, vel_wire, vel_enu", [
    (1, (1.0, 2.0, -0.5), (2.0, 1.0, 0.5)),  # PX4 main: LOCAL_NED velocity (north 1, east 2, up 0.5)
    (12, (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),  # older PX4: BODY_FRD, nose north -> 1 m/s north
])
def test_odometry_velocity_is_read_in_the_frame_the_message_declares(child_frame_id, vel_wire, vel_enu):
    from pymavlink.dialects.v20 import common as mavlink

    mav = mavlink.MAVLink(None, srcSystem=1, srcComponent=1)
    q_ned_nose_north = [1.0, 0.0, 0.0, 0.0]
    nan21 = [math.nan] * 21
    msg = mav.odometry_encode(1_000_000, 1, child_frame_id, 0.0, 0.0, 0.0, q_ned_nose_north, *vel_wire, 0.0, 0.0, 0.0,
                              nan21, nan21, 0, 8, 0)
    msg = mavlink.MAVLink(None).decode(bytearray(msg.pack(mav)))
    link = MavlinkLink("udpin:127.0.0.1:0")
    link._handle(msg, 1.0)
    assert link.telemetry.latest().vel_w == pytest.approx(np.array(vel_enu), abs=1e-6)


def test_odometry_in_another_velocity_frame_is_dropped_not_guessed():
    from pymavlink.dialects.v20 import common as mavlink

    mav = mavlink.MAVLink(None, srcSystem=1, srcComponent=1)
    nan21 = [math.nan] * 21
    msg = mav.odometry_encode(1_000_000, 1, 20, 0.0, 0.0, 0.0, [1.0, 0.0, 0.0, 0.0], 1.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                              nan21, nan21, 0, 8, 0)  # MAV_FRAME_LOCAL_FRD
    msg = mavlink.MAVLink(None).decode(bytearray(msg.pack(mav)))
    link = MavlinkLink("udpin:127.0.0.1:0")
    link._handle(msg, 1.0)
    assert link.telemetry.latest() is None and link.odometry_rejected == 1
