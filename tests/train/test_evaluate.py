"""The TF-free evaluation API the exporter and the demo reuse."""

from __future__ import annotations

import numpy as np
import pytest

from sim.contract import hover_action
from sim.randomization import RealismConfig
from train.evaluate import collect_observations, evaluate_policy


def _hold_hover(spec, vehicle):
    a = hover_action(spec, vehicle)
    return lambda obs: np.tile(a, (obs.shape[0], 1)).astype(np.float32)


def _pd(spec, vehicle, reference=None):
    """A hand-tuned cascaded PD in ctbr: proves the task and the figures are attainable.
    ``reference(tick) -> (offset_m, velocity_mps, acceleration_mps2)``, each (3,) world ENU: fly
    that path about the target instead of holding it (a tick is one call)."""
    g, m = 9.81, vehicle.mass_kg
    rate_max = np.asarray(spec.body_rate_max_rad_s)
    ticks = [0]

    def act(obs):
        e, rot, vel = obs[:, 0:3], obs[:, 3:12].reshape(-1, 3, 3), obs[:, 12:15]
        acc_ff = np.zeros(3)
        if reference is not None:
            offset_m, vel_mps, acc_ff = reference(ticks[0])
            e, vel = e - offset_m, vel - vel_mps
            ticks[0] += 1
        acc = -6.0 * e - 4.0 * vel + acc_ff + np.array([0.0, 0.0, g])
        zb = rot[:, :, 2]
        # the whole demand, not its projection on the tilted body axis: with the firmware's full
        # scale (4 x THRUST_MAX, 1.7 g) the projected demand lost throws that start low and falling
        thrust = m * np.linalg.norm(acc, axis=1)
        z_des = acc / np.linalg.norm(acc, axis=1, keepdims=True)
        # 10 per s: at 15 the tilt loop rang through 55/72 ms motors and the 80 Hz gyro filter
        rates = 10.0 * np.einsum("nji,nj->ni", rot, np.cross(zb, z_des))
        rates[:, 2] = 0.0
        a0 = 2.0 * np.clip(thrust / (4 * spec.thrust_max_n), 0, 1) - 1.0
        return np.concatenate([a0[:, None], np.clip(rates / rate_max, -1, 1)], axis=1)

    return act


def test_each_episode_is_counted_once_and_figures_are_consistent(crazyflie, cf_spec):
    r = evaluate_policy(_hold_hover(cf_spec, crazyflie), cf_spec, "crazyflie", episodes=24, seed=3)
    assert r.episodes == 24 and r.success.shape == (24,)
    assert r.success_rate == 0.0  # open-loop hover thrust cannot recover a throw
    assert r.crash_rate + r.out_of_bounds_rate == pytest.approx(1.0)  # ... so every episode ended early
    assert r.pos_w.shape[0] == 8 and r.pos_w.shape[2] == 3


def test_a_good_controller_succeeds_and_eval_is_deterministic(crazyflie, cf_spec):
    nominal = RealismConfig.off()
    r1 = evaluate_policy(_pd(cf_spec, crazyflie), cf_spec, "crazyflie", episodes=16, seed=1, realism=nominal)
    r2 = evaluate_policy(_pd(cf_spec, crazyflie), cf_spec, "crazyflie", episodes=16, seed=1, realism=nominal)
    assert r1.success_rate == 1.0 and r1.crash_rate == 0.0
    assert r1.rmse_m < 0.02
    assert r1.summary() == r2.summary()


def test_eval_reports_how_fast_a_policy_turns_while_it_holds(crazyflie, cf_spec):
    """The hover task asks for no heading, so a policy may hover spinning; eval says how fast."""
    nominal = RealismConfig.off()
    pd = _pd(cf_spec, crazyflie)
    spin_rad_s = 1.5

    def spinning(obs):
        a = pd(obs)
        a[:, 3] = spin_rad_s / cf_spec.body_rate_max_rad_s[2]
        return a

    still = evaluate_policy(pd, cf_spec, "crazyflie", episodes=8, seed=1, realism=nominal)
    turning = evaluate_policy(spinning, cf_spec, "crazyflie", episodes=8, seed=1, realism=nominal)
    assert still.yaw_rate_median_rad_s < 0.05
    assert turning.yaw_rate_median_rad_s == pytest.approx(spin_rad_s, abs=0.1)
    assert turning.summary()["yaw_rate_median_rad_s"] == turning.yaw_rate_median_rad_s


def test_eval_says_which_part_of_the_success_test_a_flown_out_episode_broke(crazyflie, cf_spec):
    """An episode that flies to the time limit and fails broke the radius, the speed or both in
    the hold window; with crashes and exits the classes account for every failure."""
    nominal = RealismConfig.off()
    dt_s = 1.0 / cf_spec.control_rate_hz
    off = np.array([0.15, 0.0, 0.0])  # holds still, 15 cm from the target: the radius only
    aside = _pd(cf_spec, crazyflie, lambda k: (off, np.zeros(3), np.zeros(3)))
    w, r_m = 8.0, 0.04  # circles the target at 4 cm, 0.32 m/s: the speed only

    def circle(k):
        c, s = np.cos(w * k * dt_s), np.sin(w * k * dt_s)
        return (r_m * np.array([c, s, 0.0]), r_m * w * np.array([-s, c, 0.0]), -r_m * w * w * np.array([c, s, 0.0]))

    held = evaluate_policy(_pd(cf_spec, crazyflie), cf_spec, "crazyflie", episodes=8, seed=1, realism=nominal)
    far = evaluate_policy(aside, cf_spec, "crazyflie", episodes=8, seed=1, realism=nominal)
    fast = evaluate_policy(_pd(cf_spec, crazyflie, circle), cf_spec, "crazyflie", episodes=8, seed=1, realism=nominal)
    assert held.success_rate == 1.0
    assert (held.unsettled_distance_rate, held.unsettled_speed_rate, held.unsettled_both_rate) == (0.0, 0.0, 0.0)
    assert far.success_rate == 0.0 and far.crash_rate == 0.0 and far.unsettled_distance_rate == 1.0
    assert fast.success_rate == 0.0 and fast.crash_rate == 0.0 and fast.unsettled_speed_rate == 1.0
    assert fast.summary()["unsettled_speed_rate"] == 1.0
    mixed = evaluate_policy(_pd(cf_spec, crazyflie), cf_spec, "crazyflie", episodes=48, seed=2)
    parts = (mixed.success_rate, mixed.crash_rate, mixed.out_of_bounds_rate, mixed.unsettled_distance_rate,
             mixed.unsettled_speed_rate, mixed.unsettled_both_rate)
    assert sum(parts) == pytest.approx(1.0)


