"""Exploration noise for batched actions: Ornstein-Uhlenbeck and decaying Gaussian."""

from __future__ import annotations

import numpy as np


class OUNoise:
    """Ornstein-Uhlenbeck process per env and action (Lillicrap et al. 2016; the Udacity
    quadcopter DDPG): x += theta (mu - x) dt + sigma sqrt(dt) N(0, 1). Temporally correlated, so
    a quadrotor actually moves in response instead of averaging white noise away."""

    def __init__(self, n: int, dim: int = 4, theta: float = 0.15, sigma: float = 0.2, dt: float = 1.0):
        self.theta, self.sigma, self.dt = theta, sigma, dt
        self.state = np.zeros((n, dim))
        self.scale = 1.0

    def reset(self, mask=None) -> None:
        """Back to zero for the selected envs (all if None)."""
        self.state[slice(None) if mask is None else mask] = 0.0

    def sample(self, rng: np.random.Generator, step: int) -> np.ndarray:
        """Next (n, dim) noise."""
        self.state += -self.theta * self.state * self.dt + self.sigma * np.sqrt(self.dt) * rng.standard_normal(self.state.shape)
        return self.scale * self.state


class GaussianNoise:
    """White Gaussian noise whose std decays linearly from ``sigma_start`` to ``sigma_end`` over
    ``decay_steps`` env steps (exploration early, precision late)."""

    def __init__(self, n: int, dim: int = 4, sigma_start: float = 0.3, sigma_end: float = 0.05,
                 decay_steps: int = 200_000):
        self.n, self.dim = n, dim
        self.sigma_start, self.sigma_end, self.decay_steps = sigma_start, sigma_end, max(1, decay_steps)
        self.state = np.zeros((n, dim))  # stateless; kept for a uniform interface
        self.scale = sigma_start

    def reset(self, mask=None) -> None:
        """Nothing to reset (white noise)."""

    def sigma(self, step: int) -> float:
        """Std at env step ``step``."""
        frac = min(1.0, step / self.decay_steps)
        return self.sigma_start + frac * (self.sigma_end - self.sigma_start)

    def sample(self, rng: np.random.Generator, step: int) -> np.ndarray:
        """Next (n, dim) noise."""
        self.scale = self.sigma(step)
        return self.scale * rng.standard_normal((self.n, self.dim))


def make_noise(kind: str, n: int, **kw):
    """'ou' or 'gaussian'."""
    if kind == "ou":
        return OUNoise(n, **kw)
    if kind == "gaussian":
        return GaussianNoise(n, **kw)
    raise ValueError(f"unknown noise kind {kind!r} (ou, gaussian)")
