"""``quadhil bench train`` builds a run the way ``quadhil train`` does and reports its figures."""

from __future__ import annotations

import json

import pytest

from quadhil.cli import run_command


def test_bench_train_reports_the_loop_and_update_rates_as_one_json_line(capsys):
    """No timing is asserted (benchmarks measure, tests do not); the figures exist and are positive."""
    assert run_command("bench", ["train", "--vehicle", "crazyflie", "--seconds", "0.5", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cf = figures["crazyflie"]
    assert cf["loop_env_steps_per_s"] > 0 and cf["loop_updates_per_s"] > 0 and cf["update_only_updates_per_s"] > 0
    assert cf["num_envs"] == 16 and cf["batch_size"] == 128 and cf["updates_per_call"] == 20  # 10 ticks x 2


def test_the_update_alone_is_timed_on_what_the_loop_gives_it(monkeypatch, capsys):
    """The figure "update step alone" is the recipe's update: quarter turns, the noise drawn in the
    compiled step and the teacher's labels (the Crazyflie ctbr preset has all three), not random
    rows without them (a 1.3x cheaper update, which the bench reported before 2026-12-07)."""
    import inspect

    from train.agent import DDPGAgent

    calls = []
    update = DDPGAgent.update

    def recording(self, *args, **kwargs):
        calls.append(inspect.signature(update).bind(self, *args, **kwargs).arguments)
        return update(self, *args, **kwargs)

    monkeypatch.setattr(DDPGAgent, "update", recording)
    assert run_command("bench", ["train", "--vehicle", "crazyflie", "--seconds", "0.2", "--json"]) == 0
    capsys.readouterr()
    first = calls[0]  # the bench's compile call of the update-only measurement
    assert first["obs"].shape[:2] == (20, 128)
    for name in ("turns", "noise_seeds", "teacher_act"):
        assert first.get(name) is not None, name


# A task any actor passes (a huge success ball, a still start, 0.4 s episodes) on tiny nets: the
# time-to-bar machinery runs end to end in seconds without asserting anything about speed.
EASY = ["--no-randomization", "--confirm-episodes", "8"] + [
    a for item in ("train.num_envs=4", "train.batch_size=16", "train.updates_per_step=1", "agent.actor_hidden=[8,8]",
                   "agent.critic_hidden=[8,8]", "agent.jit=false", "train.warmup_steps=40", "train.chunk=5",
                   "train.eval_every_steps=160", "train.eval_episodes=4", "train.checkpoint_every_steps=100000",
                   "train.replay_capacity=1000", "task.episode_s=0.4", "task.hold_s=0.1", "task.success_radius_m=100",
                   "task.success_speed_mps=100", "task.init_tilt_deg=0", "task.init_rate_rad_s=0", "task.init_vel_mps=0",
                   "train.teacher_steps=120", "train.teacher_bc_updates=20", "train.teacher_critic_updates=10")
    for a in ("--set", item)]
CHECK = ["--check-episodes", "16"]  # the confirmed actor's check, at the same tiny scale


def test_to_success_confirms_the_bar_on_fresh_episodes_beside_the_previous_recipe(capsys, tmp_path):
    from train.bench import PREVIOUS_RECIPE

    assert run_command("bench", ["train", "--to-success", "0.5", "--seeds", "1", "--compare-previous", "--out", str(tmp_path),
                                 *EASY, *CHECK, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cf = figures["crazyflie"]
    assert figures["baseline_set"] == list(PREVIOUS_RECIPE)
    for name in ("recipe", "baseline"):
        f = cf[name]
        assert f["reached"] == 1 and f["failed_seeds"] == [] and f["median_s"] == f["max_s"] == f["times_s"][0]
        run = f["runs"][0]
        # the figure is the moment the fresh episodes confirmed the periodic evaluation
        last = run["confirmations"][-1]
        assert last["episodes"] == 8 and last["fresh_success"] >= 0.5 and last["wall_s"] == run["time_to_target_s"]
        # then, off the clock, the confirmed actor flew 16 more episodes of their own seed
        check = run["confirmed_check"]
        assert check["episodes"] == 16 and check["seed"] == 30_000 and check["which"] == last["which"]
        assert check["env_steps"] == run["steps_to_target"] and f["check_success"] == [check["success_rate"]]
        # and on the same throws with every action a tick late
        assert f["check_success_tick"] == [check["success_rate_tick"]] and 0.0 <= check["crash_rate_tick"] <= 1.0
    # the actor that met the bar is kept, and quadhil eval flies it: its late figure is the check's
    run_dir = tmp_path / "crazyflie" / "recipe-seed0"
    assert (run_dir / "actor_confirmed.keras").is_file()
    assert run_command("eval", [str(run_dir), "--which", "confirmed", "--episodes", "16", "--seed", "30000",
                                "--latency-ticks", "1", "--no-randomization", "--json"]) == 0
    late = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert late["actor"] == "confirmed" and late["latency_ticks"] == 1
    assert late["success_rate"] == cf["recipe"]["runs"][0]["confirmed_check"]["success_rate_tick"]
    # the baseline ran with the previous recipe's settings, in its own process
    assert cf["baseline"]["runs"][0]["tf_threads"] == 2
    assert cf["speedup_median"] == cf["baseline"]["median_s"] / cf["recipe"]["median_s"]


def test_a_seed_past_max_seconds_is_a_failure_and_stays_in_the_summary(capsys):
    assert run_command("bench", ["train", "--to-success", "0.5", "--seeds", "1", "--max-seconds", "1", *EASY,
                                 "--json"]) == 0
    f = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["crazyflie"]["recipe"]
    assert f["reached"] == 0 and f["failed_seeds"] == [0] and f["times_s"] == [None]
    assert f["median_s"] is None and f["max_s"] is None


def test_a_bar_met_without_confirmation_has_no_confirmed_actor_to_check(tmp_path, capsys):
    """train.check_episodes flies only an actor a confirmation saved: with confirm_episodes 0 a
    periodic pass alone meets the bar, and the run ends without a check instead of failing."""
    from tests.train.conftest import run_tiny

    easy_task = [item for item in EASY[3:] if item.startswith("task.")]
    out, res = run_tiny(tmp_path, capsys, "unconfirmed", *easy_task, "train.target_success=0.5",
                        "train.confirm_episodes=0", "train.check_episodes=16")
    assert res["time_to_target_s"] is not None and res["confirmations"] == []
    assert "confirmed_check" not in res and not (out / "actor_confirmed.keras").exists()


def test_failed_seeds_count_as_slower_than_any_success_in_the_median():
    from train.bench import summarize

    def runs(*times):
        return [{"seed": i, "reached": t is not None, "time_to_target_s": t} for i, t in enumerate(times)]

    assert summarize(runs(30.0, 10.0, 20.0)) == {"seeds": 3, "reached": 3, "failed_seeds": [], "median_s": 20.0,
                                                 "max_s": 30.0, "times_s": [30.0, 10.0, 20.0],
                                                 "check_success": [None] * 3, "check_success_mean": None,
                                                 "check_success_tick": [None] * 3, "check_success_tick_mean": None}
    one_failed = summarize(runs(10.0, None, 20.0))
    assert one_failed["median_s"] == 20.0 and one_failed["max_s"] is None and one_failed["failed_seeds"] == [1]
    assert summarize(runs(None, None, 5.0))["median_s"] is None
    assert summarize(runs(10.0, None))["median_s"] is None  # an even count: the mean of 10 and "never"


def test_to_success_refuses_a_bar_outside_0_to_1(capsys):
    assert run_command("bench", ["train", "--to-success", "1.5", "--seeds", "1"]) != 0
    assert "--to-success must be in (0, 1]" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["action-history", "state-history"])
def test_a_baseline_can_differ_in_the_histories_it_observes(monkeypatch, capsys, option):
    """--action-history / --state-history reach every run's quadhil train; --baseline-* only the
    baseline's (the observation is a train argument, not a --set key). The processes are recorded,
    not run."""
    import train.bench as bench

    argv = []

    def record(vid, args, seed, out, extra_sets, history=None, checkout=None):
        argv.append((out.name, bench._train_args(vid, args, str(out), extra_sets, history)))
        return {"seed": seed, "reached": True, "time_to_target_s": 1.0}

    monkeypatch.setattr(bench, "run_seed", record)
    assert run_command("bench", ["train", "--vehicle", "x500", "--to-success", "0.95", "--seeds", "1",
                                 f"--{option}", "3", f"--baseline-{option}", "1", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    key = option.replace("-", "_")
    assert figures[key] == 3 and figures["baseline_" + key] == 1
    history = {name: a[a.index(f"--{option}") + 1] for name, a in argv}
    assert history == {"recipe-seed0": "3", "baseline-seed0": "1"}
    assert all("--" + other not in a for _, a in argv for other in ("action-history", "state-history")
               if other != option)
    assert f"--{option}" not in bench._train_args("x500", bench_args(), "out")


def test_a_baseline_can_run_the_code_of_another_checkout(monkeypatch, capsys, tmp_path):
    """--baseline-checkout DIR: the baseline's processes run DIR's code (a change of code side by
    side, where --baseline-set only changes settings); the figures name both commits. The
    processes are recorded, not run."""
    import shutil
    import subprocess
    from pathlib import Path

    import train.bench as bench

    here = Path(bench.__file__).resolve().parents[1]
    other = tmp_path / "prev"
    shutil.copytree(here / "train", other / "train", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "init", "-q", str(other)], check=True, timeout=30)
    calls = {}

    def record(vid, args, seed, out, extra_sets, history=None, checkout=None):
        calls[out.name] = (checkout, list(extra_sets))
        return {"seed": seed, "reached": True, "time_to_target_s": 1.0}

    monkeypatch.setattr(bench, "run_seed", record)
    assert run_command("bench", ["train", "--to-success", "0.95", "--seeds", "1", "--baseline-checkout", str(other),
                                 "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert calls == {"recipe-seed0": (None, []), "baseline-seed0": (str(other.resolve()), [])}
    assert figures["baseline_checkout"] == {"path": str(other.resolve()), "commit": None}  # no commit yet
    assert figures["commit"] == bench._commit(str(here))


def test_the_seeds_can_start_past_those_a_recipe_was_chosen_on(monkeypatch, capsys):
    """--first-seed S runs seeds S..S+N-1, each recipe on the same ones (recorded, not run)."""
    import train.bench as bench

    calls = []

    def record(vid, args, seed, out, extra_sets, history=None, checkout=None):
        calls.append((out.name, seed))
        return {"seed": seed, "reached": True, "time_to_target_s": 1.0}

    monkeypatch.setattr(bench, "run_seed", record)
    assert run_command("bench", ["train", "--to-success", "0.95", "--seeds", "2", "--first-seed", "5",
                                 "--baseline-set", "train.updates_per_step=4", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["first_seed"] == 5
    assert sorted(calls) == [("baseline-seed5", 5), ("baseline-seed6", 6), ("recipe-seed5", 5), ("recipe-seed6", 6)]
    assert run_command("bench", ["train", "--to-success", "0.95", "--first-seed", "-1"]) != 0
    assert "--first-seed >= 0" in capsys.readouterr().err


def test_a_baseline_checkout_that_is_not_one_is_refused_naming_it(capsys, tmp_path):
    assert run_command("bench", ["train", "--to-success", "0.95", "--seeds", "1",
                                 "--baseline-checkout", str(tmp_path)]) != 0
    assert f"--baseline-checkout {tmp_path}: not a quadhil checkout" in capsys.readouterr().err


def bench_args(**over):
    """The bench's parsed defaults (quadhil bench train with no options), with ``over``."""
    import argparse

    from train.bench import configure

    parser = argparse.ArgumentParser()
    configure(parser)
    return argparse.Namespace(**{**vars(parser.parse_args([])), **over})