def test_collect_observations_returns_visited_raw_observations(crazyflie, cf_spec):
    obs = collect_observations(_pd(cf_spec, crazyflie), cf_spec, "crazyflie", n_obs=300, seed=0, num_envs=8)
    assert obs.shape == (300, cf_spec.obs_dim) and obs.dtype == np.float32
    assert np.all(np.isfinite(obs))
    rot = obs[:, 3:12].reshape(-1, 3, 3)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-3)  # raw (unnormalized) rotations


def test_evaluate_rejects_a_policy_of_another_vehicle(cf_spec):
    from sim.contract import SpecError

    with pytest.raises(SpecError):
        evaluate_policy(lambda o: np.zeros((o.shape[0], 4)), cf_spec, "x500", episodes=2)


def test_eval_task_keeps_the_task_and_resets_realism_to_the_eval_default():
    """Periodic evaluations during training and `quadhil eval` fly the same task: the run's task
    with randomization and sensor noise on, and none of training's extra latency or wider ranges."""
    from sim.env import HoverTaskConfig
    from sim.randomization import RealismConfig
    from train.evaluate import eval_task_config

    trained = HoverTaskConfig(episode_s=6.0, realism=RealismConfig(latency_ticks_max=1, noise_scale=2.0,
                                                                  randomization_scale=1.25))
    task = eval_task_config(trained)
    assert task.episode_s == 6.0 and task.realism == RealismConfig()
    assert eval_task_config(None) == HoverTaskConfig()


def test_a_gentle_start_eval_hands_over_5_cm_from_the_target_at_rest_and_keeps_its_own_file(tmp_path, capsys):
    import json

    from quadhil.cli import main
    from tests.deploy.conftest import make_run
    from train.cli_eval import GENTLE_START

    run = make_run(tmp_path / "run")
    assert main(["eval", str(run), "--gentle-start", "--episodes", "8", "--no-plot", "--json"]) == 0
    d = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert d["start"] == "gentle" and d["episodes"] == 8
    assert (run / "eval-gentle.json").exists() and not (run / "eval.json").exists()
    # the same starts, flown directly: every episode begins within 5 cm of the target per axis
    import dataclasses

    from sim.contract import default_spec
    from sim.env import HoverTaskConfig
    from sim.vehicle import load_vehicle
    from train.evaluate import evaluate_policy

    cf = load_vehicle("crazyflie")
    spec = default_spec(cf)
    res = evaluate_policy(lambda obs: np.tile([0.0, 0.0, 0.0, 0.0], (len(obs), 1)), spec, "crazyflie", episodes=8,
                          task=dataclasses.replace(HoverTaskConfig(), **GENTLE_START))
    assert np.all(np.abs(res.pos_w[:, 0] - res.target_w) <= 0.05 + 1e-12)
    assert main(["eval", str(run), "--gentle-start", "--suite", "robustness"]) == 2


def test_policies_evaluated_together_fly_the_same_throws_as_one_alone(crazyflie, cf_spec):
    """With the airframes randomized and the sensors quiet, the throws are all that differ
    between episodes: each policy of a joint rollout scores exactly what it scores alone."""
    from sim.env import HoverTaskConfig
    from train.evaluate import evaluate_policies

    task = HoverTaskConfig(realism=RealismConfig(sensor_noise=False))
    pd, hover = _pd(cf_spec, crazyflie), _hold_hover(cf_spec, crazyflie)
    alone = [evaluate_policy(f, cf_spec, "crazyflie", episodes=12, seed=4, task=task) for f in (pd, hover)]
    together = evaluate_policies([pd, hover], cf_spec, "crazyflie", episodes=12, seed=4, task=task)
    assert [r.episodes for r in together] == [12, 12]
    assert together[0].success.any() and not together[1].success.any()  # the blocks are not mixed up
    for a, t in zip(alone, together):
        assert np.array_equal(a.success, t.success) and np.array_equal(a.crashed, t.crashed)
        np.testing.assert_allclose(t.episode_return, a.episode_return, rtol=1e-12)
        np.testing.assert_allclose(t.pos_w, a.pos_w, rtol=1e-12, equal_nan=True)
        assert t.rmse_m == pytest.approx(a.rmse_m, rel=1e-12, nan_ok=True)
        assert t.yaw_rate_median_rad_s == pytest.approx(a.yaw_rate_median_rad_s, rel=1e-12, nan_ok=True)
    # one policy: evaluate_policy itself, sensor noise and all
    one = evaluate_policies([pd], cf_spec, "crazyflie", episodes=12, seed=4)[0]
    assert one.summary() == evaluate_policy(pd, cf_spec, "crazyflie", episodes=12, seed=4).summary()
