"""n-step transitions: sums, bootstrap weights, and episode ends inside the window."""

from __future__ import annotations

import numpy as np

from train.nstep import NStepAccumulator

G = 0.5


def _tick(acc, t, term=(False, False), trunc=(False, False)):
    obs = np.array([[t], [100 + t]], np.float32)
    final = obs + 0.5  # stands in for the observation after the tick
    return acc.step(obs, np.zeros((2, 4), np.float32), np.array([t + 1.0, 10.0 * (t + 1)]), final,
                    np.array(term), np.array(trunc))


def test_full_windows_sum_n_discounted_rewards_and_bootstrap_with_g_pow_n():
    acc = NStepAccumulator(2, 1, n=3, gamma=G)
    assert len(_tick(acc, 0)[2]) == 0 and len(_tick(acc, 1)[2]) == 0
    obs, _, ret, nxt, mask = _tick(acc, 2)
    np.testing.assert_array_equal(obs[:, 0], [0, 100])
    np.testing.assert_allclose(ret, [1 + G * 2 + G * G * 3, 10 + G * 20 + G * G * 30])
    np.testing.assert_array_equal(nxt[:, 0], [2.5, 102.5])  # s_{t+3}
    np.testing.assert_allclose(mask, [G * G, G * G])  # the agent multiplies by G once more: G^3


def test_termination_flushes_without_bootstrap_and_truncation_bootstraps_short():
    acc = NStepAccumulator(2, 1, n=3, gamma=G)
    _tick(acc, 0)
    obs, _, ret, nxt, mask = _tick(acc, 1, term=(True, False), trunc=(False, True))
    order = np.lexsort((obs[:, 0],))
    obs, ret, nxt, mask = obs[order, 0], ret[order], nxt[order, 0], mask[order]
    np.testing.assert_array_equal(obs, [0, 1, 100, 101])
    np.testing.assert_allclose(ret, [1 + G * 2, 2, 10 + G * 20, 20])
    np.testing.assert_allclose(mask, [0, 0, G, 1])  # env 0 crashed: no future; env 1: G^k / G
    np.testing.assert_array_equal(nxt, [1.5, 1.5, 101.5, 101.5])
    # both queues are empty again: the next tick starts fresh episodes
    assert len(_tick(acc, 2)[2]) == 0


def test_one_step_is_plain_td():
    acc = NStepAccumulator(2, 1, n=1, gamma=G)
    obs, _, ret, _, mask = _tick(acc, 0, term=(True, False))
    np.testing.assert_allclose(ret, [1, 10])
    np.testing.assert_allclose(mask, [0, 1])
