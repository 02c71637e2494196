"""Per-vehicle default hyper-parameters (the measured ones; see docs/training.md)."""

from __future__ import annotations


def preset(vehicle_id: str, action_mode: str) -> dict:
    """{'name', 'train', 'agent', 'reward'} overrides for TrainConfig, AgentConfig, RewardWeights."""
    base = {
        "name": f"{vehicle_id}-{action_mode}-v1",
        "train": {},
        "agent": {},
        "reward": {},
    }
    return base
