"""``quadhil bench sb3``: the SB3 adapter of the batched hover env keeps SB3's vec-env contract,
optimises the trainer's shaped reward, and the comparison runs end to end.

Needs the optional ``compare`` extra (stable-baselines3, torch); skipped where it is not installed.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from sim.contract import hover_action  # noqa: E402
from sim.env import HoverTaskConfig, HoverVecEnv  # noqa: E402
from sim.errors import QuadhilError  # noqa: E402
from sim.randomization import RealismConfig  # noqa: E402
from train import sb3_compare  # noqa: E402
from train.loop import TrainConfig, shaping  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COMMITTED_RUN = REPO / "policies" / "crazyflie-hover"  # a finished quadhil run (config.json with a result)
N = 8


def make_pair(cf_spec, task: HoverTaskConfig, tc: TrainConfig, seed: int = 3):
    """The adapter and an identical bare HoverVecEnv to compare it with."""
    adapter = sb3_compare.make_sb3_vec_env(HoverVecEnv("crazyflie", N, spec=cf_spec, config=task, seed=seed), tc)
    twin = HoverVecEnv("crazyflie", N, spec=cf_spec, config=task, seed=seed)
    return adapter, twin


def hover(cf_spec, crazyflie):
    return np.tile(hover_action(cf_spec, crazyflie), (N, 1)).astype(np.float32)


def test_reset_and_step_have_sb3_vec_env_shapes(cf_spec, crazyflie):
    adapter, _ = make_pair(cf_spec, HoverTaskConfig(), TrainConfig())
    obs = adapter.reset()
    assert obs.shape == (N, cf_spec.obs_dim) and obs.dtype == np.float32
    assert adapter.num_envs == N and adapter.action_space.shape == (4,)
    obs, reward, done, infos = adapter.step(hover(cf_spec, crazyflie))
    assert obs.shape == (N, cf_spec.obs_dim) and obs.dtype == np.float32
    assert reward.shape == (N,) and reward.dtype == np.float32
    assert done.shape == (N,) and done.dtype == bool
    assert isinstance(infos, list) and len(infos) == N


def test_time_limit_end_restarts_in_the_same_step_and_bootstraps(cf_spec, crazyflie):
    task = HoverTaskConfig(episode_s=0.05, hold_s=0.01, realism=RealismConfig.off())  # 5 ticks, nobody crashes
    adapter, twin = make_pair(cf_spec, task, TrainConfig())
    adapter.reset()
    twin.reset()
    for _ in range(4):
        _, _, done, infos = adapter.step(hover(cf_spec, crazyflie))
        twin.step(hover(cf_spec, crazyflie))
        assert not done.any() and infos == [{}] * N
    obs, _, done, infos = adapter.step(hover(cf_spec, crazyflie))
    twin_obs, _, terminated, truncated, info = twin.step(hover(cf_spec, crazyflie))
    assert done.all() and truncated.all() and not terminated.any()
    for i in range(N):
        assert infos[i]["TimeLimit.truncated"] is True  # SB3 bootstraps through a time limit
        np.testing.assert_array_equal(infos[i]["terminal_observation"], info["final_obs"][i])
    np.testing.assert_array_equal(obs, twin_obs)  # already the new episodes' first observations
    assert not np.allclose(obs, np.stack([d["terminal_observation"] for d in infos]))


def test_termination_is_not_a_truncation(cf_spec, crazyflie):
    task = HoverTaskConfig(bounds_m=0.01)  # every throw starts outside a 1 cm box: out of bounds at once
    adapter, _ = make_pair(cf_spec, task, TrainConfig())
    adapter.reset()
    _, _, done, infos = adapter.step(hover(cf_spec, crazyflie))
    assert done.all()
    assert all(d["TimeLimit.truncated"] is False and "terminal_observation" in d for d in infos)


def test_reward_is_the_trainers_shaped_reward(cf_spec, crazyflie):
    # a wide precision bonus so the shaping is visible at throw distances
    tc = TrainConfig(precision_bonus=1.0, precision_scale_m=1.0)
    adapter, twin = make_pair(cf_spec, HoverTaskConfig(), tc)
    adapter.reset()
    twin.reset()
    rng = np.random.default_rng(0)
    shaped_somewhere = False
    for _ in range(30):
        action = np.clip(hover(cf_spec, crazyflie) + 0.1 * rng.standard_normal((N, 4)), -1, 1).astype(np.float32)
        _, reward, _, _ = adapter.step(action)
        _, raw, terminated, _, info = twin.step(action)
        expected = raw + np.where(terminated, 0.0, shaping(info["distance_m"], tc)).astype(np.float32)
        np.testing.assert_allclose(reward, expected, rtol=1e-6)
        shaped_somewhere |= bool(np.any(np.abs(reward - raw) > 1e-3))
    assert shaped_somewhere


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sb3_compare.configure(parser)
    return parser.parse_args(list(argv))


def test_a_tiny_comparison_prints_both_sides_as_one_json_line(capsys):
    args = parse("--quadhil-runs", str(COMMITTED_RUN), "--max-steps", "240", "--learning-starts", "80",
                 "--eval-every-steps", "160", "--eval-episodes", "4", "--json")
    assert sb3_compare.run(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["vehicle"] == "crazyflie" and out["sb3_config"]["net_arch_pi"] == [64, 64]
    (seed,) = out["seeds"]
    committed = json.loads((COMMITTED_RUN / "config.json").read_text())
    assert seed["seed"] == committed["seed"]
    assert seed["quadhil"]["time_to_95_s"] == committed["result"]["time_to_target_s"]
    sb3 = seed["sb3"]
    assert sb3["env_steps"] == 240
    assert sb3["updates"] == 2 * (240 - 80) // N  # 2 gradient steps per vec step after the warm-up
    assert [e["env_steps"] for e in sb3["evals"]] == [160, 240]  # periodic, then the final one
    assert 0.0 <= sb3["best_success"] <= 1.0
    assert "time_to_95_s" in sb3 and {"ratio", "ratio_lower_bound"} <= seed.keys()
    assert sb3["sb3_defaults"]["policy_delay"] == 2


def test_missing_stable_baselines3_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)  # what an uninstalled package looks like
    with pytest.raises(QuadhilError, match=r"pip install -e \.\[compare\]"):
        sb3_compare.run(parse("--quadhil-runs", str(COMMITTED_RUN), "--max-steps", "8"))


def test_runs_that_do_not_match_the_request_are_refused(tmp_path):
    with pytest.raises(QuadhilError, match="no config.json"):
        sb3_compare.load_quadhil_run(tmp_path)
    with pytest.raises(QuadhilError, match="do not match"):
        sb3_compare.run(parse("--quadhil-runs", str(COMMITTED_RUN), "--seeds", "1", "--max-steps", "8"))
    with pytest.raises(QuadhilError, match="not --vehicle"):
        sb3_compare.run(parse("--vehicle", "x500", "--quadhil-runs", str(COMMITTED_RUN), "--max-steps", "8"))
    unfinished = tmp_path / "run"
    unfinished.mkdir()
    cfg = json.loads((COMMITTED_RUN / "config.json").read_text())
    del cfg["result"]
    (unfinished / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(QuadhilError, match="no result"):
        sb3_compare.load_quadhil_run(unfinished)
