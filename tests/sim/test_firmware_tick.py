"""The compiled ctbr ticks (Crazyflie, PX4) fly what the numpy firmware pieces fly, on every kind of airframe."""

import dataclasses
import pickle

import numpy as np
import pytest

from sim.command_path import ctbr_thrust_u16, stops_motors
from sim.contract import act_to_command, default_spec, hover_action
from sim.env import HoverTaskConfig, HoverVecEnv
from sim.firmware_tick import can_fly, can_fly_px4, fly_crazyflie_tick, fly_px4_tick
from sim.randomization import RealismConfig
from sim.vehicle import load_vehicle

STATE = ("pos_w", "vel_w", "quat_wb", "omega_b", "thrust_n")


def twin_envs(n: int, seed: int, realism: RealismConfig | None = None, vehicle: str = "crazyflie"):
    """Two identical envs, the first flying the compiled tick, the second the numpy pieces."""
    config = HoverTaskConfig() if realism is None else HoverTaskConfig(realism=realism)
    envs = [HoverVecEnv(vehicle, n, config=dataclasses.replace(config, fused_tick=fused), seed=seed)
            for fused in (True, False)]
    for e in envs:
        e.reset(seed=seed)
    return envs


def largest_state_difference(a, b) -> float:
    sa, sb = a.task.sim.state, b.task.sim.state
    return max(float(np.max(np.abs(getattr(sa, k) - getattr(sb, k)))) for k in STATE)


def test_each_kernel_flies_its_own_firmware_s_ctbr_path_and_nothing_else():
    cf = HoverVecEnv("crazyflie", 2, seed=0).task
    assert can_fly(cf.vehicle, cf.rate_ctrl, cf.yaw_loop) and not can_fly_px4(cf.vehicle, cf.rate_ctrl)
    x500 = HoverVecEnv("x500", 2, seed=0).task
    assert can_fly_px4(x500.vehicle, x500.rate_ctrl) and not can_fly(x500.vehicle, x500.rate_ctrl, x500.yaw_loop)
    motors = HoverVecEnv("crazyflie", 2, spec=default_spec(load_vehicle("crazyflie"), "motors"), seed=0).task
    assert not can_fly(motors.vehicle, motors.rate_ctrl, motors.yaw_loop)
    assert not can_fly_px4(motors.vehicle, motors.rate_ctrl)
    with pytest.raises(ValueError, match="Crazyflie"):
        fly_crazyflie_tick(x500.sim, x500.rate_ctrl, x500.yaw_loop, np.zeros(2), np.zeros(2, bool), np.zeros((2, 3)),
                           np.ones(2), x500.substeps, x500.rate_loop_every)
    with pytest.raises(ValueError, match="PX4"):
        fly_px4_tick(cf.sim, cf.rate_ctrl, np.zeros(2), np.zeros((2, 3)), cf.substeps, cf.rate_loop_every)


def test_random_commands_on_randomized_airframes_give_the_numpy_path_s_flight():
    fused, numpy_path = twin_envs(64, seed=11)
    p = fused.task.sim.params
    # the draw holds every branch of the kernel: uncompensated builds, P-only rate loops
    assert (~p.compensated).any() and p.compensated.any() and p.rate_p_only.any()
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(300):
        action = rng.uniform(-1.0, 1.0, (64, 4))
        for e in (fused, numpy_path):
            e.step(action)
        worst = max(worst, largest_state_difference(fused, numpy_path))
    assert worst < 1e-9
    rc_f, rc_n = fused.task.rate_ctrl, numpy_path.task.rate_ctrl
    np.testing.assert_allclose(rc_f.integral, rc_n.integral, atol=1e-9)
    np.testing.assert_allclose(rc_f.gyro_filter.d1, rc_n.gyro_filter.d1, atol=1e-9)
    np.testing.assert_allclose(fused.task.yaw_loop.yaw_desired_deg, numpy_path.task.yaw_loop.yaw_desired_deg, atol=1e-7)


