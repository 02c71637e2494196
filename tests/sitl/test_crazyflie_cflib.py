"""The real cflib (udp:// driver) against twin processes: connect, TOCs, params, logs, watchdog."""

import threading
import time

import pytest
from cflib.crazyflie.log import LogConfig

from tests.sitl.conftest import connect_cflib, start_crazyflie_twin

LOG_NAMES = [f"stateEstimate.{n}" for n in ("x", "y", "z", "vx", "vy", "vz", "ax", "ay", "az", "roll",
                                              "pitch", "yaw", "qx", "qy", "qz", "qw")]
LOG_NAMES += [f"stateEstimateZ.{n}" for n in ("x", "y", "z", "vx", "vy", "vz", "quat", "rateRoll", "ratePitch", "rateYaw")]
LOG_NAMES += ["stabilizer.roll", "stabilizer.pitch", "stabilizer.yaw", "stabilizer.thrust", "gyro.x", "gyro.y",
              "gyro.z", "acc.x", "acc.y", "acc.z", "pm.vbat", "pm.vbatMV", "pm.state", "pm.batteryLevel",
              "motor.m1", "motor.m2", "motor.m3", "motor.m4", "supervisor.info", "sys.canfly", "sys.isFlying",
              "sys.isTumbled"]
PARAM_NAMES = ["stabilizer.controller", "stabilizer.estimator", "stabilizer.stop", "flightmode.stabModeRoll",
               "flightmode.stabModePitch", "flightmode.stabModeYaw", "motorPowerSet.enable", "motorPowerSet.m1",
               "motorPowerSet.m2", "motorPowerSet.m3", "motorPowerSet.m4", "commander.enHighLevel",
               "powerDist.idleThrust", "kalman.resetEstimation"]


@pytest.fixture(scope="module")
def shared_twin():
    """One twin for the tests that leave it flyable (each twin start costs seconds)."""
    with start_crazyflie_twin() as proc:
        yield proc


def toc_names(toc):
    return {f"{g}.{n}" for g, names in toc.toc.items() for n in names}


def test_cflib_connects_within_2_s_and_the_tocs_hold_the_names(shared_twin, tmp_path):
    start = time.monotonic()
    scf = connect_cflib(shared_twin.uri, rw_cache=str(tmp_path), timeout_s=2.0)
    try:
        assert time.monotonic() - start < 2.0
        assert scf.cf.platform.get_protocol_version() == 12
        assert set(LOG_NAMES) <= toc_names(scf.cf.log.toc)
        assert set(PARAM_NAMES) <= toc_names(scf.cf.param.toc)
        assert scf.cf.log.toc.get_element_by_complete_name("motor.m1").ctype == "uint32_t"
        assert scf.cf.param.toc.get_element_by_complete_name("cpu.flash").get_readable_access() == "RO"
        bits = scf.cf.supervisor.read_bitfield()  # supervisor port, protocol >= 12
        assert "Is armed" in scf.cf.supervisor.decode_bitfield(bits)
        assert "Can fly" in scf.cf.supervisor.decode_bitfield(bits)
        assert "Is locked" not in scf.cf.supervisor.decode_bitfield(bits)
    finally:
        scf.close_link()
    # cflib cached both TOCs by CRC; a second connection loads them from the cache
    cached = sorted(p.name for p in tmp_path.iterdir())
    assert len(cached) == 2 and all(name.endswith(".json") for name in cached)
    scf = connect_cflib(shared_twin.uri, rw_cache=str(tmp_path), timeout_s=2.0)
    try:
        assert set(LOG_NAMES) <= toc_names(scf.cf.log.toc)
    finally:
        scf.close_link()


