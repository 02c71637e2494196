"""Preallocated numpy ring replay buffer with vectorized batch insert."""

from __future__ import annotations

import numpy as np


class ReplayBuffer:
    """Fixed-capacity ring of transitions (obs, action, reward, next_obs, discount_mask).

    ``discount_mask`` is 0 where the episode *terminated* (crash, out of bounds: no future) and 1
    (g^(k-1) for k-step transitions) otherwise, including time-limit truncation, where ``next_obs`` is the ended episode's last
    observation (``info["final_obs"]``) and the TD target bootstraps through it.
    """

    def __init__(self, capacity: int, obs_dim: int, action_dim: int = 4):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = int(capacity)
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.action = np.zeros((capacity, action_dim), dtype=np.float32)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.mask = np.zeros(capacity, dtype=np.float32)
        self.pos = 0  # next write index
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add_batch(self, obs, action, reward, next_obs, terminated, discount_mask=None) -> None:
        """Insert N transitions at once (wrapping around the ring); arrays batched first.
        ``discount_mask`` (n-step transitions, train/nstep.py) overrides 1 - terminated."""
        n = len(reward)
        if n == 0:
            return
        mask = 1.0 - np.asarray(terminated, dtype=np.float32) if discount_mask is None else discount_mask
        if n > self.capacity:  # only the newest `capacity` survive anyway
            obs, action, reward, next_obs, mask = (x[-self.capacity:] for x in (obs, action, reward, next_obs, mask))
            n = self.capacity
        idx = (self.pos + np.arange(n)) % self.capacity
        self.obs[idx] = obs
        self.action[idx] = action
        self.reward[idx] = reward
        self.next_obs[idx] = next_obs
        self.mask[idx] = mask
        self.pos = int((self.pos + n) % self.capacity)
        self.size = int(min(self.size + n, self.capacity))

    def sample_indices(self, rng: np.random.Generator, shape) -> np.ndarray:
        """Uniform indices into the filled part, any shape (e.g. (K, B) for K updates)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return rng.integers(0, self.size, size=shape)

    def sample(self, rng: np.random.Generator, shape) -> tuple[np.ndarray, ...]:
        """(obs, action, reward, next_obs, mask), each with leading ``shape``."""
        i = self.sample_indices(rng, shape)
        return self.obs[i], self.action[i], self.reward[i], self.next_obs[i], self.mask[i]

    def state_dict(self) -> dict:
        """Arrays and cursors, for a checkpoint (filled part only)."""
        n = self.size
        return {"obs": self.obs[:n], "action": self.action[:n], "reward": self.reward[:n],
                "next_obs": self.next_obs[:n], "mask": self.mask[:n],
                "pos": np.int64(self.pos), "size": np.int64(n), "capacity": np.int64(self.capacity)}

    def load_state_dict(self, d) -> None:
        """Restore from :meth:`state_dict` output (same capacity and dims)."""
        if int(d["capacity"]) != self.capacity:
            raise ValueError(f"replay capacity {int(d['capacity'])} != {self.capacity}")
        n = int(d["size"])
        for k in ("obs", "action", "reward", "next_obs", "mask"):
            getattr(self, k)[:n] = d[k]
        self.pos, self.size = int(d["pos"]), n
