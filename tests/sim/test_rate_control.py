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


def _wrench(vehicle, thrust_n):
    return thrust_n @ vehicle.allocation_matrix().T  # (N, 4): [T, tau_x, tau_y, tau_z]


@pytest.mark.parametrize("name", ["crazyflie", "x500"])
def test_mixer_reproduces_any_wrench_the_motors_can_make(name):
    """Inside the motors' range both firmware mixers are the plain inverse allocation. (PX4 mixes
    yaw last, so its check uses wrenches without yaw: a yaw-free mix outside the range is
    desaturated before yaw is added, as in PX4.)"""
    vehicle = load_vehicle(name)
    rng = np.random.default_rng(0)
    motors = rng.uniform(0.05, 0.95, (400, 4)) * vehicle.max_thrust_n
    w = _wrench(vehicle, motors)
    if vehicle.firmware == "px4":
        w[:, 3] = 0.0
        motors = w @ np.linalg.inv(vehicle.allocation_matrix()).T
        inside = np.all((motors >= 0) & (motors <= vehicle.max_thrust_n), axis=1)
        motors, w = motors[inside], w[inside]
        assert len(w) > 100
    out = RateController(vehicle, len(w)).mix(w[:, 0], w[:, 1:])
    np.testing.assert_allclose(out, motors, rtol=1e-9, atol=1e-9)


def test_px4_mixer_keeps_roll_pitch_torque_and_gives_up_thrust_when_a_motor_saturates():
    """ControlAllocationSequentialDesaturation, MC_AIRMODE 0: thrust is only ever reduced, and
    roll/pitch win over it; a per-motor clip would have cut the torque instead."""
    vehicle = load_vehicle("x500")
    rc = RateController(vehicle, 1)
    max_n = vehicle.max_thrust_n
    collective = np.array([3.6 * max_n])  # 90 % on every motor
    torque = np.array([[0.6, -0.4, 0.0]])  # needs +-0.86 N differentials per motor: over the top
    out = rc.mix(collective, torque)
    achieved = _wrench(vehicle, out)[0]
    assert out.max() <= max_n + 1e-12 and out.min() >= 0.0
    np.testing.assert_allclose(achieved[1:3], torque[0, :2], rtol=1e-9)  # roll/pitch kept exactly
    assert achieved[0] < collective[0]  # thrust paid for it
    low = rc.mix(np.array([0.2 * max_n]), np.array([[0.5, 0.0, 0.0]]))  # a motor would go below 0
    assert _wrench(vehicle, low)[0, 0] <= 0.2 * max_n + 1e-9  # never raises thrust (airmode off)


def test_px4_mixer_shrinks_roll_when_even_zero_thrust_cannot_make_it():
    vehicle = load_vehicle("x500")
    out = RateController(vehicle, 1).mix(np.array([2.0 * vehicle.max_thrust_n]), np.array([[50.0, 0.0, 0.0]]))
    achieved = _wrench(vehicle, out)[0]
    assert out.min() >= 0.0 and out.max() <= vehicle.max_thrust_n
    assert 0 < achieved[1] < 50.0


def test_crazyflie_cap_lowers_all_motors_by_the_excess():
    """powerDistributionCap: differences between motors survive, the top motor sits at max."""
    vehicle = load_vehicle("crazyflie")
    max_n = vehicle.max_thrust_n
    motors = np.array([[1.2, 1.0, 0.9, 1.1]]) * max_n
    w = _wrench(vehicle, motors)
    out = RateController(vehicle, 1).mix(w[:, 0], w[:, 1:])
    np.testing.assert_allclose(out, motors - 0.2 * max_n)