def test_param_round_trip_and_read_only(shared_twin):
    scf = connect_cflib(shared_twin.uri)
    try:
        written = threading.Event()
        scf.cf.param.add_update_callback(group="commander", name="enHighLevel", cb=lambda name, value: value == "1" and written.set())
        scf.cf.param.set_value("flightmode.stabModeYaw", 1)
        scf.cf.param.set_value("powerDist.idleThrust", 1234)
        scf.cf.param.set_value("commander.enHighLevel", 1)  # writes are queued in order
        assert written.wait(5.0), "no write echo"
        scf.cf.param.set_value_raw("motorPowerSet.m3", 0x09, 777)  # set-by-name, no reply awaited
        with pytest.raises(AttributeError):
            scf.cf.param.set_value("cpu.flash", 1)
    finally:
        scf.close_link()
    scf = connect_cflib(shared_twin.uri)  # a fresh connection reads the values back
    try:
        assert scf.cf.param.get_value("flightmode.stabModeYaw") == "1"
        assert scf.cf.param.get_value("powerDist.idleThrust") == "1234"
        assert scf.cf.param.get_value("commander.enHighLevel") == "1"
        assert scf.cf.param.get_value("motorPowerSet.m3") == "777"
        assert scf.cf.param.get_value("cpu.flash") == "1024"
    finally:
        scf.close_link()


def collect(scf, names, period_ms, seconds):
    conf = LogConfig("t", period_ms)
    for n in names:
        conf.add_variable(n)
    samples = []
    conf.data_received_cb.add_callback(lambda ts, data, _: samples.append((time.monotonic(), ts, data)))
    scf.cf.log.add_config(conf)
    conf.start()
    time.sleep(seconds)
    conf.stop()
    conf.delete()
    return samples


def test_a_10_ms_log_block_delivers_95_to_105_samples_per_second(shared_twin):
    scf = connect_cflib(shared_twin.uri)
    try:
        samples = collect(scf, ["stateEstimate.z", "stateEstimate.vz", "pm.vbat", "motor.m1"], 10, 2.5)
    finally:
        scf.close_link()
    # Rate on the vehicle's clock (the 24-bit ms timestamps): what the firmware's log timer
    # delivers, independent of how promptly a busy test machine schedules this client.
    stamps = [ts for _, ts, _ in samples]
    rate = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1000.0)
    assert 95 <= rate <= 105
    assert all(b - a == 10 for a, b in zip(stamps, stamps[1:]))  # none lost, none doubled
    assert len(samples) > 150
    assert 3.0 < samples[-1][2]["pm.vbat"] <= 4.2


def test_two_twins_on_two_ports_at_once(shared_twin):
    with start_crazyflie_twin() as b:
        a = shared_twin
        assert a.port != b.port
        scf_a, scf_b = connect_cflib(a.uri), connect_cflib(b.uri)
        try:
            scf_a.cf.param.set_value("motorPowerSet.m2", 111)
            scf_b.cf.param.set_value("motorPowerSet.m2", 222)
            time.sleep(0.2)
            assert scf_a.cf.param.get_value("motorPowerSet.m2") == "111"
            assert scf_b.cf.param.get_value("motorPowerSet.m2") == "222"
        finally:
            scf_a.close_link()
            scf_b.close_link()
    assert b.returncode == 0  # SIGTERM ends a twin cleanly


def test_watchdog_levels_out_then_cuts_motors_2_s_after_the_last_setpoint(crazyflie_twin):
    scf = connect_cflib(crazyflie_twin.uri)
    try:
        cf = scf.cf
        conf = LogConfig("wd", 10)
        for n in ("motor.m1", "supervisor.info", "sitl.setpointAgeMs"):
            conf.add_variable(n)
        samples = []
        conf.data_received_cb.add_callback(lambda ts, data, _: samples.append(data))
        cf.log.add_config(conf)
        conf.start()
        cf.commander.send_setpoint(0, 0, 0, 0)  # unlock thrust
        end = time.monotonic() + 1.2
        while time.monotonic() < end:
            cf.commander.send_setpoint(0, 0, 0, 42000)
            time.sleep(0.01)
        time.sleep(2.6)
        conf.stop()
    finally:
        scf.close_link()
    flying = [d for d in samples if d["sitl.setpointAgeMs"] < 400]
    assert flying and min(d["motor.m1"] for d in flying) > 0
    levelled = [d for d in samples if 600 <= d["sitl.setpointAgeMs"] <= 1900]
    assert levelled and min(d["motor.m1"] for d in levelled) > 0  # levelled out on the last thrust
    cut = next(d["sitl.setpointAgeMs"] for d in samples if d["sitl.setpointAgeMs"] > 400 and d["motor.m1"] == 0)
    assert 2000 <= cut <= 2100  # supervisor runs at 100 Hz
    assert samples[-1]["supervisor.info"] & (1 << 6)  # locked until restart
