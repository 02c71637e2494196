"""Shared fixtures for the training tests: tiny specs, nets and runs, so TF work stays small."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from sim.env import HoverTaskConfig
from sim.vehicle import load_vehicle
from train.loop import make_spec


@pytest.fixture(scope="session")
def crazyflie():
    return load_vehicle("crazyflie")


@pytest.fixture(scope="session")
def cf_spec(crazyflie):
    return make_spec(crazyflie, "default", "ctbr", 100.0, HoverTaskConfig())


# A few hundred env transitions of tiny nets: enough to exercise every code path in seconds.
TINY = [
    "--no-progress", "--eval-episodes", "4", "--num-envs", "4", "--batch-size", "16", "--updates-per-step", "1",
    "--set", "agent.actor_hidden=[8,8]", "--set", "agent.critic_hidden=[8,8]", "--set", "agent.jit=false",
    "--set", "train.warmup_steps=40", "--set", "train.chunk=5", "--set", "train.eval_every_steps=160",
    "--set", "train.eval_episodes=4", "--set", "train.checkpoint_every_steps=100000",
    "--set", "train.replay_capacity=1000",
    # 0.4 s episodes (hold 0.1 s) so evaluations and episode ends come quickly
    "--set", "task.episode_s=0.4", "--set", "task.hold_s=0.1",
]
