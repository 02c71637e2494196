"""The privileged (asymmetric) critic: the critic sees the hidden airframe, the actor never does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from quadhil.cli import run_command
from sim.env import HoverTask
from tests.train.conftest import TINY, assert_an_update_moves_only_the_actor
from train.agent import AgentConfig, DDPGAgent, actor_gradients
from train.networks import build_actor, build_critic

P = HoverTask.PRIVILEGED_DIM


def _rows(spec, n, seed):
    """(observation batch, [observation | privileged] batch) with the same observation part."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(np.asarray(spec.obs_mean), np.asarray(spec.obs_std), (n, spec.obs_dim)).astype(np.float32)
    priv = rng.standard_normal((n, P)).astype(np.float32)
    return tf.constant(obs), tf.constant(np.hstack([obs, priv]))


@pytest.mark.parametrize("seed", [0, 1])
def test_both_actor_loss_forms_still_agree_when_the_critic_reads_privileged_columns(cf_spec, seed):
    import keras

    keras.utils.set_random_seed(seed)
    actor = build_actor(cf_spec, hidden=(16, 16))
    critic = build_critic(cf_spec, hidden=(16, 16), privileged_dim=P)
    obs, rows = _rows(cf_spec, 32, seed)
    _, g_q = actor_gradients(actor, critic, obs, "q", critic_obs=rows)
    _, g_ag = actor_gradients(actor, critic, obs, "action_gradients", critic_obs=rows)
    for a, b in zip(g_q, g_ag):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    # the privileged columns change the actor's gradient: the critic really uses them
    zeroed = tf.concat([obs, tf.zeros_like(rows[:, cf_spec.obs_dim:])], axis=1)
    _, g_zero = actor_gradients(actor, critic, obs, "q", critic_obs=zeroed)
    assert any(not np.allclose(a.numpy(), b.numpy()) for a, b in zip(g_q, g_zero))


@pytest.mark.parametrize("form", ["q", "action_gradients"])
def test_an_actor_step_with_a_privileged_critic_leaves_the_critic_bit_for_bit_unchanged(cf_spec, form):
    agent = DDPGAgent(cf_spec, AgentConfig(actor_hidden=(8, 8), critic_hidden=(8, 8), actor_loss=form, critic_lr=0.0,
                                           tau=0.0, jit=False, privileged_critic=True), privileged_dim=P)
    assert agent.actor.input_shape == (None, cf_spec.obs_dim)  # the exported policy takes observations only
    assert agent.critics[0].input_shape[0] == (None, cf_spec.obs_dim + P)
    assert_an_update_moves_only_the_actor(agent, cf_spec.obs_dim + P)


def test_replay_rows_of_the_wrong_width_and_a_missing_width_are_refused(cf_spec):
    with pytest.raises(ValueError, match="privileged_dim"):
        DDPGAgent(cf_spec, AgentConfig(actor_hidden=(4,), critic_hidden=(4,), privileged_critic=True))
    agent = DDPGAgent(cf_spec, AgentConfig(actor_hidden=(4,), critic_hidden=(4,), jit=False, privileged_critic=True),
                      privileged_dim=P)
    obs = np.zeros((1, 4, cf_spec.obs_dim), np.float32)  # observation columns only
    with pytest.raises(ValueError, match=f"{cf_spec.obs_dim + P} wide"):
        agent.update(obs, np.zeros((1, 4, 4), np.float32), np.zeros((1, 4), np.float32), obs, np.ones((1, 4), np.float32))