def test_px4_random_commands_on_randomized_x500s_give_the_numpy_path_s_flight_and_its_anti_windup_flags():
    fused, numpy_path = twin_envs(48, seed=7, vehicle="x500")
    assert fused.task.sim.params.rate_p_only.any()
    rng = np.random.default_rng(1)
    worst, flagged = 0.0, 0
    for _ in range(150):
        action = rng.uniform(-1.0, 1.0, (48, 4))
        for e in (fused, numpy_path):
            e.step(action)
        worst = max(worst, largest_state_difference(fused, numpy_path))
        rc_f, rc_n = fused.task.rate_ctrl, numpy_path.task.rate_ctrl
        np.testing.assert_array_equal(rc_f.saturated_pos, rc_n.saturated_pos)
        np.testing.assert_array_equal(rc_f.saturated_neg, rc_n.saturated_neg)
        flagged += int(rc_f.saturated_pos.sum() + rc_f.saturated_neg.sum())
    assert worst < 1e-9
    assert flagged > 0  # full-range commands saturate the allocator: the flags' branch was flown
    np.testing.assert_allclose(fused.task.rate_ctrl.integral, numpy_path.task.rate_ctrl.integral, atol=1e-9)


def test_a_zero_thrust_setpoint_stops_the_motors_and_resets_the_pids_in_both():
    fused, numpy_path = twin_envs(8, seed=3)
    spec, vehicle = fused.task.spec, fused.task.vehicle
    off = np.tile(hover_action(spec, vehicle), (8, 1))
    off[:4, 0] = -1.0
    off[:4, 3] = 0.8  # a yaw-rate command the stop must discard
    assert stops_motors(ctbr_thrust_u16(act_to_command(off, spec, vehicle).collective_thrust_n, vehicle), vehicle)[:4].all()
    for _ in range(5):
        for e in (fused, numpy_path):
            e.step(off)
    assert largest_state_difference(fused, numpy_path) < 1e-9
    rc = fused.task.rate_ctrl
    assert np.all(rc.integral[:4] == 0.0) and np.any(rc.integral[4:] != 0.0)
    assert np.all(fused.task.yaw_loop.integ[:4] == 0.0)


@pytest.mark.parametrize("vehicle", ["crazyflie", "x500"])
def test_without_sensor_noise_or_randomization_the_hover_is_the_same_to_the_last_digits(vehicle):
    fused, numpy_path = twin_envs(4, seed=5, realism=RealismConfig.off(), vehicle=vehicle)
    action = np.tile(hover_action(fused.task.spec, fused.task.vehicle), (4, 1))
    for _ in range(200):
        obs_f, *_ = fused.step(action)
        obs_n, *_ = numpy_path.step(action)
    np.testing.assert_allclose(obs_f, obs_n, atol=1e-6)
    assert largest_state_difference(fused, numpy_path) < 1e-12


def test_the_task_config_chooses_the_numpy_pieces_and_a_run_keeps_its_choice(monkeypatch):
    import sim.env
    from train.loop import task_config_from_dict, task_config_to_dict

    calls = []
    real = sim.env.fly_crazyflie_tick
    monkeypatch.setattr(sim.env, "fly_crazyflie_tick", lambda *a: calls.append(1) or real(*a))
    hover = np.tile(hover_action(default_spec(load_vehicle("crazyflie")), load_vehicle("crazyflie")), (2, 1))
    config = dataclasses.replace(HoverTaskConfig(), fused_tick=False)
    HoverVecEnv("crazyflie", 2, config=config, seed=0).step(hover)
    assert calls == []
    HoverVecEnv("crazyflie", 2, seed=0).step(hover)
    assert calls == [1]
    assert task_config_from_dict(task_config_to_dict(config)).fused_tick is False
    before = task_config_to_dict(HoverTaskConfig())
    del before["fused_tick"]  # a run recorded before the key existed
    assert task_config_from_dict(before).fused_tick is True


def test_a_task_pickled_before_the_compiled_tick_flies_it_after_loading(monkeypatch):
    import sim.env

    env = HoverVecEnv("crazyflie", 2, seed=0)
    old = dict(env.task.config.__dict__)
    del old["fused_tick"]  # a HoverTaskConfig pickled before the field existed
    config = HoverTaskConfig.__new__(HoverTaskConfig)
    config.__dict__.update(old)
    env.task.config = pickle.loads(pickle.dumps(config))
    calls = []
    real = sim.env.fly_crazyflie_tick
    monkeypatch.setattr(sim.env, "fly_crazyflie_tick", lambda *a: calls.append(1) or real(*a))
    env.step(np.tile(hover_action(env.task.spec, env.task.vehicle), (2, 1)))
    assert calls == [1]
