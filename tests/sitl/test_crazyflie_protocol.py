"""The twin's CRTP behaviour packet by packet, without sockets or real time (fast, exact)."""

import errno
import struct

import numpy as np
import pytest

from sim.sitl.crazyflie import crtp
from sim.sitl.crazyflie.supervisor import State
from sim.sitl.crazyflie.twin import CrazyflieTwin


@pytest.fixture
def twin():
    return CrazyflieTwin()


def ask(twin, port, channel, payload=b""):
    twin.handle_datagram(crtp.encode(port, channel, payload))
    out = [crtp.decode(d) for d in twin.outbox]
    twin.outbox.clear()
    return out


def log_id(twin, name):
    return twin.log.toc.ids[name]


def test_link_source_and_protocol_version(twin):
    (src,) = ask(twin, 15, 1, b"\0")
    assert src.data[:18] == b"Bitcraze Crazyflie" and len(src.data) == 30
    (ver,) = ask(twin, 13, 1, b"\0")
    assert struct.unpack("<Bi", ver.data) == (0, 12)


def test_echo_and_scan_probe_are_answered(twin):
    (echo,) = ask(twin, 15, 0, b"ping")
    assert (echo.port, echo.channel, echo.data) == (15, 0, b"ping")
    twin.handle_datagram(b"\xff")
    assert twin.outbox == [b"\xff"]


def test_log_toc_info_has_limits_and_items_by_16_bit_id(twin):
    (info,) = ask(twin, 5, 0, b"\x03")
    cmd, count, crc, max_blocks, max_ops = struct.unpack("<BHIBB", info.data)
    assert (cmd, count, crc, max_blocks, max_ops) == (3, len(twin.log.toc), twin.log.toc.crc, 16, 128)
    (item,) = ask(twin, 5, 0, struct.pack("<BH", 2, log_id(twin, "stateEstimate.z")))
    assert item.data[4:] == b"stateEstimate\0z\0" and item.data[3] == 7  # float
    (out_of_range,) = ask(twin, 5, 0, struct.pack("<BH", 2, 0xFFF0))
    assert out_of_range.data == b"\x02"


def test_log_block_errors_follow_the_firmware(twin):
    z = struct.pack("<BH", 7, log_id(twin, "stateEstimate.z"))
    assert ask(twin, 5, 1, bytes((6, 1)) + z)[0].data == bytes((6, 1, 0))
    assert ask(twin, 5, 1, bytes((6, 1)) + z)[0].data == bytes((6, 1, errno.EEXIST))
    assert ask(twin, 5, 1, bytes((7, 9)) + z)[0].data == bytes((7, 9, errno.ENOENT))
    assert ask(twin, 5, 1, bytes((3, 9, 1)))[0].data == bytes((3, 9, errno.ENOENT))
    seven_floats = z * 7  # 28 bytes > 26
    assert ask(twin, 5, 1, bytes((6, 2)) + seven_floats)[0].data == bytes((6, 2, errno.E2BIG))
    assert ask(twin, 5, 1, bytes((6, 3)) + struct.pack("<BH", 7, 0xFFF0))[0].data == bytes((6, 3, errno.ENOENT))
    for block in range(4, 4 + 13):
        ask(twin, 5, 1, bytes((6, block)) + z)
    assert ask(twin, 5, 1, bytes((6, 99)) + z)[0].data == bytes((6, 99, errno.ENOMEM))
    assert ask(twin, 5, 1, bytes((0, 1)))[0].data == bytes((0, 1, errno.ENOEXEC))  # v1 create
    assert ask(twin, 5, 1, bytes((2, 1)))[0].data == bytes((2, 1, 0))
    assert ask(twin, 5, 1, bytes((5,)))[0].data[2] == 0
    assert twin.log.blocks == {}


def test_log_data_has_24_bit_ms_timestamp_and_converts_types(twin):
    twin.sim.state.pos_w[0] = (0.5, -0.25, 1.5)
    twin._estimate()
    z_mm_as_int16 = struct.pack("<BH", 5, log_id(twin, "stateEstimate.z"))  # fetch float as int16
    x_fp16 = struct.pack("<BH", 8, log_id(twin, "stateEstimate.x"))
    ask(twin, 5, 1, bytes((6, 5)) + z_mm_as_int16 + x_fp16)
    ask(twin, 5, 1, bytes((3, 5, 1)))  # 10 ms
    data = []
    for _ in range(30):
        twin.tick()
        data += [crtp.decode(d) for d in twin.outbox if d[0] >> 4 == 5]
        twin.outbox.clear()
    assert len(data) == 3
    ts = [d.data[1] | d.data[2] << 8 | d.data[3] << 16 for d in data]
    assert np.diff(ts).tolist() == [10, 10]
    z_int, x_half = struct.unpack("<he", data[0].data[4:])
    assert z_int == 1 and x_half == pytest.approx(0.5, abs=1e-3)  # 1.5 m truncated as C does