def test_px4_unit_torque_moves_each_motor_as_the_px4_allocator_does():
    """PX4 normalizes its mix (ControlAllocationPseudoInverse.cpp): on a quad-x a roll or pitch
    setpoint of 1 moves every motor by 1/sqrt(2) of its range, a yaw setpoint of 1 by its whole
    range. The rate loop's N*m per unit must reproduce that, or the simulated loop is softer than
    PX4's."""
    vehicle = load_vehicle("x500")
    rc = RateController(vehicle, 1)
    per_unit_nm = vehicle.rate_controller.kp_nm_per_rad_s / vehicle.rate_controller.firmware_kp
    for axis, expected_fraction in ((0, 2 ** -0.5), (1, 2 ** -0.5), (2, 1.0)):
        torque = np.zeros((1, 3))
        torque[0, axis] = per_unit_nm[axis]
        delta_n = rc.mixer @ np.concatenate([[0.0], torque[0]])
        np.testing.assert_allclose(np.abs(delta_n) / vehicle.max_thrust_n, expected_fraction, rtol=1e-9)


def test_px4_integral_fades_with_the_rate_error_as_rate_control_cpp_does():
    """I gain x (1 - (error / 400 deg/s)^2): full at small errors, none at 400 deg/s."""
    vehicle = load_vehicle("x500")
    dt_s = 1.0 / 400
    hover = np.array([vehicle.weight_n, vehicle.weight_n])
    rc = RateController(vehicle, 2)
    small, fade = 0.1, np.deg2rad(400.0)
    rc.update(np.zeros((2, 3)), np.array([[small, 0, 0], [fade, 0, 0]]), hover, dt_s)
    np.testing.assert_allclose(rc.integral[0, 0], small * (1 - (small / fade) ** 2) * dt_s)
    assert rc.integral[1, 0] == 0.0


def test_px4_integral_stops_growing_into_an_axis_the_motors_cannot_deliver():
    """At 5 % collective a 2 rad/s roll-rate error asks for more roll torque than the motors
    have: the allocator reports it and the integral stops growing that way (anti-windup)."""
    vehicle = load_vehicle("x500")
    dt_s = 1.0 / 400
    rc = RateController(vehicle, 1)
    low_thrust = np.array([0.05 * 4 * vehicle.max_thrust_n])
    rate_sp = np.array([[2.0, 0.0, 0.0]])
    rc.update(np.zeros((1, 3)), rate_sp, low_thrust, dt_s)
    assert rc.saturated_pos[0, 0] and not rc.saturated_neg[0, 0]
    held = rc.integral[0, 0]
    for _ in range(20):
        rc.update(np.zeros((1, 3)), rate_sp, low_thrust, dt_s)
    assert rc.integral[0, 0] == held
    # once the error turns around, the integral may unwind
    rc.update(np.zeros((1, 3)), -rate_sp, low_thrust, dt_s)
    assert rc.integral[0, 0] < held


def test_px4_mixer_pays_for_yaw_at_full_collective_with_collective():
    """mixYaw with MC_REDUCE_THRUST 1 (PX4's default): at full collective, yaw may take the outputs
    15 % over the top, then thrust alone comes down to fit. A saturated yaw demand (stopping a
    throw's yaw spin) so costs 15 % of the collective: the reason the x500's teacher lets the spin
    be while it needs all its thrust (train.baseline.CascadeGains.yaw_yield_thrust_fraction)."""
    vehicle = load_vehicle("x500")
    rc = RateController(vehicle, 2)
    max_n = vehicle.max_thrust_n
    full = np.full(2, 4.0 * max_n)
    out = rc.mix(full, np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 5.0]]))  # 5 N*m: far past yaw's reach
    np.testing.assert_allclose(out[0], max_n)
    up = vehicle.spin_sign > 0  # clockwise rotors: their reaction torque is +z
    np.testing.assert_allclose(out[1][up], max_n)
    np.testing.assert_allclose(out[1][~up], 0.7 * max_n)
    assert out[1].sum() == pytest.approx(0.85 * 4.0 * max_n)
    assert _wrench(vehicle, out[1:])[0, 3] > 0  # the yaw torque keeps its sign
