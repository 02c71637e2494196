"""Quarter turns about world z (train/symmetry.py): an exact symmetry of the hover task."""

import dataclasses

import numpy as np
import pytest

from sim.contract import SpecError
from sim.env import HoverTask, HoverTaskConfig
from sim.frames import quat_from_euler, quat_multiply
from sim.randomization import RealismConfig
from sim.vehicle import load_vehicle
from train.loop import make_spec
from train.symmetry import quarter_turn, turn_transitions

# R_z(+90 deg), ENU: east -> north
QUARTER_TURN_Z = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def _spec(vehicle_id: str, layout: str = "default", rate_hz: float = 50.0, state_history: int = 0):
    return make_spec(load_vehicle(vehicle_id), layout, "ctbr", rate_hz, HoverTaskConfig(),
                     state_history=state_history)


def test_four_quarter_turns_are_the_identity_and_nothing_else_moves():
    spec = _spec("x500")
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((5, spec.obs_dim)).astype(np.float32)
    turns = rng.integers(0, 4, 5)
    once = quarter_turn(obs, spec, turns)
    assert np.array_equal(quarter_turn(once, spec, 4 - turns), obs)
    assert np.array_equal(quarter_turn(obs, spec, np.zeros(5, int)), obs)
    body = [spec.obs_slice("omega_b"), spec.obs_slice("last_actions")]
    for sl in body:
        assert np.array_equal(once[:, sl], obs[:, sl])


def test_a_quarter_turn_turns_every_past_velocity_and_keeps_the_past_body_rates():
    spec = _spec("x500", "integral", state_history=3)
    obs = np.zeros((1, spec.obs_dim), np.float32)
    obs[0, spec.obs_slice("velocity_history_w")] = [1, 0, 0.5, 2, 0, 0, 0, 3, 0]
    obs[0, spec.obs_slice("omega_history_b")] = np.arange(9)
    out = quarter_turn(obs, spec, np.array([1]))
    assert out[0, spec.obs_slice("velocity_history_w")].tolist() == [0, 1, 0.5, 0, 2, 0, -3, 0, 0]
    assert out[0, spec.obs_slice("omega_history_b")].tolist() == list(range(9))


def test_a_quarter_turn_maps_east_to_north_and_turns_the_attitude():
    spec = _spec("x500")
    obs = np.zeros((1, spec.obs_dim), np.float32)
    obs[0, spec.obs_slice("position_error_w")] = [1.0, 0.0, 0.5]
    obs[0, spec.obs_slice("rotation_matrix_wb")] = np.eye(3).reshape(-1)
    out = quarter_turn(obs, spec, np.array([1]))
    assert out[0, spec.obs_slice("position_error_w")].tolist() == [0.0, 1.0, 0.5]
    assert np.array_equal(out[0, spec.obs_slice("rotation_matrix_wb")].reshape(3, 3), QUARTER_TURN_Z)


def test_extra_columns_after_the_observation_are_kept():
    """A privileged critic's replay rows hold body-frame airframe parameters after the observation."""
    spec = _spec("x500")
    rows = np.arange(spec.obs_dim + 10, dtype=np.float32)[None]
    out = quarter_turn(rows, spec, np.array([2]))
    assert np.array_equal(out[0, spec.obs_dim:], rows[0, spec.obs_dim:])


@pytest.mark.parametrize("vehicle_id, layout, state_history",
                         [("x500", "default", 0), ("crazyflie", "integral", 0), ("x500", "integral", 3)])
def test_the_simulator_agrees_a_turned_flight_is_the_turned_flight(vehicle_id, layout, state_history):
    """Fly one randomized airframe twice, the second start turned by 90 degrees about the vertical
    through the target: every observation of the second flight is the turned observation of the
    first, and the rewards are equal. This is what makes the augmentation a true transition."""
    vehicle = load_vehicle(vehicle_id)
    spec = _spec(vehicle_id, layout, rate_hz=100.0, state_history=state_history)
    realism = RealismConfig(sensor_noise=False)  # randomized airframe, exact state
    task = HoverTask(vehicle, spec, 2, HoverTaskConfig(realism=realism), seed=3)
    task.reset()
    sim = task.sim
    sim.params.put(np.array([False, True]), sim.params.take(np.array([0])))
    task.rate_ctrl_gains_from_params()  # the copied airframe's rate-loop draw (gain scale, P-only) too
    s0 = sim.state.take(np.array([0]))
    turned = s0.copy()
    target = task.target_w[0]
    turned.pos_w = target + (s0.pos_w - target) @ QUARTER_TURN_Z.T
    turned.vel_w = s0.vel_w @ QUARTER_TURN_Z.T
    turned.quat_wb = quat_multiply(quat_from_euler(np.zeros(1), np.zeros(1), np.full(1, np.pi / 2)), s0.quat_wb)
    sim.state.put(np.array([False, True]), turned)
    task.sync_firmware_state()  # PIDs, gyro filter and yaw setpoint as the placed vehicles have them
    task.state_history_fresh[:] = True  # both flights start here, their state history with them
    obs = task.observe()
    rng = np.random.default_rng(1)
    for _ in range(40):
        np.testing.assert_allclose(obs[1], quarter_turn(obs[:1], spec, np.array([1]))[0], atol=2e-5)
        action = np.tile(rng.uniform(-0.3, 0.3, (1, 4)), (2, 1))
        obs, reward, terminated, truncated, _ = task.step(action)
        assert reward[1] == pytest.approx(reward[0], abs=1e-6)
        assert terminated[0] == terminated[1] and not terminated.any()


def test_a_layout_with_a_field_it_cannot_turn_is_refused():
    spec = _spec("x500")
    odd = dataclasses.replace(spec, observation=spec.observation[:1] + (
        dataclasses.replace(spec.observation[1], name="heading_rad", size=9),) + spec.observation[2:])
    with pytest.raises(SpecError, match="heading_rad"):
        quarter_turn(np.zeros((1, odd.obs_dim), np.float32), odd, np.array([1]))


def test_a_transition_turns_as_one_and_every_quarter_turn_is_drawn():
    spec = _spec("x500")
    obs = np.zeros((2000, spec.obs_dim), np.float32)
    obs[:, spec.obs_slice("position_error_w")] = [1.0, 0.0, 0.0]
    turned, turned_next = turn_transitions(np.random.default_rng(0), obs, obs.copy(), spec)
    assert np.array_equal(turned, turned_next)
    xy = turned[:, spec.obs_slice("position_error_w")][:, :2]
    headings = {tuple(row) for row in np.round(xy).astype(int).tolist()}
    assert headings == {(1, 0), (0, 1), (-1, 0), (0, -1)}


def test_the_compiled_update_turns_rows_exactly_as_quarter_turn_does(cf_spec):
    """train.agent turns sampled rows inside the compiled step (train.augment_in_graph); it must be
    the same map, privileged columns kept, to the bit."""
    import numpy as np

    from train.agent import AgentConfig, DDPGAgent
    from train.symmetry import quarter_turn, turn_pairs

    priv = 3
    agent = DDPGAgent(cf_spec, AgentConfig(actor_hidden=(8,), critic_hidden=(8,), privileged_critic=True, jit=False),
                      privileged_dim=priv)
    agent.set_augmentation(turn_pairs=turn_pairs(cf_spec))
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((64, cf_spec.obs_dim + priv)).astype(np.float32)
    turns = rng.integers(0, 4, size=64)
    np.testing.assert_array_equal(agent._turn(rows, turns).numpy(), quarter_turn(rows, cf_spec, turns))
