"""TD targets bootstrap through a time-limit truncation and never through a termination."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from train.agent import AgentConfig, DDPGAgent
from train.loop import TrainConfig, Trainer
from sim.env import HoverTaskConfig


def test_td_target_masks_termination_and_bootstraps_truncation(cf_spec):
    agent = DDPGAgent(cf_spec, AgentConfig(actor_hidden=(8,), critic_hidden=(8,), gamma=0.9, jit=False))
    rng = np.random.default_rng(0)
    next_obs = tf.constant(rng.normal(size=(2, cf_spec.obs_dim)).astype(np.float32))
    reward = np.array([1.5, -20.0], dtype=np.float32)
    # row 0: truncated by the time limit (mask 1); row 1: crashed (terminated, mask 0)
    mask = np.array([1.0, 0.0], dtype=np.float32)
    y = agent.td_targets(reward, next_obs, mask).numpy()
    q_next = agent.critic_targets[0]([next_obs, agent.actor_target(next_obs)]).numpy()[:, 0]
    assert abs(q_next[0]) > 1e-6
    np.testing.assert_allclose(y[0], 1.5 + 0.9 * q_next[0], rtol=1e-6)
    assert y[1] == -20.0  # exactly the reward: nothing after a crash


def test_trainer_stores_the_ended_episodes_last_observation_and_the_right_mask(tmp_path, crazyflie, cf_spec):
    """Hand-made endings in a real env: env 0 reaches the time limit, env 1 leaves the box."""
    tc = TrainConfig(num_envs=3, chunk=1, warmup_steps=10**9, replay_capacity=16)
    trainer = Trainer(tmp_path, crazyflie, cf_spec, HoverTaskConfig(), 0,
                      AgentConfig(actor_hidden=(4,), critic_hidden=(4,), jit=False), tc)
    task = trainer.env.task
    task.tick[0] = task.max_ticks - 1  # next tick truncates env 0
    task.sim.state.pos_w[1] = task.target_w[1] + np.array([0.0, 0.0, 10.0])  # env 1 is out of bounds
    trainer._collect(trainer.agent.numpy_actor())
    buf = trainer.buffer
    assert len(buf) == 3
    np.testing.assert_array_equal(buf.mask[:3], [1.0, 0.0, 1.0])  # truncation bootstraps, termination not
    # the stored next_obs of the ended envs is the *final* observation, not the new episode's first
    assert not np.allclose(buf.next_obs[0], trainer.obs[0])
    assert buf.next_obs[1][2] == np.float32(cf_spec.position_error_clip_m)  # z error clipped at the edge
    np.testing.assert_array_equal(buf.next_obs[2], trainer.obs[2])  # a running env: next_obs is its obs
    assert trainer.progress.episodes == 2
