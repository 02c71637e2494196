"""A training run end to end through the CLI: smoke, checkpoints, resume, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quadhil.cli import run_command
from tests.train.conftest import TINY


def _train(out, *extra, vehicle="crazyflie"):
    return run_command("train", ["--vehicle", vehicle, "--out", str(out), *TINY, *extra])


def _agent_arrays(run_dir):
    with np.load(run_dir / "checkpoint" / "agent.npz") as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "smoke"
    assert _train(out, "--max-steps", "400") == 0
    return out


def test_smoke_training_moves_the_losses_and_writes_a_run(smoke_run):
    from train.networks import load_actor

    cfg = json.loads((smoke_run / "config.json").read_text())
    res = cfg["result"]
    assert res["env_steps"] >= 400 and res["updates"] > 0
    assert res["eval"]["episodes"] == 4 and 0.0 <= res["success_rate"] <= 1.0
    assert json.loads((smoke_run / "eval.json").read_text())["episodes"] == 4
    assert res["last_stats"] is not None
    assert all(np.isfinite(v) for v in res["last_stats"].values())
    for name in ("actor_best.keras", "actor_last.keras", "config.json"):
        assert (smoke_run / name).exists()
    assert cfg["spec"]["action_mode"] == "ctbr" and cfg["spec"]["control_rate_hz"] == 100.0
    # the trained actor's weights moved away from their initialization
    init = _agent_arrays(smoke_run)  # any finite checkpoint
    assert all(np.all(np.isfinite(a)) for a in init)
    actor, spec, _ = load_actor(smoke_run, "last")
    obs = np.tile(np.asarray(spec.obs_mean, np.float32), (3, 1))
    assert np.all(np.isfinite(actor(obs).numpy()))


def test_checkpoint_save_load_gives_identical_actions(smoke_run):
    from train.agent import NumpyActor
    from train.networks import load_actor

    actor, spec, _ = load_actor(smoke_run, "last")
    again, _, _ = load_actor(smoke_run, "last")
    rng = np.random.default_rng(0)
    obs = rng.normal(np.asarray(spec.obs_mean), np.asarray(spec.obs_std), (16, spec.obs_dim)).astype(np.float32)
    np.testing.assert_array_equal(actor(obs).numpy(), again(obs).numpy())
    np.testing.assert_allclose(NumpyActor.from_keras(actor)(obs), actor(obs).numpy(), atol=1e-5)


def test_a_randomly_initialised_actor_saves_as_a_run_directory(tmp_path, cf_spec):
    """The layout the exporter relies on: build_actor + config.json with 'spec'."""
    from train.networks import ACTOR_BEST, CONFIG, build_actor, load_actor

    actor = build_actor(cf_spec)
    actor.save(tmp_path / ACTOR_BEST)
    (tmp_path / CONFIG).write_text(json.dumps({"spec": cf_spec.to_dict()}))
    loaded, spec, _ = load_actor(tmp_path)
    assert spec == cf_spec
    obs = np.zeros((2, cf_spec.obs_dim), np.float32)
    np.testing.assert_array_equal(loaded(obs).numpy(), actor(obs).numpy())


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert _train(straight, "--max-steps", "320") == 0
    assert _train(split, "--max-steps", "160") == 0
    assert run_command("train", ["--vehicle", "crazyflie", "--out", str(split), "--resume", "--max-steps", "320",
                                 "--no-progress", "--eval-episodes", "4"]) == 0
    a, b = _agent_arrays(straight), _agent_arrays(split)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    ra = json.loads((straight / "config.json").read_text())["result"]
    rb = json.loads((split / "config.json").read_text())["result"]
    assert (ra["env_steps"], ra["updates"], ra["episodes"]) == (rb["env_steps"], rb["updates"], rb["episodes"])


@pytest.mark.parametrize("args, message", [
    (["--vehicle", "hexacopter"], "unknown vehicle 'hexacopter'"),
    (["--task", "backflip"], "unknown task 'backflip'"),
    (["--budget-minutes", "0"], "--budget-minutes must be > 0"),
    (["--layout", "nope"], "unknown layout 'nope'"),
    (["--action-history", "-1"], "--action-history must be in 0..64"),
    (["--control-rate-hz", "0"], "--control-rate-hz must be > 0"),
    (["--layout", "px4-nn", "--action-mode", "motors", "--action-history", "2"], "layout 'px4-nn' has no action history"),
    (["--state-history", "17"], "--state-history must be in 0..16"),
    (["--layout", "px4-nn", "--action-mode", "motors", "--state-history", "2"], "layout 'px4-nn' has no state history"),
])
def test_bad_arguments_are_refused_with_a_clear_error(tmp_path, capsys, args, message):
    argv = ["--vehicle", "crazyflie", "--out", str(tmp_path / "r"), "--no-progress", *args]
    assert run_command("train", argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_out_holding_a_run_of_another_vehicle_is_refused(smoke_run, capsys):
    assert run_command("train", ["--vehicle", "x500", "--out", str(smoke_run), "--no-progress"]) == 2
    assert "holds a run of vehicle 'crazyflie', not 'x500'" in capsys.readouterr().err


def test_out_holding_a_run_without_resume_is_refused(smoke_run, capsys):
    assert run_command("train", ["--vehicle", "crazyflie", "--out", str(smoke_run), "--no-progress"]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_resume_from_a_corrupt_checkpoint_is_refused(tmp_path, capsys):
    out = tmp_path / "corrupt"
    assert _train(out, "--max-steps", "80") == 0
    (out / "checkpoint" / "agent.npz").write_bytes(b"not a zip file")
    assert run_command("train", ["--vehicle", "crazyflie", "--out", str(out), "--resume", "--no-progress"]) == 2
    assert "checkpoint is corrupt" in capsys.readouterr().err


def test_resume_without_a_run_is_refused(tmp_path, capsys):
    assert run_command("train", ["--vehicle", "crazyflie", "--out", str(tmp_path / "none"), "--resume",
                                 "--no-progress"]) == 2
    assert "holds no run" in capsys.readouterr().err


def test_eval_cli_writes_eval_json_and_a_plot(smoke_run, capsys):
    assert run_command("eval", [str(smoke_run), "--episodes", "6", "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    figures = json.loads(last)
    for key in ("success_rate", "rmse_m", "crash_rate", "episodes"):
        assert key in figures
    assert figures["episodes"] == 6
    assert json.loads((smoke_run / "eval.json").read_text())["episodes"] == 6
    assert (smoke_run / "eval.png").stat().st_size > 1000


def test_eval_with_link_latency_reports_it_and_refuses_a_negative_one(smoke_run, capsys):
    """A delayed (or nominal) evaluation writes its own file and leaves the run's eval.json alone."""
    assert run_command("eval", [str(smoke_run), "--episodes", "5", "--no-plot"]) == 0
    capsys.readouterr()
    assert run_command("eval", [str(smoke_run), "--episodes", "4", "--latency-ticks", "1", "--no-plot",
                                "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["latency_ticks"] == 1
    assert json.loads((smoke_run / "eval-latency1.json").read_text())["latency_ticks"] == 1
    assert json.loads((smoke_run / "eval.json").read_text())["latency_ticks"] == 0
    assert run_command("eval", [str(smoke_run), "--episodes", "3", "--no-randomization", "--no-plot"]) == 0
    assert json.loads((smoke_run / "eval-nominal.json").read_text())["randomization"] is False
    assert json.loads((smoke_run / "eval.json").read_text())["episodes"] == 5
    assert run_command("eval", [str(smoke_run), "--latency-ticks", "-1"]) == 2
    assert "--latency-ticks" in capsys.readouterr().err


def test_eval_on_a_narrower_training_distribution_writes_its_own_file(smoke_run, capsys):
    """--randomization-scale evaluates on the ranges a preset trained on; eval.json keeps the full ranges."""
    assert run_command("eval", [str(smoke_run), "--episodes", "5", "--no-plot"]) == 0
    assert run_command("eval", [str(smoke_run), "--episodes", "4", "--randomization-scale", "0.5", "--no-plot",
                                "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["randomization_scale"] == 0.5
    assert json.loads((smoke_run / "eval-scale0.5.json").read_text())["episodes"] == 4
    assert json.loads((smoke_run / "eval.json").read_text())["randomization_scale"] == 1.0
    assert run_command("eval", [str(smoke_run), "--randomization-scale", "-0.1"]) == 2
    assert "--randomization-scale" in capsys.readouterr().err


def test_eval_of_a_directory_that_is_not_a_run_is_refused(tmp_path, capsys):
    assert run_command("eval", [str(tmp_path)]) == 2
    assert "not a training run" in capsys.readouterr().err


def test_hover_initialisation_keeps_the_px4nn_clip_layers_intact(tmp_path):
    """px4-nn's 'action' layer is a frozen clip; the hover bias goes into 'action_raw'."""
    from sim.env import HoverTaskConfig
    from sim.vehicle import load_vehicle
    from train.agent import AgentConfig
    from train.loop import TrainConfig, Trainer, make_spec

    x500 = load_vehicle("x500")
    spec = make_spec(x500, "px4-nn", "motors", 100.0, HoverTaskConfig())
    trainer = Trainer(tmp_path, x500, spec, HoverTaskConfig(), 0,
                      AgentConfig(actor_hidden=(8,), critic_hidden=(8,), jit=False), TrainConfig(num_envs=2))
    clip = trainer.agent.actor.get_layer("action").get_weights()
    np.testing.assert_array_equal(clip[1], -np.ones(4, np.float32))
    np.testing.assert_array_equal(clip[0], np.vstack([np.eye(4), -np.eye(4)]).astype(np.float32))
    from sim.contract import hover_action

    out = trainer.agent.numpy_actor()(np.tile(np.asarray(spec.obs_mean, np.float32), (1, 1)))
    np.testing.assert_allclose(out[0], hover_action(spec, x500), atol=0.05)


def test_presets_keep_the_horizon_in_seconds_at_another_control_rate():
    """gamma and the n-step window were tuned at 100 Hz; at 200 Hz they cover the same 1 s / 50 ms."""
    from train.presets import preset

    at_100, at_200 = preset("x500", "motors", 100.0), preset("x500", "motors", 200.0)
    assert "gamma" not in at_100["agent"] and at_100["train"]["n_step"] == 5
    assert at_200["agent"]["gamma"] == 0.995 and at_200["train"]["n_step"] == 10
    at_50 = preset("crazyflie", "ctbr", 50.0)
    assert at_50["agent"]["gamma"] == 0.9801 and at_50["train"]["n_step"] == 2
    x500_at_50 = preset("x500", "ctbr", 50.0)  # v6 and later state an 8-step (80 ms) window at 100 Hz
    assert x500_at_50["agent"]["gamma"] == 0.9801 and x500_at_50["train"]["n_step"] == 4


def test_the_x500_flies_ctbr_at_50_hz_from_its_teacher_by_default(tmp_path):
    """Preset v12: x500 ctbr runs default to 50 Hz, a LayerNorm critic, 80 ms targets, 2 updates per
    tick, 1.5x the
    randomization ranges in training, quarter-turn augmentation, the integral layout with the last
    three actions and the cascade
    teacher with its x500 gains (its yaw-rate setpoint yielding to a saturated collective, tilt-rate
    damping) and half
    the Crazyflie's pull (bc_weight 1); its motor-level runs and the
    Crazyflie keep the plain critic, and the x500's motor-level runs no augmentation; an explicit
    --control-rate-hz wins."""
    from train.baseline import TEACHER_GAINS
    from train.presets import default_action_history, default_control_rate_hz, default_layout, preset

    assert TEACHER_GAINS[("x500", "ctbr")].yaw_yield_thrust_fraction == 0.8 and TEACHER_GAINS[("x500", "ctbr")].k_omega > 0
    assert default_control_rate_hz("x500", "ctbr") == 50.0
    assert default_control_rate_hz("x500", "motors") == default_control_rate_hz("crazyflie", "ctbr") == 100.0
    assert preset("x500", "ctbr", 50.0)["name"] == "x500-ctbr-v12" and default_layout("x500", "ctbr") == "integral"
    assert preset("x500", "ctbr", 50.0)["train"]["updates_per_step"] == 2.0
    assert preset("x500", "motors", 200.0)["train"]["updates_per_step"] == 4.0  # not measured at 2: the common 4
    assert default_action_history("x500", "ctbr") == 3 and default_action_history("x500", "motors") is None
    assert preset("x500", "motors", 200.0)["name"] == "x500-motors-v4"
    assert "critic_layer_norm" not in preset("crazyflie", "ctbr")["agent"]
    assert "randomization_scale" not in preset("x500", "motors", 200.0)["realism"]
    assert "yaw_symmetry" not in preset("x500", "motors", 200.0)["train"]
    assert _train(tmp_path / "x", "--max-steps", "80", vehicle="x500") == 0
    cfg = json.loads((tmp_path / "x" / "config.json").read_text())
    assert cfg["spec"]["control_rate_hz"] == 50.0 and cfg["agent"]["critic_layer_norm"] is True
    assert cfg["train"]["n_step"] == 4 and cfg["task_config"]["realism"]["randomization_scale"] == 1.5
    assert cfg["train"]["yaw_symmetry"] is True and cfg["spec"]["layout"] == "integral"
    assert cfg["train"]["teacher"] == "cascade" and cfg["agent"]["bc_weight"] == 1.0 and cfg["agent"]["actor_lr"] == 3e-4
    assert cfg["preset"] == "x500-ctbr-v12" and cfg["spec"]["action_history"] == 3
    assert _train(tmp_path / "y", "--max-steps", "80", "--control-rate-hz", "100", vehicle="x500") == 0
    assert json.loads((tmp_path / "y" / "config.json").read_text())["spec"]["control_rate_hz"] == 100.0


def test_the_crazyflie_flying_ctbr_starts_from_the_cascade_on_the_full_ranges_by_default():
    """Crazyflie ctbr preset v12 = v7 (quarter turns, 0-1 ticks of latency, a yaw-rate cost, a CAPS
    perturbation 10x the sensor noise, three past actions, periodic evaluations delayed 0-1 ticks)
    on the integral layout, started from the cascade teacher with a Q-filtered pull toward it, at
    actor_lr 3e-4, on the vehicle file's full ranges (v8), at 2 updates per tick (v9), pulled
    toward the teacher with weight 4 (v10), exploring with noise of std 0.4 at the start (v11),
    evaluated every 25 k env steps until it meets the bar and every 50 k after (v12); the
    motor-level preset keeps the common 4 updates, its pull of 2, the common 0.2 and 50 k."""
    from train.presets import default_action_history, default_layout, preset, without_teacher

    cf = preset("crazyflie", "ctbr")
    assert cf["name"] == "crazyflie-ctbr-v12" and cf["train"]["yaw_symmetry"] is True
    assert cf["train"]["eval_every_steps"] == 25_000 and cf["train"]["eval_every_steps_after_target"] == 50_000
    assert preset("crazyflie", "motors", 250.0)["train"]["eval_every_steps"] == 50_000
    assert cf["train"]["sigma_start"] == 0.4 and preset("crazyflie", "motors", 250.0)["train"]["sigma_start"] == 0.2
    assert cf["train"]["updates_per_step"] == 2.0 and preset("crazyflie", "motors", 250.0)["train"]["updates_per_step"] == 4.0
    assert cf["realism"]["randomization_scale"] == 1.0 and cf["reward"]["yaw_rate"] == 0.1
    assert cf["realism"]["latency_ticks_max"] == 1 and "randomization_ramp_steps" not in cf["train"]
    assert cf["agent"]["smooth_noise_scale"] == 10.0 and cf["train"]["eval_latency_ticks_max"] == 1
    assert cf["train"]["teacher"] == "cascade" and cf["train"]["teacher_steps"] == 90_000
    assert cf["agent"]["bc_weight"] == 4.0 and cf["agent"]["actor_lr"] == 3e-4
    assert default_layout("crazyflie", "ctbr") == "integral"
    bare = without_teacher(cf)
    assert "teacher" not in bare["train"] and "bc_weight" not in bare["agent"] and bare["agent"]["actor_lr"] == 3e-4
    assert default_action_history("crazyflie", "ctbr") == 3
    assert default_action_history("x500", "ctbr") == 3  # x500 ctbr v11 and later too


def test_the_crazyflie_flying_motors_starts_from_the_motor_level_cascade_at_250_hz():
    """Crazyflie motors preset v5: v8's machinery (integral layout, three past actions, the teacher
    and the pull toward it, quarter turns, the CAPS perturbation, delayed periodic evaluations) at
    250 Hz, where the motor-level teacher survives a tick of delay; 8,000 cloning batches."""
    from train.presets import default_action_history, default_control_rate_hz, default_layout, preset

    m = preset("crazyflie", "motors", default_control_rate_hz("crazyflie", "motors"))
    assert m["name"] == "crazyflie-motors-v5" and default_control_rate_hz("crazyflie", "motors") == 250.0
    assert (default_layout("crazyflie", "motors"), default_action_history("crazyflie", "motors")) == ("integral", 3)
    assert m["train"]["teacher"] == "cascade" and m["train"]["teacher_steps"] == 150_000
    assert m["train"]["teacher_bc_updates"] == 8_000 and m["agent"]["bc_weight"] == 2.0
    assert m["train"]["yaw_symmetry"] is True and m["agent"]["smooth_noise_scale"] == 10.0
    # the recipe's horizons are stated at 100 Hz: 1 s of discount, 50 ms of TD target
    assert m["agent"]["gamma"] == round(0.99 ** (100 / 250), 4) and m["train"]["n_step"] == 12


def test_acting_beside_learning_is_reproducible_and_old_runs_resume_in_turn(tmp_path):
    """With train.overlap (the default) the gradient steps run in a worker thread while the envs
    step; every random draw stays in the main thread, so two runs of one seed are identical.
    A config.json written before the flag existed resumes in the old act-then-update order."""
    from train.loop import TrainConfig

    first, second, in_turn = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert _train(first, "--max-steps", "240") == 0
    assert _train(second, "--max-steps", "240") == 0
    for x, y in zip(_agent_arrays(first), _agent_arrays(second)):
        np.testing.assert_array_equal(x, y)
    assert json.loads((first / "config.json").read_text())["train"]["overlap"] is True
    assert _train(in_turn, "--max-steps", "240", "--set", "train.overlap=false") == 0
    assert json.loads((in_turn / "config.json").read_text())["result"]["updates"] > 0
    assert TrainConfig.from_dict({}).overlap is False
    assert TrainConfig.from_dict({"overlap": True}).overlap is True


def test_a_longer_action_history_and_a_layer_norm_critic_train_and_evaluate_like_any_run(tmp_path, capsys):
    """``--action-history 3`` puts the last three actions (newest first) in the observation, with
    the hover action as their normalization mean; ``agent.critic_layer_norm`` changes only the
    critic. The run evaluates and loads like any other."""
    from sim.contract import hover_action
    from sim.vehicle import load_vehicle
    from train.networks import load_actor

    out = tmp_path / "h3"
    assert _train(out, "--max-steps", "200", "--layout", "default", "--action-history", "3",
                  "--set", "agent.critic_layer_norm=true") == 0
    actor, spec, cfg = load_actor(out)
    assert spec.action_history == 3 and spec.obs_slice("last_actions") == slice(18, 30)
    assert actor.input_shape == (None, 30)
    hover = hover_action(spec, load_vehicle("crazyflie"))
    np.testing.assert_allclose(np.asarray(spec.obs_mean)[18:30], np.tile(hover, 3))
    assert cfg["agent"]["critic_layer_norm"] is True
    capsys.readouterr()
    assert run_command("eval", [str(out), "--episodes", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["episodes"] == 4
    from train.sb3_compare import load_quadhil_run  # the SB3 comparison rebuilds the same spec

    assert load_quadhil_run(out).spec.to_json() == spec.to_json()


def test_a_state_history_trains_evaluates_and_rebuilds_like_any_run(tmp_path, capsys):
    """``--state-history 2`` puts the two ticks before this one (velocity, body rates) after the
    layout's fields, scaled as the current ones; the run evaluates, and the SB3 comparison rebuilds
    the same spec."""
    from train.networks import load_actor
    from train.sb3_compare import load_quadhil_run

    out = tmp_path / "s2"
    assert _train(out, "--max-steps", "200", "--state-history", "2") == 0
    actor, spec, _ = load_actor(out)
    assert spec.state_history == 2 and [f.name for f in spec.observation][-2:] == ["velocity_history_w",
                                                                                    "omega_history_b"]
    assert actor.input_shape == (None, spec.obs_dim)
    std = np.asarray(spec.obs_std)
    np.testing.assert_array_equal(std[spec.obs_slice("velocity_history_w")], np.tile(std[spec.obs_slice("velocity_w")], 2))
    np.testing.assert_array_equal(std[spec.obs_slice("omega_history_b")], np.tile(std[spec.obs_slice("omega_b")], 2))
    capsys.readouterr()
    assert run_command("eval", [str(out), "--episodes", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["episodes"] == 4
    assert load_quadhil_run(out).spec.to_json() == spec.to_json()


def test_a_crazyflie_ctbr_run_observes_the_presets_layout_and_three_actions_unless_told_otherwise(tmp_path):
    """Preset v8's layout (integral) and action history (3) apply unless --layout or
    --action-history say otherwise; another layout also drops the preset's teacher."""
    import json

    from train.networks import load_run_spec

    assert _train(tmp_path / "preset", "--max-steps", "40") == 0
    spec, cfg = load_run_spec(tmp_path / "preset")
    assert (spec.layout, spec.action_history, cfg["train"]["teacher"]) == ("integral", 3, "cascade")
    assert _train(tmp_path / "one", "--max-steps", "40", "--action-history", "1") == 0
    assert load_run_spec(tmp_path / "one")[0].action_history == 1
    assert _train(tmp_path / "default", "--max-steps", "40", "--layout", "default") == 0
    spec, cfg = load_run_spec(tmp_path / "default")
    assert (spec.layout, spec.action_history, cfg["train"]["teacher"], cfg["agent"]["bc_weight"]) == ("default", 1, "", 0.0)
    assert "warm_start" not in json.loads((tmp_path / "default" / "config.json").read_text()).get("result", {})
    assert _train(tmp_path / "motors", "--max-steps", "40", "--action-mode", "motors", "--layout", "default") == 0
    assert load_run_spec(tmp_path / "motors")[0].action_history == 1
