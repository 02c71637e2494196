"""What the trainer's periodic evaluations fly (train.loop.eval_task): the task `quadhil
eval` flies, full ranges and no latency, unless ``train.eval_latency_ticks_max`` asks that each
episode be delayed by 0..N control ticks, as in training, so that "best" is chosen on delayed
flights too."""

from __future__ import annotations

import numpy as np

from sim.env import HoverTaskConfig, HoverVecEnv
from sim.randomization import RealismConfig
from train.loop import TrainConfig, eval_task

TRAINING = HoverTaskConfig(realism=RealismConfig(randomization_scale=0.5, latency_ticks_max=1))


def test_by_default_the_periodic_evaluation_keeps_the_full_ranges_and_no_latency():
    task = eval_task(TRAINING, TrainConfig())
    assert task.realism.randomization_scale == 1.0
    assert task.realism.latency_ticks == 0 and not task.realism.latency_ticks_max


def test_with_eval_latency_every_episode_draws_zero_or_one_tick_and_the_throws_stay_the_same():
    plain = HoverVecEnv("crazyflie", 200, config=eval_task(TRAINING, TrainConfig()), seed=10_000)
    delayed = HoverVecEnv("crazyflie", 200, config=eval_task(TRAINING, TrainConfig(eval_latency_ticks_max=1)),
                          seed=10_000)
    plain.reset()
    delayed.reset()
    lat = delayed.task.latency_env
    assert set(np.unique(lat)) == {0, 1} and 0.35 < lat.mean() < 0.65
    assert np.all(plain.task.latency_env == 0)
    assert delayed.task.config.realism.randomization_scale == 1.0
    # the latency is drawn after every other draw of an episode start: same throws, same airframes
    assert np.array_equal(plain.task.sim.state.pos_w, delayed.task.sim.state.pos_w)
    assert np.array_equal(plain.task.sim.params.tau_down_s, delayed.task.sim.params.tau_down_s)


def test_evaluating_the_candidates_together_changes_no_weight_the_run_trains(tmp_path, capsys):
    """The joint rollout (train.eval_jointly) draws nothing from the run's own random stream: a
    run trains the same weights whichever way its actor and target actor are evaluated."""
    from tests.train.conftest import run_tiny

    out_a, res_a = run_tiny(tmp_path, capsys, "jointly", "train.eval_jointly=true")
    out_b, res_b = run_tiny(tmp_path, capsys, "apart", "train.eval_jointly=false")
    assert res_a["last_eval"]["env_steps"] == res_b["last_eval"]["env_steps"] > 0
    with np.load(out_a / "checkpoint" / "agent.npz") as za, np.load(out_b / "checkpoint" / "agent.npz") as zb:
        assert all(np.array_equal(za[f], zb[f]) for f in za.files)


def test_every_periodic_evaluation_logs_how_its_failures_fail_to_tensorboard(tmp_path, capsys):
    """TensorBoard holds, per periodic evaluation, the success rate, each candidate's own, and the
    classes of failure (crash, exit, unsettled by radius / speed / both) that add up to the rest."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tests.train.conftest import run_tiny

    out, _ = run_tiny(tmp_path, capsys, "tb")
    ea = EventAccumulator(str(out / "tb"), size_guidance={"tensors": 0})
    ea.Reload()

    def series(tag):
        return [float(tf.make_ndarray(e.tensor_proto)) for e in ea.Tensors(tag)]

    parts = ["eval/success_rate", "eval/crash_rate", "eval/out_of_bounds_rate", "eval/unsettled_distance_rate",
             "eval/unsettled_speed_rate", "eval/unsettled_both_rate"]
    assert set(parts + ["eval_candidates/success_rate_actor"]) <= set(ea.Tags()["tensors"])
    evaluations = [series(tag) for tag in parts]
    assert len(evaluations[0]) >= 2
    np.testing.assert_allclose(np.sum(evaluations, axis=0), 1.0, atol=1e-6)
