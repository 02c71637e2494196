"""The ctbr rate loop flies body-rate setpoints like the firmware's PID does."""

import numpy as np
import pytest

from sim.contract import act_to_command, default_spec
from sim.dynamics import QuadSim
from sim.rate_control import RateController
from sim.vehicle import load_vehicle


@pytest.mark.parametrize("name", ["crazyflie", "x500"])
def test_rate_setpoints_are_tracked(name):
    vehicle = load_vehicle(name)
    sim = QuadSim.create(vehicle, 1, ground=False)
    sim.state.pos_w[0, 2] = 10.0
    sim.state.thrust_n[:] = sim.hover_thrust_n()
    rc = RateController(vehicle, 1)
    every = int(round(1000 / rc.rate_hz))
    setpoint = np.array([[0.5, -0.5, 0.3]])
    collective = np.array([vehicle.weight_n])
    for _ in range(int(2.0 * rc.rate_hz)):  # 2 s: PX4's default yaw-rate gain is slow
        thrust = rc.update(sim.state.omega_b, setpoint, collective, every / 1000)
        sim.step(thrust, every)
    np.testing.assert_allclose(sim.state.omega_b[0], setpoint[0], atol=0.1)


def test_mixer_output_stays_within_motor_limits():
    vehicle = load_vehicle("crazyflie")
    rc = RateController(vehicle, 4)
    thrust = rc.update(np.zeros((4, 3)), np.full((4, 3), 100.0), np.full(4, 10.0), 0.002)
    assert thrust.min() >= 0.0 and thrust.max() <= vehicle.max_thrust_n


def test_zero_rate_hover_command_gives_equal_motor_thrusts():
    vehicle = load_vehicle("x500")
    spec = default_spec(vehicle)
    cmd = act_to_command(np.array([[2 * vehicle.hover_thrust_fraction - 1, 0, 0, 0]]), spec, vehicle)
    thrust = RateController(vehicle, 1).update(np.zeros((1, 3)), cmd.body_rate_b, cmd.collective_thrust_n, 0.002)
    np.testing.assert_allclose(thrust[0], vehicle.weight_n / 4)
