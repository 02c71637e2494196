"""The hover task: Gymnasium API, reproducibility, termination vs truncation, success."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim  # noqa: F401  (registers quadhil/Hover-v0)
from sim.contract import default_spec, hover_action
from sim.env import HoverEnv, HoverTask, HoverTaskConfig, HoverVecEnv
from sim.randomization import RealismConfig
from sim.vehicle import load_vehicle


@pytest.mark.filterwarnings("ignore:.*Box observation space.*")
def test_single_env_passes_gymnasium_checker():
    env = gym.make("quadhil/Hover-v0")
    check_env(env.unwrapped, skip_render_check=True)


def rollout(seed, n=8, ticks=150, vehicle="crazyflie"):
    env = HoverVecEnv(vehicle, n, seed=seed)
    obs, _ = env.reset()
    rng = np.random.default_rng(0)
    trace = [obs]
    for _ in range(ticks):
        obs, *_ = env.step(rng.uniform(-1, 1, (n, 4)))
        trace.append(obs)
    return np.array(trace)


def test_same_seed_same_trajectory():
    np.testing.assert_array_equal(rollout(5), rollout(5))
    assert not np.array_equal(rollout(5), rollout(6))


def perfect_start(env: HoverVecEnv):
    """Put every vehicle at the target, level and at rest (what a perfect policy reaches)."""
    task = env.task
    s = task.sim.state
    s.pos_w[:] = task.target_w
    s.vel_w[:] = 0.0
    s.omega_b[:] = 0.0
    s.quat_wb[:] = [1.0, 0.0, 0.0, 0.0]
    s.thrust_n[:] = task.sim.hover_thrust_n()
    task.sync_firmware_state()


@pytest.mark.parametrize("vehicle", ["crazyflie", "x500"])
def test_holding_hover_at_target_until_the_time_limit_is_a_truncated_success(vehicle):
    config = HoverTaskConfig(realism=RealismConfig.off())
    env = HoverVecEnv(vehicle, 4, config=config, seed=0)
    env.reset()
    perfect_start(env)
    action = np.tile(hover_action(env.spec, env.task.vehicle), (4, 1))
    for tick in range(env.task.max_ticks):
        obs, reward, terminated, truncated, info = env.step(action)
        if tick < env.task.max_ticks - 1:
            assert not (terminated | truncated).any()
    assert truncated.all() and not terminated.any()
    assert info["success"].all()
    assert info["_final_obs"].all()
    np.testing.assert_allclose(info["final_obs"][:, :3], 0.0, atol=1e-3)  # the ended episode, at target
    assert np.abs(obs[:, :3]).max() > 1e-3  # the returned obs is already a new random start


def test_crash_is_terminated_with_penalty_not_truncated():
    config = HoverTaskConfig(realism=RealismConfig.off())
    env = HoverVecEnv("crazyflie", 2, config=config, seed=0)
    env.reset()
    ended = np.zeros(2, dtype=bool)
    for _ in range(300):  # motors off: both fall to the ground
        obs, reward, terminated, truncated, info = env.step(np.full((2, 4), -1.0))
        assert not truncated.any()
        for i in np.flatnonzero(terminated & ~ended):
            assert info["crashed"][i] and not info["success"][i]
            assert reward[i] == -config.reward.termination_penalty
        ended |= terminated
    assert ended.all()


def test_leaving_the_box_terminates():
    config = HoverTaskConfig(realism=RealismConfig.off(), bounds_m=1.2)
    env = HoverVecEnv("x500", 1, config=config, seed=0)
    env.reset()
    perfect_start(env)
    env.task.sim.state.vel_w[:] = [3.0, 0.0, 0.0]
    action = np.tile(hover_action(env.spec, env.task.vehicle), (1, 1))
    for _ in range(100):
        _, _, terminated, _, info = env.step(action)
        if terminated.any():
            break
    assert terminated[0] and info["out_of_bounds"][0]


def test_reset_draws_starts_within_the_task_ranges():
    config = HoverTaskConfig()
    env = HoverVecEnv("crazyflie", 512, config=config, seed=1)
    env.reset()
    s = env.task.sim.state
    err = s.pos_w - env.task.target_w
    assert np.abs(err[:, :2]).max() <= 1.0 and np.abs(s.vel_w).max() <= 1.0
    assert np.abs(s.omega_b).max() <= 5.0
    tilt = np.degrees(np.arccos(1 - 2 * (s.quat_wb[:, 1] ** 2 + s.quat_wb[:, 2] ** 2)))
    assert tilt.max() <= 60.0 + 1e-9 and tilt.max() > 45.0


def test_action_latency_delays_the_applied_command():
    def z_after(latency, ticks):
        config = HoverTaskConfig(realism=RealismConfig(randomize=False, sensor_noise=False, latency_ticks=latency))
        env = HoverVecEnv("crazyflie", 1, config=config, seed=0)
        env.reset()
        perfect_start(env)
        for _ in range(ticks):
            env.step(np.array([[1.0, 0.0, 0.0, 0.0]]))  # full thrust up, no rotation
        return env.task.sim.state.pos_w[0, 2]

    z0 = HoverTaskConfig().target_w[2]
    assert z_after(0, 5) > z0 + 1e-4
    assert abs(z_after(6, 5) - z0) < 1e-6  # still flying the hover command queued at reset


def test_latency_range_draws_a_latency_per_episode():
    config = HoverTaskConfig(realism=RealismConfig(randomize=False, sensor_noise=False, latency_ticks=0,
                                                   latency_ticks_max=2))
    env = HoverVecEnv("crazyflie", 300, config=config, seed=0)
    env.reset()
    assert set(np.unique(env.task.latency_env)) == {0, 1, 2}
    perfect_start(env)
    for _ in range(5):
        env.step(np.tile([1.0, 0.0, 0.0, 0.0], (300, 1)))  # full thrust, no rotation
    z = env.task.sim.state.pos_w[:, 2]
    lat = env.task.latency_env
    assert z[lat == 0].min() > z[lat == 2].max()  # a longer delay climbs later


def test_sensor_noise_changes_what_the_policy_sees_not_the_vehicle():
    noisy = HoverVecEnv("crazyflie", 1, config=HoverTaskConfig(realism=RealismConfig(randomize=False)), seed=0)
    obs, _ = noisy.reset()
    clean = noisy.task.sim.state.pos_w - noisy.task.target_w
    assert 0 < np.abs(obs[0, :3] - np.clip(clean[0], -1, 1)).max() < 0.05


def test_single_env_step_types():
    env = HoverEnv("x500")
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert isinstance(reward, float) and isinstance(terminated, bool) and isinstance(truncated, bool)
    assert isinstance(info["success"], bool)


def test_running_envs_keep_their_observation_when_another_env_autoresets():
    """With sensor noise on, the obs returned for a running env equals its row of final_obs:
    the transition (s, a, r, s') a trainer stores is the one the agent then acts from."""
    env = HoverVecEnv("crazyflie", 3, seed=0)
    env.reset()
    env.task.tick[0] = env.task.max_ticks - 1  # env 0 reaches the time limit on the next step
    obs, _, _, truncated, info = env.step(np.tile(env.task.hover, (3, 1)))
    assert truncated[0] and not info["_final_obs"][1:].any()
    np.testing.assert_array_equal(obs[1:], info["final_obs"][1:])
    assert not np.array_equal(obs[0], info["final_obs"][0])


def test_position_integral_starts_at_zero_and_advances_once_per_tick():
    """Layout "integral": each episode starts from zero and every control tick adds error * dt,
    the same rule the bridge applies (sim.contract.integrate_position_error)."""
    from sim.contract import SPEC_LAYOUTS, hover_action
    from sim.vehicle import load_vehicle

    env_vehicle = load_vehicle("x500")
    config = HoverTaskConfig(realism=RealismConfig(randomize=False, sensor_noise=False))
    env = HoverVecEnv(env_vehicle, 2, spec=SPEC_LAYOUTS["integral"](env_vehicle), config=config, seed=0)
    obs, _ = env.reset()
    sl = env.task.spec.obs_slice("position_error_integral_w")
    perfect_start(env)
    env.task.sim.state.pos_w[:] += [0.1, 0.0, 0.0]
    env.task.pos_integral[:] = 0.0
    for _ in range(20):
        obs, *_ = env.step(np.tile(hover_action(env.task.spec, env_vehicle), (2, 1)))
    assert 0.015 < obs[0, sl][0] < 0.021  # ~0.1 m for 20 ticks of 10 ms, drifting a little
    env.task.reset(np.array([True, False]))
    assert np.all(env.task.pos_integral[0] == 0.0) and env.task.pos_integral[1, 0] > 0.015


def test_a_task_pickled_before_the_integral_existed_still_loads():
    """Training checkpoints pickle the task; one written by an older quadhil (no pos_integral)
    must resume, not fail on the first observation."""
    import pickle

    env = HoverVecEnv("crazyflie", 3, seed=0)
    env.reset()
    state = dict(env.task.__dict__)
    del state["pos_integral"]
    old = object.__new__(type(env.task))
    old.__dict__.update(state)
    task = pickle.loads(pickle.dumps(old))
    assert task.pos_integral.shape == (3, 3) and task.observe().shape == (3, env.task.spec.obs_dim)


def test_the_state_history_holds_the_estimates_of_the_ticks_before_and_restarts_with_an_episode():
    """What the bridge keeps (firmware_bridge.flight): an episode's first observation sees no motion
    before it; each step's observation holds the estimates the previous observations showed."""
    from sim.contract import integral_spec

    vehicle = load_vehicle("x500")
    spec = integral_spec(vehicle, control_rate_hz=50.0, state_history=2)
    task = HoverTask(vehicle, spec, 3, HoverTaskConfig(), seed=4)  # sensor noise on: estimates, not truth
    vel, omega = spec.obs_slice("velocity_w"), spec.obs_slice("omega_b")
    vel_h, omega_h = spec.obs_slice("velocity_history_w"), spec.obs_slice("omega_history_b")
    obs = [task.reset()]
    np.testing.assert_array_equal(obs[0][:, vel_h], np.tile(obs[0][:, vel], 2))
    np.testing.assert_array_equal(obs[0][:, omega_h], np.tile(obs[0][:, omega], 2))
    for _ in range(3):
        obs.append(task.step(np.tile(hover_action(spec, vehicle), (3, 1)))[0])
    np.testing.assert_array_equal(obs[3][:, vel_h], np.concatenate([obs[2][:, vel], obs[1][:, vel]], axis=1))
    np.testing.assert_array_equal(obs[3][:, omega_h], np.concatenate([obs[2][:, omega], obs[1][:, omega]], axis=1))
    again = task.reset(np.array([False, True, False]))
    np.testing.assert_array_equal(again[1, vel_h], np.tile(again[1, vel], 2))
    # the envs not restarted are observed again but not advanced (HoverVecEnv keeps their step's
    # observation): their next step still sees the step before as the newest past tick
    nxt = task.step(np.tile(hover_action(spec, vehicle), (3, 1)))[0]
    np.testing.assert_array_equal(nxt[[0, 2]][:, vel_h], np.concatenate([obs[3][:, vel], obs[2][:, vel]],
                                                                         axis=1)[[0, 2]])
    np.testing.assert_array_equal(nxt[1, vel_h], np.tile(again[1, vel], 2))


def test_privileged_state_is_zero_for_the_nominal_airframe_and_reads_the_randomized_one():
    """A critic-only view of the hidden airframe: 0 = nominal, log ratios scaled to about unit size."""
    spec = default_spec(load_vehicle("x500"))
    nominal = HoverTask(load_vehicle("x500"), spec, 4, HoverTaskConfig(realism=RealismConfig.off()), seed=0)
    nominal.reset()
    assert nominal.privileged_state().shape == (4, HoverTask.PRIVILEGED_DIM)
    np.testing.assert_allclose(nominal.privileged_state(), 0.0, atol=1e-6)
    task = HoverTask(load_vehicle("x500"), spec, 64, HoverTaskConfig(realism=RealismConfig(latency_ticks_max=1)), seed=1)
    task.reset()
    priv, p, v = task.privileged_state(), task.sim.params, task.vehicle
    np.testing.assert_allclose(priv[:, 0], np.log(p.mass_kg / v.mass_kg) / 0.1, rtol=1e-5)
    np.testing.assert_allclose(priv[:, 1:5], np.log(p.thrust_gain) / 0.1, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(priv[:, 9], task.latency_env)
    assert np.abs(priv).max() < 5.0  # unit scale over the vehicle file's ranges
    before = priv.copy()
    task.step(np.tile(task.hover, (64, 1)))
    np.testing.assert_array_equal(task.privileged_state(), before)  # constant within an episode
    task.reset(np.arange(64) < 32)
    assert not np.allclose(task.privileged_state()[:32, 0], before[:32, 0])  # a new episode, a new airframe
    np.testing.assert_array_equal(task.privileged_state()[32:], before[32:])


def test_a_yaw_command_cost_on_a_motor_level_task_is_refused_naming_it():
    import dataclasses

    from sim.errors import QuadhilError
    from sim.reward import RewardWeights

    vehicle = load_vehicle("crazyflie")
    config = HoverTaskConfig(reward=dataclasses.replace(RewardWeights(), yaw_command=1.0))
    with pytest.raises(QuadhilError, match="reward.yaw_command prices the ctbr yaw-rate command"):
        HoverTask(vehicle, default_spec(vehicle, "motors"), 4, config, seed=0)
    HoverTask(vehicle, default_spec(vehicle, "ctbr"), 4, config, seed=0)  # where it means the yaw command


def test_replay_flies_a_recorded_episode_again_exactly():
    """train.ceiling re-flies failed episodes: another task given the airframe, start and latency a
    reset drew sees the same observation and, under the same actions, the same flight."""
    cf = load_vehicle("crazyflie")
    spec = default_spec(cf)
    config = HoverTaskConfig(realism=RealismConfig(sensor_noise=False, latency_ticks_max=2))
    a = HoverTask(cf, spec, 4, config, seed=5)
    obs_a = a.reset()
    b = HoverTask(cf, spec, 4, config, seed=99)
    b.reset()
    obs_b = b.replay(a.sim.params.take(slice(None)), a.sim.state.take(slice(None)), a.latency_env)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert np.array_equal(a.latency_env, b.latency_env) and len(set(a.latency_env)) > 1
    rng = np.random.default_rng(0)
    for _ in range(30):
        act = rng.uniform(-0.2, 0.6, (4, 4))
        a.step(act)
        b.step(act)
    np.testing.assert_array_equal(a.sim.state.pos_w, b.sim.state.pos_w)


def test_replay_refuses_a_latency_outside_the_tasks_range():
    cf = load_vehicle("crazyflie")
    t = HoverTask(cf, default_spec(cf), 2, HoverTaskConfig(realism=RealismConfig(latency_ticks_max=1)), seed=0)
    t.reset()
    with pytest.raises(ValueError, match=r"latency_ticks must be 2 values in \[0, 1\]"):
        t.replay(t.sim.params.take(slice(None)), t.sim.state.take(slice(None)), np.array([0, 3]))
