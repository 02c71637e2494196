"""n-step transitions from a batched env with same-step auto-reset.

At 100 Hz a one-step TD target moves value information back one tick (10 ms) per update; an
n-step target r_t + g r_{t+1} + ... + g^(n-1) r_{t+n-1} + g^n Q'(s_{t+n}) moves it n ticks, which
is most of what makes learning fast at high control rates. Episode ends inside the window cut the
sum short: a *termination* emits the pending transitions with no bootstrap, a *truncation*
bootstraps from the ended episode's final observation with g^k for the k rewards summed.

Emitted transitions carry ``discount_mask`` = g^(k-1) (or 0 after a termination); the agent's
target multiplies by g once more, so the bootstrap weight is g^k. n = 1 is plain one-step DDPG.
"""

from __future__ import annotations

import numpy as np


class NStepAccumulator:
    """Per-env queues of pending transitions, all envs stepping together."""

    def __init__(self, num_envs: int, obs_dim: int, n: int, gamma: float, action_dim: int = 4):
        if n < 1:
            raise ValueError("n_step must be >= 1")
        self.n, self.gamma = n, gamma
        self.obs = np.zeros((num_envs, n, obs_dim), np.float32)
        self.act = np.zeros((num_envs, n, action_dim), np.float32)
        self.ret = np.zeros((num_envs, n), np.float64)
        self.k = np.zeros((num_envs, n), np.int64)  # rewards summed so far; 0 = empty slot
        self.t = 0

    def step(self, obs, action, reward, final_obs, terminated, truncated):
        """Add one tick's (N,) transitions; returns the completed (obs, action, return, next_obs,
        discount_mask) arrays (any length, maybe 0)."""
        valid = self.k > 0
        self.ret += np.where(valid, self.gamma ** self.k * reward[:, None], 0.0)
        self.k += valid
        s = self.t % self.n
        self.t += 1
        self.obs[:, s], self.act[:, s], self.ret[:, s], self.k[:, s] = obs, action, reward, 1
        done = terminated | truncated
        emit = (self.k == self.n) | done[:, None] & (self.k > 0)
        env_i, slot_i = np.nonzero(emit)
        k = self.k[env_i, slot_i]
        mask = (self.gamma ** (k - 1)) * (~terminated[env_i])
        out = (self.obs[env_i, slot_i].copy(), self.act[env_i, slot_i].copy(),
               self.ret[env_i, slot_i].astype(np.float32), final_obs[env_i], mask.astype(np.float32))
        self.k[emit] = 0
        self.ret[emit] = 0.0
        return out
