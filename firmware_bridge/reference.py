"""The reference the policy chases: take off (or hand over), hover at the target, land.

A piecewise-linear path at bounded speed through waypoints, then a hold, then a descent to the
ground. The policy only ever sees ``position - reference`` (clipped by the contract), so ramping
the reference is how a hover policy takes off and lands smoothly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Reference:
    """Takeoff/hover/land profile in the world frame (ENU, m, s)."""

    waypoints_w: np.ndarray  # (K, 3): start, ..., target
    hover_s: float
    ground_z_m: float
    climb_speed_mps: float = 0.5
    land_speed_mps: float = 0.4

    @classmethod
    def build(cls, start_w: np.ndarray, target_w: np.ndarray, takeoff_height_m: float | None,
              hover_s: float, handover: bool, ground_z_m: float | None = None) -> "Reference":
        """From the vehicle's start position: straight up to the takeoff height (unless handing
        over in the air), then to the target; hover ``hover_s``; land below the target."""
        start = np.asarray(start_w, dtype=np.float64).copy()
        target = np.asarray(target_w, dtype=np.float64)
        pts = [start]
        if not handover and takeoff_height_m is not None and takeoff_height_m > start[2]:
            pts.append(np.array([start[0], start[1], takeoff_height_m]))
        pts.append(target.copy())
        ground = float(start[2]) if ground_z_m is None else ground_z_m
        return cls(np.stack(pts), float(hover_s), ground)

    @property
    def ramp_s(self) -> float:
        """Duration of the approach ramp (s)."""
        seg = np.linalg.norm(np.diff(self.waypoints_w, axis=0), axis=1)
        return float(seg.sum() / self.climb_speed_mps)

    @property
    def target_w(self) -> np.ndarray:
        """The hover target."""
        return self.waypoints_w[-1]

    @property
    def land_s(self) -> float:
        """Duration of the descent ramp (s)."""
        return max(0.0, float(self.target_w[2] - self.ground_z_m)) / self.land_speed_mps

    @property
    def landing_start_s(self) -> float:
        """Time (since takeoff) at which the landing ramp starts."""
        return self.ramp_s + self.hover_s

    def phase(self, t_s: float) -> str:
        """'ramp', 'hover', 'land' or 'ground' (landing ramp finished)."""
        if t_s < self.ramp_s:
            return "ramp"
        if t_s < self.landing_start_s:
            return "hover"
        if t_s < self.landing_start_s + self.land_s:
            return "land"
        return "ground"

    def at(self, t_s: float) -> np.ndarray:
        """Reference position (3,) at ``t_s`` seconds since takeoff."""
        if t_s >= self.landing_start_s:
            down = min(t_s - self.landing_start_s, self.land_s) * self.land_speed_mps
            p = self.target_w.copy()
            p[2] = max(self.ground_z_m, p[2] - down)
            return p
        dist = max(0.0, t_s) * self.climb_speed_mps
        for a, b in zip(self.waypoints_w[:-1], self.waypoints_w[1:]):
            seg = float(np.linalg.norm(b - a))
            if dist <= seg and seg > 0:
                return a + (b - a) * (dist / seg)
            dist -= seg
        return self.target_w.copy()
