"""The heart of DDPG: the actor's gradient, in both of its forms, and what an actor step may touch."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.train.conftest import assert_an_update_moves_only_the_actor
from train.agent import AgentConfig, DDPGAgent, actor_gradients, observation_noise_std
from train.networks import build_actor, build_critic


def _random_batch(spec, n=32, seed=0):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.normal(np.asarray(spec.obs_mean), np.asarray(spec.obs_std), (n, spec.obs_dim)).astype(np.float32))


@pytest.mark.parametrize("seed, layer_norm", [(0, False), (1, False), (2, False), (0, True)])
def test_both_actor_loss_forms_give_the_same_gradient(cf_spec, seed, layer_norm):
    """Chain rule: grad_w mean Q(s, mu_w(s)) == grad_w mean (dQ/da|frozen . mu_w(s)), also through
    a critic with LayerNorm (agent.critic_layer_norm)."""
    import keras

    keras.utils.set_random_seed(seed)
    actor = build_actor(cf_spec, hidden=(16, 16))
    critic = build_critic(cf_spec, hidden=(16, 16), layer_norm=layer_norm)
    obs = _random_batch(cf_spec, seed=seed)
    _, g_q = actor_gradients(actor, critic, obs, "q")
    _, g_ag = actor_gradients(actor, critic, obs, "action_gradients")
    assert len(g_q) == len(actor.trainable_variables) == len(g_ag)
    for a, b in zip(g_q, g_ag):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    assert any(np.abs(g.numpy()).max() > 0 for g in g_q)  # a real, non-zero gradient was compared


@pytest.mark.parametrize("form, layer_norm", [("q", False), ("action_gradients", False), ("q", True),
                                              ("action_gradients", True)])
def test_actor_step_leaves_every_critic_weight_bit_for_bit_unchanged(cf_spec, form, layer_norm):
    """Only the actor may move in an actor step; letting gradients reach Q would let the actor
    'win' by inflating Q. Checked through the agent's real update with a critic learning rate of 0
    so that any critic change could only come from the actor step (LayerNorm's scale and offset
    included)."""
    agent = DDPGAgent(cf_spec, AgentConfig(actor_hidden=(8, 8), critic_hidden=(8, 8), actor_loss=form,
                                           critic_lr=0.0, tau=0.0, jit=False, critic_layer_norm=layer_norm))
    if layer_norm:
        assert any("norm" in v.path for v in agent.critics[0].trainable_variables)
    assert_an_update_moves_only_the_actor(agent, cf_spec.obs_dim)


def test_smoothness_term_is_the_same_in_both_forms_and_pulls_toward_a_flat_policy(cf_spec):
    """CAPS spatial term: both loss forms add the same penalty (their gradients still agree), and
    a step on the penalty alone makes mu(s) and mu(s + eps) closer."""
    import keras

    from sim.vehicle import load_vehicle

    keras.utils.set_random_seed(3)
    actor = build_actor(cf_spec, hidden=(16, 16))
    critic = build_critic(cf_spec, hidden=(16, 16))
    obs = _random_batch(cf_spec, seed=3)
    std = observation_noise_std(cf_spec, load_vehicle("crazyflie").sensor_noise, scale=50.0)
    noise = tf.constant(np.random.default_rng(3).standard_normal(obs.shape).astype(np.float32) * std)
    _, g_q = actor_gradients(actor, critic, obs, "q", smooth_weight=10.0, obs_noise=noise)
    _, g_ag = actor_gradients(actor, critic, obs, "action_gradients", smooth_weight=10.0, obs_noise=noise)
    _, g_plain = actor_gradients(actor, critic, obs, "q")
    for a, b in zip(g_q, g_ag):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    assert any(not np.allclose(a.numpy(), b.numpy()) for a, b in zip(g_q, g_plain))

    def gap():
        return float(tf.reduce_mean(tf.reduce_sum(tf.square(actor(obs) - actor(obs + noise)), axis=1)))

    before = gap()
    opt = keras.optimizers.Adam(0.01)
    for _ in range(30):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.reduce_sum(tf.square(actor(obs) - actor(obs + noise)), axis=1))
        opt.apply_gradients(zip(tape.gradient(loss, actor.trainable_variables), actor.trainable_variables))
    assert gap() < 0.5 * before


def test_observation_noise_std_follows_the_sensor_noise_per_field(cf_spec):
    from sim.vehicle import load_vehicle

    sn = load_vehicle("crazyflie").sensor_noise
    std = observation_noise_std(cf_spec, sn, scale=2.0)
    assert std.shape == (cf_spec.obs_dim,)
    np.testing.assert_allclose(std[cf_spec.obs_slice("position_error_w")], 2 * sn.position_m)
    np.testing.assert_allclose(std[cf_spec.obs_slice("velocity_w")], 2 * sn.velocity_mps)
    np.testing.assert_allclose(std[cf_spec.obs_slice("omega_b")], 2 * sn.gyro_rad_s)
    assert np.all(std[cf_spec.obs_slice("last_actions")] == 0)  # the action history is exact


def test_past_velocities_and_rates_carry_the_noise_of_their_tick():
    """Without it the smoothness term would let the actor lean on the noisy past estimates at no cost."""
    from sim.contract import integral_spec
    from sim.vehicle import load_vehicle

    x500 = load_vehicle("x500")
    spec, sn = integral_spec(x500, state_history=3), x500.sensor_noise
    std = observation_noise_std(spec, sn)
    np.testing.assert_allclose(std[spec.obs_slice("velocity_history_w")], sn.velocity_mps)
    np.testing.assert_allclose(std[spec.obs_slice("omega_history_b")], sn.gyro_rad_s)


def test_actor_gradients_reject_an_unknown_form(cf_spec):
    actor, critic = build_actor(cf_spec, hidden=(4,)), build_critic(cf_spec, hidden=(4,))
    with pytest.raises(ValueError, match="actor_loss"):
        actor_gradients(actor, critic, _random_batch(cf_spec, 2), "policy_gradient")


@pytest.mark.parametrize("jit", [False, True])
def test_with_a_policy_delay_the_actor_and_the_targets_move_only_on_every_kth_update(cf_spec, jit):
    """agent.policy_delay 3 (TD3's delayed actor): updates 1 and 2 train the critic alone and leave
    the actor and every target as they were; update 3 moves the actor and the targets. Compiled or
    not, the update is the same graph (its loop and branches are written without autograph)."""
    agent = DDPGAgent(cf_spec, AgentConfig(actor_hidden=(8, 8), critic_hidden=(8, 8), policy_delay=3, jit=jit))
    rng = np.random.default_rng(3)
    d = cf_spec.obs_dim

    def batch(k):
        return [rng.standard_normal((k, 16, d)).astype(np.float32), rng.uniform(-1, 1, (k, 16, 4)).astype(np.float32),
                rng.standard_normal((k, 16)).astype(np.float32), rng.standard_normal((k, 16, d)).astype(np.float32),
                np.ones((k, 16), np.float32)]

    def weights():
        return [m.get_weights() for m in (agent.actor, agent.actor_target, agent.critics[0], agent.critic_targets[0])]

    def moved(before, after):
        return [any(not np.array_equal(x, y) for x, y in zip(b, a)) for b, a in zip(before, after)]

    before = weights()
    stats = agent.update(*batch(2))
    assert moved(before, weights()) == [False, False, True, False]
    assert stats["actor_loss"] == 0.0  # no actor step to average
    before = weights()
    stats = agent.update(*batch(1))
    assert moved(before, weights()) == [True, True, True, True]
    assert stats["actor_loss"] != 0.0
    assert int(agent.n_updates.numpy()) == 3
