"""Flying the twin with real cflib: a legacy thrust ramp lifts it, and the logged state is the
simulator's state. The twin runs in this process (a server thread) so the test can read the
simulator's truth next to what arrives over the wire."""

import time

import numpy as np
import pytest
from cflib.crazyflie.log import LogConfig

from sim.sitl.crazyflie.server import CrazyflieServer
from sim.sitl.crazyflie.twin import CrazyflieTwin
from tests.sitl.conftest import connect_cflib, serving


@pytest.fixture
def served_twin():
    twin = CrazyflieTwin()
    truth = {}
    # truth at the start of each tick, keyed by the tick count the log timestamp will show
    twin.tick_hooks.append(lambda t: truth.__setitem__(t.ticks, (t.sim.state.pos_w[0, 2], t.sim.state.vel_w[0, 2])))
    with serving(CrazyflieServer(twin, "127.0.0.1", 0)) as server:
        yield server, truth


def test_a_legacy_thrust_ramp_lifts_the_vehicle_and_the_log_matches_the_simulator(served_twin):
    server, truth = served_twin
    scf = connect_cflib(server.uri)
    try:
        cf = scf.cf
        conf = LogConfig("flight", 10)
        for n in ("stateEstimate.z", "stateEstimate.vz", "motor.m1", "sys.isFlying"):
            conf.add_variable(n)
        samples = []
        conf.data_received_cb.add_callback(lambda ts, data, _: samples.append((ts, data)))
        cf.log.add_config(conf)
        conf.start()
        cf.commander.send_setpoint(0, 0, 0, 0)
        # 1.5 s ramp 36000 -> 50900 at 100 Hz; with battery compensation the thrust is linear in the
        # command (motors.c, THRUST_MAX 0.1125 N at 65535), hover at ~38600
        for i in range(150):
            cf.commander.send_setpoint(0, 0, 0, int(36000 + 100 * i))
            time.sleep(0.01)
        cf.commander.send_setpoint(0, 0, 0, 0)
        time.sleep(0.1)
        conf.stop()
    finally:
        scf.close_link()
    z = np.array([d["stateEstimate.z"] for _, d in samples])
    assert z[0] == 0.0 and z.max() > 0.3
    assert any(d["sys.isFlying"] for _, d in samples)
    compared = 0
    for ts, d in samples:
        # the estimate is refreshed every 2 ms (500 Hz controller): truth of that tick
        k = (ts - 1) - ((ts - 1) % 2)
        if k in truth:
            z_true, vz_true = truth[k]
            assert d["stateEstimate.z"] == pytest.approx(z_true, abs=1e-5)
            assert d["stateEstimate.vz"] == pytest.approx(vz_true, abs=1e-5)
            compared += 1
    assert compared > 100