def test_training_with_a_privileged_critic_stores_the_airframe_and_exports_an_observation_only_actor(tmp_path):
    from train.networks import load_actor

    out = tmp_path / "priv"
    assert run_command("train", ["--vehicle", "x500", "--out", str(out), *TINY, "--max-steps", "240",
                                 "--set", "agent.privileged_critic=true"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["agent"]["privileged_critic"] is True and cfg["result"]["updates"] > 0
    actor, spec, _ = load_actor(out, "last")
    assert actor.input_shape == (None, spec.obs_dim)
    with np.load(out / "checkpoint" / "replay.npz") as z:
        rows = z["obs"]
    assert rows.shape[1] == spec.obs_dim + P
    priv = rows[:, spec.obs_dim:]
    assert np.all(np.isfinite(priv)) and np.abs(priv[:, 0]).max() > 0  # randomized masses were recorded


# --- the airframe head (agent.airframe_aux_weight): the actor's features learn to identify -------

def test_the_airframe_head_learns_to_predict_the_hidden_airframe_from_the_actors_features(cf_spec):
    """A head on the actor's last hidden layer is fitted to the privileged columns: its error falls,
    the actor's trunk moves with it, and the actor itself (what is exported) keeps its shape."""
    import keras

    keras.utils.set_random_seed(0)
    cfg = AgentConfig(actor_hidden=(32, 32), critic_hidden=(8, 8), critic_lr=0.0, tau=0.0, jit=False,
                      privileged_critic=True, airframe_aux_weight=50.0, actor_lr=3e-3)
    agent = DDPGAgent(cf_spec, cfg, privileged_dim=P)
    rng = np.random.default_rng(0)
    obs = rng.normal(np.asarray(cf_spec.obs_mean), np.asarray(cf_spec.obs_std), (256, cf_spec.obs_dim))
    priv = np.zeros((256, P))
    priv[:, 0] = np.tanh(obs[:, 0] / cf_spec.obs_std[0])  # an airframe the observation reveals
    rows = np.hstack([obs, priv]).astype(np.float32)[None]

    def error():
        return float(np.mean((agent.aux(rows[0, :, :cf_spec.obs_dim]).numpy() - priv) ** 2))

    before, trunk0 = error(), agent.actor.get_layer("hidden_0").get_weights()[0].copy()
    for _ in range(60):
        agent.update(rows, np.zeros((1, 256, 4), np.float32), np.zeros((1, 256), np.float32), rows,
                     np.ones((1, 256), np.float32))
    assert error() < 0.5 * before
    assert not np.allclose(agent.actor.get_layer("hidden_0").get_weights()[0], trunk0)
    assert agent.actor.output_shape == (None, 4) and "airframe_head" not in [l.name for l in agent.actor.layers]
    assert len(agent.variables()) == len(DDPGAgent(cf_spec, cfg, privileged_dim=P).variables())  # head in checkpoints


def test_each_update_reports_how_much_of_the_airframe_the_head_explains_before_it_steps(cf_spec):
    """'airframe_r2': 1 - squared error / squared deviation from the batch mean, pooled over the
    privileged columns, of the head's prediction on the batch, taken before the step moves it."""
    import keras

    keras.utils.set_random_seed(3)
    cfg = AgentConfig(actor_hidden=(16, 16), critic_hidden=(8, 8), jit=False, privileged_critic=True,
                      airframe_aux_weight=1.0)
    agent = DDPGAgent(cf_spec, cfg, privileged_dim=P)
    obs, rows = _rows(cf_spec, 64, seed=7)
    priv = rows.numpy()[:, cf_spec.obs_dim:]
    predicted = agent.aux(obs).numpy()
    expected = 1.0 - np.sum((predicted - priv) ** 2) / np.sum((priv - priv.mean(axis=0)) ** 2)
    batch = rows.numpy()[None]
    stats = agent.update(batch, np.zeros((1, 64, 4), np.float32), np.zeros((1, 64), np.float32), batch,
                         np.ones((1, 64), np.float32))
    assert stats["airframe_r2"] == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert not np.allclose(agent.aux(obs).numpy(), predicted)  # and then the step moved the head
    agent.actor_enabled.assign(False)  # critic-only updates (the warm start's) have no figure
    assert np.isnan(agent.update(batch, np.zeros((1, 64, 4), np.float32), np.zeros((1, 64), np.float32), batch,
                                 np.ones((1, 64), np.float32))["airframe_r2"])
    plain = DDPGAgent(cf_spec, AgentConfig(actor_hidden=(4,), critic_hidden=(4,), jit=False))
    few = batch[..., :cf_spec.obs_dim]  # no airframe columns, no head: no figure
    assert "airframe_r2" not in plain.update(few, np.zeros((1, 64, 4), np.float32), np.zeros((1, 64), np.float32),
                                             few, np.ones((1, 64), np.float32))


def test_a_run_with_the_airframe_head_logs_its_r2_to_tensorboard(tmp_path, capsys):
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tests.train.conftest import run_tiny

    out, _ = run_tiny(tmp_path, capsys, "aux", "agent.privileged_critic=true", "agent.airframe_aux_weight=1.0",
                      "train.log_every_s=0")
    ea = EventAccumulator(str(out / "tb"), size_guidance={"tensors": 0})
    ea.Reload()
    r2 = [float(tf.make_ndarray(e.tensor_proto)) for e in ea.Tensors("airframe/r2")]
    assert r2 and all(np.isfinite(v) and v <= 1.0 for v in r2)


def test_the_airframe_head_needs_the_replays_airframe_columns(cf_spec):
    with pytest.raises(ValueError, match="set privileged_critic too"):
        DDPGAgent(cf_spec, AgentConfig(actor_hidden=(4,), critic_hidden=(4,), airframe_aux_weight=1.0))
