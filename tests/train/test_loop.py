"""train/loop.py's speed and time-to-target settings: threads, the evaluation task, confirmation."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from sim.env import HoverTaskConfig
from train.loop import TrainConfig, eval_task, tf_threads_for
from tests.train.test_bench import EASY


def test_the_update_leaves_one_core_to_the_acting_thread_when_they_overlap():
    assert tf_threads_for(TrainConfig(), cores=2) == 1
    assert tf_threads_for(TrainConfig(), cores=1) == 1
    assert tf_threads_for(TrainConfig(overlap=False), cores=2) == 2
    assert tf_threads_for(TrainConfig(tf_threads=3), cores=2) == 3


def test_evaluations_fly_the_full_ranges_unless_a_scale_is_set():
    task = HoverTaskConfig()
    task = dataclasses.replace(task, realism=dataclasses.replace(task.realism, randomization_scale=0.25,
                                                                 latency_ticks_max=1))
    assert eval_task(task, TrainConfig()).realism.randomization_scale == 1.0
    scaled = eval_task(task, TrainConfig(eval_randomization_scale=0.25)).realism
    assert scaled.randomization_scale == 0.25 and scaled.latency_ticks_max is None  # still quadhil eval's task


def _easy_trainer(tmp_path, *extra, stop_at_target=True):
    from train.cli_train import build_trainer, configure

    parser = argparse.ArgumentParser()
    configure(parser)
    sets = [a for a in EASY if a not in ("--confirm-episodes", "8", "--no-randomization")]
    stop = ["--stop-at-target"] if stop_at_target else []
    return build_trainer(parser.parse_args(["--vehicle", "crazyflie", "--out", str(tmp_path / "run"), "--no-randomization",
                                            "--no-progress", *stop, "--max-steps", "480", *sets, *extra]))


def test_a_periodic_pass_that_fresh_episodes_do_not_confirm_does_not_count_and_training_goes_on(tmp_path):
    import time

    trainer = _easy_trainer(tmp_path, "--set", "train.confirm_episodes=8", "--set", "train.target_success=0.5")
    seeds = []

    def refuted(model):  # the fresh episodes fail every try; the seeds tried must differ
        seeds.append(trainer.tc.confirm_seed + len(trainer.progress.confirmations))
        return 0.0

    trainer.confirm = refuted
    res = trainer.run(time.perf_counter(), show_progress=False, tensorboard=False)
    assert res["time_to_target_s"] is None and res["steps_to_target"] is None
    assert res["env_steps"] >= 480  # stop_at_target did not stop it
    assert res["best_periodic_success"] >= 0.5 and len(res["confirmations"]) >= 2
    assert all(c["fresh_success"] == 0.0 and c["periodic_success"] >= 0.5 for c in res["confirmations"])
    assert len(set(seeds)) == len(seeds)


def test_a_confirmed_pass_stops_the_run_at_the_confirmation(tmp_path):
    import time

    trainer = _easy_trainer(tmp_path, "--set", "train.confirm_episodes=8", "--set", "train.target_success=0.5")
    res = trainer.run(time.perf_counter(), show_progress=False, tensorboard=False)
    (first,) = res["confirmations"]
    assert first["fresh_success"] >= 0.5 and res["time_to_target_s"] == first["wall_s"]
    # the evaluation ran beside the next iteration's update (train.eval_beside_update), on the
    # weights of the moment it fell due: the run stops after that one iteration (5 ticks of 4 envs)
    assert res["steps_to_target"] == first["env_steps"] <= res["env_steps"] <= first["env_steps"] + 20 < 480
    assert set(res["time_breakdown_s"]) >= {"collect", "sample", "update", "eval", "confirm", "loop", "other"}


def test_once_the_bar_is_met_the_run_evaluates_at_the_slower_cadence_it_was_given(tmp_path):
    """train.eval_every_steps_after_target: the Crazyflie ctbr preset evaluates every 25 k env steps
    to see the bar sooner, and every 50 k once it has met it, so a long run does not keep paying."""
    import time

    trainer = _easy_trainer(tmp_path, "--set", "train.confirm_episodes=8", "--set", "train.target_success=0.5",
                            "--set", "train.eval_every_steps=40", "--set", "train.eval_every_steps_after_target=200",
                            "--max-steps", "800", stop_at_target=False)
    evaluated_at = []
    trainer.on_eval = lambda record: evaluated_at.append(record["env_steps"])
    tries = []

    def refuted_twice(model):
        tries.append(1)
        return 0.0 if len(tries) <= 2 else 1.0

    trainer.confirm = refuted_twice
    res = trainer.run(time.perf_counter(), show_progress=False, tensorboard=False)
    assert [c["fresh_success"] for c in res["confirmations"]] == [0.0, 0.0, 1.0]
    *periodic, final = evaluated_at  # the run ends with one more evaluation, where it stopped
    assert final == res["env_steps"] >= 800
    met = res["steps_to_target"]
    before = [s for s in periodic if s <= met]
    after = [s for s in periodic if s > met]
    assert len(before) == 3 and all(0 < b - a <= 40 + 20 for a, b in zip(before, before[1:]))
    assert len(after) >= 2 and all(b - a >= 200 for a, b in zip([met, *after], after))


def _tiny_run(tmp_path, name, *extra):
    from quadhil.cli import run_command
    from tests.train.conftest import TINY

    out = tmp_path / name
    assert run_command("train", ["--vehicle", "crazyflie", "--out", str(out), *TINY, "--max-steps", "240",
                                 "--set", "agent.smooth_weight=10", *extra]) == 0
    import numpy as np

    with np.load(out / "checkpoint" / "agent.npz") as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


@pytest.mark.parametrize("extra", [("--td3", "--actor-loss", "action_gradients"), ("--actor-loss", "q")])
def test_both_actor_losses_and_td3_train_with_the_noise_drawn_in_the_update_and_repeat_exactly(tmp_path, extra):
    """The default loop draws target and smoothness noise inside the compiled update from seeds the
    run's Generator draws, and quarter-turns there (the Crazyflie ctbr preset's yaw_symmetry): a run
    must still repeat bit for bit, and every form must train."""
    import numpy as np

    a = _tiny_run(tmp_path, "a", *extra)
    b = _tiny_run(tmp_path, "b", *extra)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(np.all(np.isfinite(x)) for x in a)
    host = _tiny_run(tmp_path, "host", *extra, "--set", "train.augment_in_graph=false")
    assert any(not np.array_equal(x, y) for x, y in zip(a, host))  # another random stream, same code path otherwise


@pytest.mark.parametrize("noise_rng, jit", [("threefry", True), ("threefry", False), ("philox", False),
                                            ("auto_select", False)])
def test_the_noise_drawn_in_the_update_has_the_configured_size_with_every_algorithm(cf_spec, noise_rng, jit):
    """Each algorithm draws the same distribution, and the same seeds draw the same noise again;
    threefry, which TensorFlow runs only under XLA, is drawn compiled as the update draws it."""
    import numpy as np
    import tensorflow as tf

    from train.agent import AgentConfig, DDPGAgent

    agent = DDPGAgent(cf_spec, AgentConfig(actor_hidden=(8,), critic_hidden=(8,), target_noise=0.2,
                                           target_noise_clip=0.3, smooth_weight=1.0, jit=jit,
                                           noise_rng=noise_rng))
    assert agent.noise_algorithm == (noise_rng if jit or noise_rng != "threefry" else "philox")
    std = np.linspace(0.01, 0.5, cf_spec.obs_dim).astype(np.float32)
    agent.set_augmentation(obs_noise_std=std)
    draw = tf.function(lambda seeds: agent.drawn_noise(seeds, 20_000), jit_compile=jit)
    tnoise, snoise = (x.numpy() for x in draw(tf.constant([[1, 2], [3, 4]], tf.int64)))
    assert snoise.shape == (20_000, cf_spec.obs_dim) and tnoise.shape == (20_000, 4)
    np.testing.assert_allclose(snoise.std(axis=0), std, rtol=0.05)
    np.testing.assert_allclose(snoise.mean(axis=0) / std, 0.0, atol=0.03)
    assert np.abs(tnoise).max() <= 0.3 and 0.15 < tnoise.std() < 0.2  # N(0, 0.2) clipped at 0.3
    again = draw(tf.constant([[1, 2], [3, 4]], tf.int64))[1].numpy()
    np.testing.assert_array_equal(snoise, again)


def test_the_default_noise_algorithm_is_threefry_and_an_unknown_one_is_refused(cf_spec):
    """threefry draws the update's noise at a quarter of TensorFlow's default's cost (agent.py);
    "auto_select" is the stream runs drew before 2026-12-07, and a run saved then resumes with it."""
    from train.agent import AgentConfig, DDPGAgent

    assert AgentConfig().noise_rng == "threefry"
    assert AgentConfig.from_dict(AgentConfig().to_dict()).noise_rng == "threefry"
    saved_before = {k: v for k, v in AgentConfig().to_dict().items() if k != "noise_rng"}
    assert AgentConfig.from_dict(saved_before).noise_rng == "auto_select"  # a resumed run keeps its stream
    with pytest.raises(ValueError, match="noise_rng must be one of"):
        DDPGAgent(cf_spec, AgentConfig(actor_hidden=(8,), critic_hidden=(8,), jit=False, noise_rng="mt19937"))


def test_an_evaluation_beside_the_update_gives_the_figures_and_the_training_of_one_after_it(tmp_path):
    import json

    import numpy as np

    beside = _tiny_run(tmp_path, "beside", "--max-steps", "400")
    after = _tiny_run(tmp_path, "after", "--max-steps", "400", "--set", "train.eval_beside_update=false")
    assert all(np.array_equal(x, y) for x, y in zip(beside, after))
    ra, rb = (json.loads((tmp_path / n / "config.json").read_text())["result"] for n in ("beside", "after"))
    for key in ("best_periodic_success", "best_periodic_rmse_m", "best_env_steps", "best_which", "env_steps"):
        assert ra[key] == rb[key], key
    assert ra["last_eval"]["success_rate"] == rb["last_eval"]["success_rate"]


def test_the_late_check_flies_the_same_throws_with_every_action_one_tick_late(tmp_path, monkeypatch):
    """check_confirmed's success_rate_tick is quadhil eval --latency-ticks 1: the periodic
    evaluation's task (here one that draws 0-1 ticks per throw) with the latency fixed at one tick
    and nothing else changed, from the same seed."""
    import dataclasses

    import train.loop as loop

    trainer = _easy_trainer(tmp_path, "--set", "train.eval_latency_ticks_max=1")
    flown = []

    def record(policies, spec, vehicle_id, episodes, seed, task):
        flown.append((episodes, seed, task))
        return [None] * len(policies)

    monkeypatch.setattr(loop, "evaluate_policies", record)
    trainer.evaluate_candidates(16, [trainer.agent.actor], seed=30_000)
    trainer.evaluate_candidates(16, [trainer.agent.actor], seed=30_000, latency_ticks=1)
    (n0, s0, on_time), (n1, s1, late) = flown
    assert (n0, s0) == (n1, s1) == (16, 30_000)
    assert (on_time.realism.latency_ticks, on_time.realism.latency_ticks_max) == (0, 1)
    assert (late.realism.latency_ticks, late.realism.latency_ticks_max) == (1, None)
    assert dataclasses.replace(late, realism=on_time.realism) == on_time
    assert dataclasses.replace(late.realism, latency_ticks=0, latency_ticks_max=1) == on_time.realism
