"""The averaged actor (agent.average_tau): a slow Polyak average of the actor that the periodic
evaluation flies as one more candidate, and that changes nothing the run learns."""

from __future__ import annotations

import numpy as np

from train.agent import AgentConfig, DDPGAgent


def _batch(spec, k=1, b=16, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(np.asarray(spec.obs_mean), np.asarray(spec.obs_std), (k, b, spec.obs_dim)).astype(np.float32)
    next_obs = rng.normal(np.asarray(spec.obs_mean), np.asarray(spec.obs_std), (k, b, spec.obs_dim)).astype(np.float32)
    act = rng.uniform(-1, 1, (k, b, spec.action_dim)).astype(np.float32)
    rew = rng.normal(size=(k, b)).astype(np.float32)
    return obs, act, rew, next_obs, np.ones((k, b), np.float32)


def test_without_average_tau_there_is_no_averaged_actor_and_the_checkpoint_is_unchanged(cf_spec):
    plain = DDPGAgent(cf_spec, AgentConfig(actor_hidden=(8, 8), critic_hidden=(8, 8), jit=False))
    averaged = DDPGAgent(cf_spec, AgentConfig(actor_hidden=(8, 8), critic_hidden=(8, 8), jit=False, average_tau=0.1))
    assert plain.actor_average is None
    assert len(averaged.variables()) == len(plain.variables()) + len(averaged.actor.weights)


def test_the_average_moves_toward_the_actor_at_its_own_rate_after_every_actor_step(cf_spec):
    """average' = (1 - tau_avg) average + tau_avg actor', with the actor after its step; the target
    actor keeps the agent's tau."""
    agent = DDPGAgent(cf_spec, AgentConfig(actor_hidden=(8, 8), critic_hidden=(8, 8), jit=False,
                                           tau=0.01, average_tau=0.25, actor_lr=1e-2))
    before = agent.actor.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(agent.actor_average.get_weights(), before))
    agent.update(*_batch(cf_spec))
    after = agent.actor.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(after, before))  # the actor did move
    for avg, b, a in zip(agent.actor_average.get_weights(), before, after):
        np.testing.assert_allclose(avg, 0.75 * b + 0.25 * a, rtol=1e-5, atol=1e-7)
    for tgt, b, a in zip(agent.actor_target.get_weights(), before, after):
        np.testing.assert_allclose(tgt, 0.99 * b + 0.01 * a, rtol=1e-5, atol=1e-7)


def test_cloning_resets_the_average_to_the_clone(cf_spec):
    agent = DDPGAgent(cf_spec, AgentConfig(actor_hidden=(8, 8), critic_hidden=(8, 8), jit=False, average_tau=0.01))
    obs, _, _, _, _ = _batch(cf_spec, b=32)
    agent.behaviour_clone(obs[0], np.full((32, cf_spec.action_dim), 0.3, np.float32), np.arange(32)[None, :16])
    assert all(np.array_equal(a, b) for a, b in zip(agent.actor_average.get_weights(), agent.actor.get_weights()))


def test_the_average_is_evaluated_and_changes_no_weight_the_run_trains(tmp_path, capsys, monkeypatch):
    """A run with the average trains the same actor, critic and targets as one without it (the
    average is only evaluated), and its periodic evaluations fly it beside the actor and the target."""
    from tests.train.conftest import run_tiny
    from train.loop import Trainer

    flown: list = []
    real = Trainer._eval_snapshot

    def spy(self):
        snap = real(self)
        flown.append([which for which, _ in snap["models"]])
        return snap

    monkeypatch.setattr(Trainer, "_eval_snapshot", spy)
    out_a, res_a = run_tiny(tmp_path, capsys, "averaged", "agent.average_tau=0.05")
    monkeypatch.undo()
    out_b, res_b = run_tiny(tmp_path, capsys, "plain", "agent.average_tau=0")
    assert flown and flown[-1] == ["actor", "target", "average"]
    assert all(names in (["actor"], ["actor", "target", "average"]) for names in flown)
    assert res_a["last_eval"]["env_steps"] == res_b["last_eval"]["env_steps"] > 0
    with np.load(out_a / "checkpoint" / "agent.npz") as za, np.load(out_b / "checkpoint" / "agent.npz") as zb:
        assert len(za.files) > len(zb.files)
        assert all(np.array_equal(za[f], zb[f]) for f in zb.files)  # the shared variables come first
