"""Physics you can check by hand."""

import numpy as np
import pytest

from sim.dynamics import QuadSim
from sim.frames import quat_from_euler, quat_to_rotmat
from sim.randomization import RealismConfig, sample_params
from sim.vehicle import GRAVITY_MPS2, load_vehicle


@pytest.fixture(params=["crazyflie", "x500"])
def vehicle(request):
    return load_vehicle(request.param)


def airborne(vehicle, n=1, z=10.0, ground=False):
    sim = QuadSim.create(vehicle, n, ground=ground)
    sim.state.pos_w[:, 2] = z
    sim.state.on_ground[:] = False
    return sim


def test_hover_command_holds_altitude_for_10_s_within_1_mm(vehicle):
    sim = airborne(vehicle, z=1.0, ground=True)
    hover = sim.hover_thrust_n()
    sim.state.thrust_n[:] = hover
    sim.step(hover, 10_000)
    assert np.abs(sim.state.pos_w - [0.0, 0.0, 1.0]).max() < 1e-3
    assert not sim.state.crashed[0]


def test_free_fall_matches_g(vehicle):
    sim = airborne(vehicle)
    sim.params.drag_n_per_mps[:] = 0.0
    sim.step(np.zeros((1, 4)), 1000)  # 1 s with motors off
    np.testing.assert_allclose(sim.state.vel_w[0], [0, 0, -GRAVITY_MPS2], atol=1e-9)
    np.testing.assert_allclose(sim.state.pos_w[0, 2], 10.0 - 0.5 * GRAVITY_MPS2, atol=1e-9)


def test_pure_yaw_torque_gives_inverse_inertia_times_torque(vehicle):
    sim = airborne(vehicle)
    delta_n = 0.01 * vehicle.max_thrust_n
    hover = sim.hover_thrust_n()[0]
    cmd = hover + delta_n * vehicle.spin_sign  # cw rotors up, ccw down: no net force, pure +z torque
    sim.state.thrust_n[:] = cmd  # motors already at the command: no lag transient
    sim.step(cmd[None], 10)  # 10 ms
    tau_z = 4 * delta_n * vehicle.torque_to_thrust_m
    expected = tau_z / vehicle.inertia_kgm2[2] * 0.010
    np.testing.assert_allclose(sim.state.omega_b[0], [0, 0, expected], rtol=1e-9, atol=1e-12)


