"""The preallocated ring replay buffer."""

from __future__ import annotations

import numpy as np
import pytest

from train.replay import ReplayBuffer


def _batch(start, n, d=3):
    ids = np.arange(start, start + n, dtype=np.float32)
    return (np.repeat(ids[:, None], d, 1), np.repeat(ids[:, None], 4, 1), ids, np.repeat(ids[:, None] + 0.5, d, 1),
            (ids % 2).astype(bool))


def test_batched_insert_wraps_around_and_keeps_the_newest():
    buf = ReplayBuffer(10, obs_dim=3)
    buf.add_batch(*_batch(0, 6))
    buf.add_batch(*_batch(6, 7))  # 13 transitions into 10 slots: 0, 1, 2 are overwritten
    assert len(buf) == 10 and buf.pos == 3
    assert sorted(buf.reward.tolist()) == list(range(3, 13))
    np.testing.assert_array_equal(buf.reward[:3], [10, 11, 12])
    # every row stays one consistent transition
    np.testing.assert_array_equal(buf.obs[:, 0], buf.reward)
    np.testing.assert_array_equal(buf.next_obs[:, 0], buf.reward + 0.5)
    np.testing.assert_array_equal(buf.mask, 1.0 - (buf.reward % 2))


def test_an_insert_larger_than_the_buffer_keeps_the_last_capacity_items():
    buf = ReplayBuffer(4, obs_dim=3)
    buf.add_batch(*_batch(0, 9))
    assert sorted(buf.reward.tolist()) == [5, 6, 7, 8]


def test_sampling_only_draws_filled_rows_with_the_requested_shape():
    buf = ReplayBuffer(100, obs_dim=3)
    buf.add_batch(*_batch(0, 7))
    obs, act, rew, nobs, mask = buf.sample(np.random.default_rng(0), (5, 64))
    assert obs.shape == (5, 64, 3) and act.shape == (5, 64, 4) and rew.shape == (5, 64) and mask.shape == (5, 64)
    assert set(np.unique(rew).tolist()) <= set(range(7))
    assert len(np.unique(rew)) == 7  # 320 draws from 7 rows reach them all
    np.testing.assert_array_equal(obs[..., 0], rew)


def test_sampling_is_reproducible_from_the_generator():
    buf = ReplayBuffer(50, obs_dim=3)
    buf.add_batch(*_batch(0, 50))
    a = buf.sample(np.random.default_rng(7), (3, 8))[2]
    b = buf.sample(np.random.default_rng(7), (3, 8))[2]
    np.testing.assert_array_equal(a, b)


def test_empty_buffer_refuses_to_sample_and_state_round_trips():
    buf = ReplayBuffer(8, obs_dim=3)
    with pytest.raises(ValueError, match="empty"):
        buf.sample(np.random.default_rng(0), (1, 1))
    buf.add_batch(*_batch(0, 11))
    other = ReplayBuffer(8, obs_dim=3)
    other.load_state_dict(buf.state_dict())
    for k in ("obs", "action", "reward", "next_obs", "mask"):
        np.testing.assert_array_equal(getattr(buf, k), getattr(other, k))
    assert (other.pos, other.size) == (buf.pos, buf.size)