def test_param_read_write_echo_read_only_and_set_by_name(twin):
    pid = twin.params.id_of("motorPowerSet.m1")
    (read,) = ask(twin, 2, 1, struct.pack("<H", pid))
    assert read.data == struct.pack("<HBH", pid, 0, 0)
    write = struct.pack("<HH", pid, 4321)
    assert ask(twin, 2, 2, write)[0].data == write  # exact echo
    assert twin.params.get("motorPowerSet.m1") == 4321
    ro = twin.params.id_of("cpu.flash")
    assert ask(twin, 2, 2, struct.pack("<HH", ro, 1)) == []  # silently dropped
    assert twin.params.get("cpu.flash") == 1024
    assert ask(twin, 2, 1, struct.pack("<H", 0xFFF0))[0].data == struct.pack("<HB", 0xFFF0, errno.ENOENT)
    by_name = b"\0flightmode\0stabModeRoll\0" + bytes((0x08, 0))
    assert ask(twin, 2, 3, by_name)[0].data == b"\0flightmode\0stabModeRoll\0\0"
    assert twin.params.get("flightmode.stabModeRoll") == 0
    assert ask(twin, 2, 3, b"\0cpu\0flash\0" + bytes((0x09, 1, 0)))[0].data[-1] == errno.EACCES
    assert ask(twin, 2, 3, b"\0cpu\0flash\0" + bytes((0x08, 1)))[0].data[-1] == errno.EINVAL
    assert ask(twin, 2, 3, b"\0nope\0x\0" + bytes((0x08, 1)))[0].data[-1] == errno.ENOENT


def test_memory_count_is_zero(twin):
    assert ask(twin, 4, 0, b"\x01")[0].data == b"\x01\x00"


def test_bad_datagrams_are_counted_and_ignored(twin):
    before = twin.bad_packets
    for bad in (b"", bytes(32), bytes((0x30,)) + b"short", bytes((0xB0, 1)), bytes((0x50,)),
                bytes((0x71, 9)), bytes((0x20, 1)), bytes((0xD3, 0))):
        twin.handle_datagram(bad)
    assert twin.bad_packets - before == 8
    assert twin.outbox == []


def rpyt(thrust, roll=0.0, pitch=0.0, yawrate=0.0):
    return crtp.encode(3, 0, struct.pack("<fffH", roll, pitch, yawrate, thrust))


def run_ms(twin, ms, datagram=None, every_ms=10):
    for i in range(ms):
        if datagram is not None and i % every_ms == 0:
            twin.handle_datagram(datagram)
        twin.tick()


def test_thrust_is_locked_until_a_zero_thrust_packet(twin):
    run_ms(twin, 300, rpyt(40000))
    assert twin.motor_pwm.max() == 0
    twin.handle_datagram(rpyt(0))
    run_ms(twin, 300, rpyt(40000))
    assert twin.motor_pwm.min() > 30000
    run_ms(twin, 300, rpyt(900))  # below MIN_THRUST is zero
    assert twin.motor_pwm.max() == 0


def test_watchdog_levels_out_after_500_ms_and_locks_after_2_s(twin):
    twin.handle_datagram(rpyt(0))
    run_ms(twin, 1500, rpyt(45000))
    assert twin.supervisor.state == State.FLYING and twin.sim.state.pos_w[0, 2] > 0.1
    run_ms(twin, 600)
    assert twin.supervisor.state == State.WARNING_LEVEL_OUT and twin.motor_pwm.min() > 0
    run_ms(twin, 1450)
    assert twin.supervisor.state == State.LOCKED and twin.motor_pwm.max() == 0
    run_ms(twin, 500, rpyt(0))
    run_ms(twin, 500, rpyt(45000))
    assert twin.motor_pwm.max() == 0  # locked until restart


def test_manual_setpoint_with_rate_flag_flies_body_rates(twin):
    # cflib send_setpoint_manual(roll, pitch, yawrate, thrust%, rate=True) sends -pitch
    from sim.frames import quat_to_euler

    pk = crtp.encode(7, 0, struct.pack("<BfffHB", 11, 0.0, 0.0, 90.0, 40000, 1))
    # yaw in velocity mode moves a yaw-angle setpoint at 90 deg/s (controller_pid.c); with the
    # yaw-angle PID and the motor lag the rate may ring about it; the angle follows it
    run_ms(twin, 600, pk)
    yaw0 = np.degrees(quat_to_euler(twin.sim.state.quat_wb[0])[2])
    run_ms(twin, 1000, pk)
    yaw1 = np.degrees(quat_to_euler(twin.sim.state.quat_wb[0])[2])
    assert (yaw1 - yaw0) / 1.0 == pytest.approx(90.0, abs=15.0)
    twin = CrazyflieTwin()  # pitch from rest, as a fresh flight
    run_ms(twin, 400, crtp.encode(7, 0, struct.pack("<BfffHB", 11, 0.0, 0.0, 0.0, 40000, 1)))
    pk = crtp.encode(7, 0, struct.pack("<BfffHB", 11, 0.0, -60.0, 0.0, 40000, 1))
    # the rate PID may overshoot with the motor lag: the mean rate is the command
    run_ms(twin, 100, pk)
    pitch0 = np.degrees(quat_to_euler(twin.sim.state.quat_wb[0])[1])
    run_ms(twin, 300, pk)
    pitch1 = np.degrees(quat_to_euler(twin.sim.state.quat_wb[0])[1])
    assert (pitch1 - pitch0) / 0.3 == pytest.approx(60.0, abs=15.0)


