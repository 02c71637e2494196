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
    # the Crazyflie ctbr preset's teacher start (train.teacher), at the same tiny scale
    "--set", "train.teacher_steps=120", "--set", "train.teacher_bc_updates=20", "--set", "train.teacher_critic_updates=10",
]


def assert_an_update_moves_only_the_actor(agent, row_dim: int) -> None:
    """Run the agent's real update (K=2, B=16) on random replay rows ``row_dim`` wide; with the
    critic's learning rate at 0, every critic weight must come out bit for bit unchanged and the
    actor must have moved."""
    import numpy as np

    critic_before = [w.copy() for w in agent.critics[0].get_weights()]
    actor_before = [w.copy() for w in agent.actor.get_weights()]
    rng = np.random.default_rng(0)
    k, b = 2, 16
    rows = rng.standard_normal((k, b, row_dim)).astype(np.float32)
    agent.update(rows, rng.uniform(-1, 1, (k, b, 4)).astype(np.float32), rng.standard_normal((k, b)).astype(np.float32),
                 rows, np.ones((k, b), np.float32))
    for before, after in zip(critic_before, agent.critics[0].get_weights()):
        assert np.array_equal(before, after)
    assert any(not np.array_equal(x, y) for x, y in zip(actor_before, agent.actor.get_weights()))


def run_tiny(tmp_path, capsys, name: str, *sets: str, max_steps: int = 400):
    """A TINY Crazyflie run of ``max_steps`` env steps in ``tmp_path / name``, each of ``sets``
    passed as ``--set``; returns (its directory, its JSON result)."""
    import json

    from quadhil.cli import run_command

    out = tmp_path / name
    extra = [a for item in sets for a in ("--set", item)]
    code = run_command("train", ["--vehicle", "crazyflie", "--out", str(out), *TINY, "--max-steps", str(max_steps),
                                 "--json", *extra])
    assert code == 0
    return out, json.loads(capsys.readouterr().out.strip().splitlines()[-1])

