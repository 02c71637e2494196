"""Fixed observation scales for the actor's (and critic's) Normalization layer.

The scales come from the task's ranges, not from data, so a spec is known before training starts,
is identical across seeds, and is exactly what the exported model carries:

    position_error_w     mean 0, std clip/2         (errors live in +-clip m)
    rotation_matrix_*    mean 0, std 0.5            (entries in [-1, 1]; R_zz ~ 1 near hover)
    velocity_w           mean 0, std init_vel       (m/s; throws start within +-init_vel)
    omega_b              mean 0, std init_rate / 2  (rad/s; throws start within +-init_rate)
    last_actions         mean = hover action, std 0.5
    velocity_history_w, omega_history_b: as velocity_w and omega_b
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sim.contract import PolicySpec, hover_action
from sim.env import HoverTaskConfig
from sim.vehicle import Vehicle


def fixed_obs_scales(spec: PolicySpec, vehicle: Vehicle, task: HoverTaskConfig) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std), each (obs_dim,) float64, for ``spec``'s observation layout."""
    mean = np.zeros(spec.obs_dim)
    std = np.ones(spec.obs_dim)
    hover = hover_action(spec, vehicle)
    for f in spec.observation:
        sl = spec.obs_slice(f.name)
        if f.name == "position_error_w":
            std[sl] = max(spec.position_error_clip_m / 2.0, 1e-3)
        elif f.name.startswith("rotation_matrix"):
            std[sl] = 0.5
        elif f.name in ("velocity_w", "velocity_history_w"):
            std[sl] = max(task.init_vel_mps, 0.1)
        elif f.name in ("omega_b", "omega_history_b"):
            std[sl] = max(task.init_rate_rad_s / 2.0, 0.1)
        elif f.name == "last_actions":
            mean[sl] = np.tile(hover, f.size // 4)
            std[sl] = 0.5
    return mean, std


def with_fixed_obs_scales(spec: PolicySpec, vehicle: Vehicle, task: HoverTaskConfig) -> PolicySpec:
    """``spec`` with obs_mean/obs_std set by :func:`fixed_obs_scales`."""
    mean, std = fixed_obs_scales(spec, vehicle, task)
    return dataclasses.replace(spec, obs_mean=tuple(float(x) for x in mean), obs_std=tuple(float(x) for x in std))