def test_torque_free_tumbling_conserves_angular_momentum_and_energy(vehicle):
    sim = airborne(vehicle, z=100.0)
    sim.params.drag_n_per_mps[:] = 0.0
    sim.state.omega_b[0] = [3.0, -2.0, 5.0]
    sim.state.quat_wb[0] = quat_from_euler(0.3, -0.2, 1.0)
    j = vehicle.inertia_kgm2

    def momentum_and_energy():
        r = quat_to_rotmat(sim.state.quat_wb[0])
        w = sim.state.omega_b[0]
        return r @ (j * w), 0.5 * np.sum(j * w * w)

    l0, e0 = momentum_and_energy()
    sim.step(np.zeros((1, 4)), 2000)
    l1, e1 = momentum_and_energy()
    np.testing.assert_allclose(l1, l0, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(e1, e0, rtol=1e-7)


def test_quaternion_stays_unit_norm(vehicle):
    sim = airborne(vehicle, n=8)
    rng = np.random.default_rng(1)
    sim.state.omega_b[:] = rng.uniform(-20, 20, (8, 3))
    sim.step(rng.uniform(0, vehicle.max_thrust_n, (8, 4)), 3000)
    np.testing.assert_allclose(np.linalg.norm(sim.state.quat_wb, axis=1), 1.0, atol=1e-12)


def test_motor_step_response_matches_time_constant(vehicle):
    sim = airborne(vehicle)
    cmd = np.full((1, 4), vehicle.max_thrust_n)
    steps = round(vehicle.tau_up_s * 1000)  # tau_up is a whole number of ms here
    sim.step(cmd, steps)
    np.testing.assert_allclose(sim.state.thrust_n[0], (1 - np.exp(-steps / 1000 / vehicle.tau_up_s)) * vehicle.max_thrust_n)
    np.testing.assert_allclose(sim.state.thrust_n[0] / vehicle.max_thrust_n, 1 - np.exp(-1), rtol=0.03)
    # falling uses the (slower) fall time constant
    sim.state.thrust_n[:] = vehicle.max_thrust_n
    sim.step(np.zeros((1, 4)), round(vehicle.tau_down_s * 1000))
    np.testing.assert_allclose(sim.state.thrust_n[0] / vehicle.max_thrust_n, np.exp(-1), rtol=0.03)


def test_batch_of_n_equals_n_single_vehicles_bit_for_bit(vehicle):
    n = 600  # above the parallel-kernel threshold: the batched path runs on all cores
    rng = np.random.default_rng(7)
    params = sample_params(vehicle, n, rng, RealismConfig())
    batch = airborne(vehicle, n).with_params(params)
    batch.state.omega_b[:] = rng.uniform(-5, 5, (n, 3))
    batch.state.vel_w[:] = rng.uniform(-1, 1, (n, 3))
    cmds = rng.uniform(0, vehicle.max_thrust_n, (5, n, 4))
    singles = []
    for i in range(n):
        s = airborne(vehicle, 1).with_params(params.take([i]))
        s.state = batch.state.take([i])
        singles.append(s)
    for cmd in cmds:
        batch.step(cmd, 20)
        for i, s in enumerate(singles):
            s.step(cmd[i : i + 1], 20)
    for i, s in enumerate(singles):
        for name in ("pos_w", "vel_w", "quat_wb", "omega_b", "thrust_n"):
            assert np.array_equal(getattr(batch.state, name)[i], getattr(s.state, name)[0]), (i, name)


def test_same_seed_same_trajectory(vehicle):
    def run(seed):
        rng = np.random.default_rng(seed)
        sim = airborne(vehicle, 16).with_params(sample_params(vehicle, 16, rng, RealismConfig()))
        sim.step(rng.uniform(0, vehicle.max_thrust_n, (16, 4)), 500)
        return sim.state.pos_w.copy()

    assert np.array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


class TestGround:
    def test_resting_vehicle_neither_sinks_nor_bounces(self, vehicle):
        sim = QuadSim.create(vehicle, 1)
        below_weight = np.full((1, 4), 0.9 * vehicle.weight_n / 4)
        for _ in range(100):
            sim.step(below_weight, 10)
            assert sim.state.pos_w[0, 2] == 0.0
            assert np.all(sim.state.vel_w[0] == 0.0)
        assert sim.state.on_ground[0] and not sim.state.crashed[0]

    def test_takes_off_only_when_thrust_exceeds_weight(self, vehicle):
        sim = QuadSim.create(vehicle, 1)
        sim.step(np.full((1, 4), 1.2 * vehicle.weight_n / 4), 1000)
        assert sim.state.pos_w[0, 2] > 0.05 and not sim.state.on_ground[0]

    def test_soft_landing_is_not_a_crash(self, vehicle):
        sim = airborne(vehicle, z=0.01, ground=True)
        sim.state.vel_w[0, 2] = -0.3
        sim.step(np.zeros((1, 4)), 100)
        assert sim.state.on_ground[0] and not sim.state.crashed[0]
        assert sim.state.pos_w[0, 2] == 0.0

    def test_hard_impact_is_a_crash(self, vehicle):
        sim = airborne(vehicle, z=0.01, ground=True)
        sim.state.vel_w[0, 2] = -(vehicle.crash_speed_mps + 0.5)
        sim.step(np.zeros((1, 4)), 20)
        assert sim.state.crashed[0]

    def test_landing_upside_down_is_a_crash(self, vehicle):
        sim = airborne(vehicle, z=0.001, ground=True)
        sim.state.quat_wb[0] = quat_from_euler(np.pi * 0.9, 0.0, 0.0)
        sim.step(np.zeros((1, 4)), 20)
        assert sim.state.crashed[0]


def test_thrust_command_of_wrong_shape_is_refused():
    sim = QuadSim.create(load_vehicle("crazyflie"), 2)
    with pytest.raises(ValueError, match=r"shape \(2, 4\)"):
        sim.step(np.zeros((4,)))
