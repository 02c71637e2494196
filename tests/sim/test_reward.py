"""The hover reward (sim/reward.py): each term on hand-made states."""

import dataclasses

import numpy as np
import pytest

from sim.reward import RewardWeights, hover_reward


def _reward(w: RewardWeights, omega_b=(0.0, 0.0, 0.0), pos_err_w=(0.0, 0.0, 0.0), terminated=False) -> float:
    z3 = np.zeros((1, 3))
    return float(hover_reward(np.array([pos_err_w], dtype=float), z3, np.ones(1), np.array([omega_b], dtype=float),
                              np.zeros((1, 4)), np.zeros((1, 4)), np.array([terminated]), w)[0])


def test_perfect_hover_earns_the_alive_bonus():
    w = RewardWeights()
    assert _reward(w) == pytest.approx(w.alive_bonus)


def test_yaw_rate_costs_nothing_extra_by_default():
    """Runs recorded before the yaw term keep their reward (their config has no yaw_rate)."""
    w = RewardWeights()
    assert _reward(w, omega_b=(0, 0, 2.0)) == pytest.approx(w.alive_bonus - w.rate * 4.0)


def test_yaw_rate_weight_prices_a_spin_about_body_z_only():
    w = dataclasses.replace(RewardWeights(), yaw_rate=0.5)
    spin = _reward(w, omega_b=(0, 0, 1.0))
    roll = _reward(w, omega_b=(1.0, 0, 0))
    assert spin == pytest.approx(w.alive_bonus - w.rate - 0.5)
    assert roll == pytest.approx(w.alive_bonus - w.rate)


def test_cost_is_clipped_and_termination_pays_the_penalty():
    w = dataclasses.replace(RewardWeights(), yaw_rate=0.5)
    assert _reward(w, omega_b=(0, 0, 10.0)) == pytest.approx(w.alive_bonus - w.max_cost)
    assert _reward(w, pos_err_w=(5.0, 0, 0), terminated=True) == -w.termination_penalty


def test_yaw_command_weight_prices_the_ctbr_yaw_rate_command_only_and_is_off_by_default():
    def held(w, action):  # the same command held: no action-change cost
        a = np.array([action], dtype=float)
        z3 = np.zeros((1, 3))
        return float(hover_reward(z3, z3, np.ones(1), z3, a, a, np.array([False]), w)[0])

    assert held(RewardWeights(), (0.2, 0.0, 0.0, 0.8)) == pytest.approx(RewardWeights().alive_bonus)
    w = dataclasses.replace(RewardWeights(), yaw_command=1.0)
    assert held(w, (0.2, 0.0, 0.0, 0.5)) == pytest.approx(w.alive_bonus - 0.25)
    assert held(w, (0.2, 0.5, -0.5, 0.0)) == pytest.approx(w.alive_bonus)  # thrust, roll, pitch: free