def test_supervisor_port_arming_bitfield_and_emergency_stop():
    twin = CrazyflieTwin(__import__("sim.sitl.crazyflie.twin", fromlist=["TwinConfig"]).TwinConfig(auto_arm=False))
    run_ms(twin, 50)
    (bits,) = ask(twin, 9, 0, b"\x0c")
    assert bits.data[0] == 0x8C and struct.unpack("<H", bits.data[1:])[0] & 0b11 == 0b01  # can arm, not armed
    assert ask(twin, 9, 1, b"\x01\x01")[0].data == bytes((0x81, 1, 1))
    run_ms(twin, 50)
    assert twin.supervisor.state == State.READY_TO_FLY
    ask(twin, 9, 1, b"\x03")
    run_ms(twin, 50)
    assert twin.supervisor.is_locked
    assert struct.unpack("<H", ask(twin, 9, 0, b"\x0c")[0].data[1:])[0] & (1 << 6)


def test_motor_power_set_overrides_the_controller(twin):
    for name, value in (("m1", 20000), ("m3", 30000), ("enable", 1)):
        pid = twin.params.id_of(f"motorPowerSet.{name}")
        ask(twin, 2, 2, struct.pack("<HH" if name != "enable" else "<HB", pid, value))
    run_ms(twin, 20)
    pwm = twin.motor_pwm
    assert pwm[0] == pytest.approx(20000, abs=2) and pwm[2] == pytest.approx(30000, abs=2) and pwm[1] == 0


def test_battery_sags_under_load(twin):
    run_ms(twin, 20)
    idle_v = twin.battery.vbat_v
    twin.handle_datagram(rpyt(0))
    run_ms(twin, 300, rpyt(50000))
    assert twin.battery.vbat_v < idle_v - 0.3
    assert twin.battery.current_a > 2.0


def test_state_estimate_pitch_has_the_legacy_sign(twin):
    from sim.frames import quat_from_euler

    # nose up is a negative rotation about the FLU y axis; the firmware logs it as positive pitch
    twin.sim.state.quat_wb[0] = quat_from_euler(0.0, np.radians(-10.0), 0.0)
    twin._estimate()
    roll, pitch, yaw = twin.est_rpy_deg
    assert pitch == pytest.approx(10.0) and roll == pytest.approx(0.0, abs=1e-9)


def test_notify_setpoint_stop_keeps_the_setpoint_until_the_watchdog(twin):
    twin.handle_datagram(rpyt(0))
    run_ms(twin, 500, rpyt(42000))
    twin.handle_datagram(crtp.encode(7, 1, struct.pack("<BI", 0, 0)))
    run_ms(twin, 300)
    assert twin.motor_pwm.min() > 0 and twin.supervisor.state == State.FLYING
    run_ms(twin, 1800)
    assert twin.supervisor.is_locked


def fly(twin, ms, thrust=40000):  # hover is ~38600 (battery compensation: THRUST_MAX at 65535)
    twin.handle_datagram(rpyt(0))
    run_ms(twin, ms, rpyt(thrust))


def test_same_seed_same_flight_and_noise_only_in_the_estimate():
    from sim.sitl.crazyflie.twin import TwinConfig

    a, b = CrazyflieTwin(TwinConfig(seed=3, noise=True)), CrazyflieTwin(TwinConfig(seed=3, noise=True))
    fly(a, 800)
    fly(b, 800)
    np.testing.assert_array_equal(a.sim.state.pos_w, b.sim.state.pos_w)
    assert a.est_pos != a.sim.state.pos_w[0].tolist()  # the estimate is noisy...
    np.testing.assert_allclose(a.est_pos, a.sim.state.pos_w[0], atol=0.02)  # ...around the truth


def test_wind_pushes_a_hovering_twin_downwind_and_start_sets_the_position():
    from sim.sitl.crazyflie.twin import TwinConfig

    calm = CrazyflieTwin(TwinConfig(start_m=(1.0, 2.0, 0.0)))
    windy = CrazyflieTwin(TwinConfig(start_m=(1.0, 2.0, 0.0), wind_mps=2.0))
    assert calm.est_pos == [1.0, 2.0, 0.0]
    fly(calm, 1500)
    fly(windy, 1500)
    assert windy.sim.state.vel_w[0, 0] > calm.sim.state.vel_w[0, 0] + 0.05
