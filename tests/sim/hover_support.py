"""A nominal vehicle placed in a still hover at its target: the starting point of command-path tests."""

from __future__ import annotations

import numpy as np

from sim.contract import PolicySpec
from sim.env import HoverTaskConfig, HoverVecEnv
from sim.frames import quat_from_euler
from sim.randomization import RealismConfig


def hovering_env(vehicle: str = "crazyflie", n: int = 1, spec: PolicySpec | None = None,
                 yaw_rad: float = 0.0) -> HoverVecEnv:
    """N nominal vehicles (no randomization, exact state) at the target, at rest, level, at heading
    ``yaw_rad`` (rad, world ENU), motors at hover thrust, the simulated firmware synced to that."""
    env = HoverVecEnv(vehicle, n, spec=spec, config=HoverTaskConfig(realism=RealismConfig.off()), seed=0)
    env.reset()
    task = env.task
    s = task.sim.state
    s.pos_w[:] = task.target_w
    s.vel_w[:] = 0.0
    s.omega_b[:] = 0.0
    s.quat_wb[:] = quat_from_euler(np.zeros(n), np.zeros(n), np.full(n, yaw_rad))
    s.thrust_n[:] = task.sim.hover_thrust_n()
    task.sync_firmware_state()
    return env
