"""PX4's hover-thrust estimator (mc_hover_thrust_estimator), as far as the twin needs it.

From PX4-Autopilot src/modules/mc_hover_thrust_estimator/MulticopterHoverThrustEstimator.cpp:
the estimate starts at MPC_THR_HOVER and is reset to it while disarmed; it only runs armed and
"in air", which latches once the distance to the ground exceeds 1 m and clears when landed;
it is bounded to [MPC_THR_HOVER - HTE_THR_RANGE, MPC_THR_HOVER + HTE_THR_RANGE], each end
constrained to [0, 0.8] and [0.2, 0.9]; it is declared valid after it has been converged for
2 s (_valid_hysteresis). mc_pos_control uses it instead of MPC_THR_HOVER while valid.

PX4 runs a one-state Kalman filter on the measured vertical acceleration; the twin measures the
thrust that would have balanced gravity (collective x g / (g + a_z)) and low-passes it with a
first-order filter of HTE_TAU_S. That time constant is the twin's approximation, not a PX4
number: the estimator's own convergence depends on its noise parameters (HTE_HT_NOISE,
HTE_ACC_GATE) and the flight.
"""

from __future__ import annotations

import math

from sim.vehicle import GRAVITY_MPS2

HTE_TAU_S = 1.0
IN_AIR_HEIGHT_M = 1.0
VALID_AFTER_S = 2.0


class HoverThrustEstimator:
    """Hover thrust estimate (normalized collective thrust) with PX4's bounds and validity."""

    def __init__(self, params):
        self.p = params
        self.estimate = float(params["MPC_THR_HOVER"])
        self.in_air = False
        self._active_since: float | None = None

    def bounds(self) -> tuple[float, float]:
        """(min, max) the estimate may take: MPC_THR_HOVER -/+ HTE_THR_RANGE, constrained."""
        hover, rng = self.p["MPC_THR_HOVER"], self.p["HTE_THR_RANGE"]
        return min(max(hover - rng, 0.0), 0.8), min(max(hover + rng, 0.2), 0.9)

    @property
    def valid(self) -> bool:
        """True while the estimator has been running for its 2 s validity hysteresis."""
        return self._active_since is not None and self._now - self._active_since >= VALID_AFTER_S

    _now = 0.0

    def update(self, now_s: float, dt_s: float, armed: bool, landed: bool, height_m: float, collective: float,
               accel_up_mps2: float) -> float:
        """Advance one cycle; returns the hover thrust position control should use."""
        self._now = now_s
        if landed:
            self.in_air = False
        elif height_m > IN_AIR_HEIGHT_M:
            self.in_air = True
        if not armed:
            self.estimate = float(self.p["MPC_THR_HOVER"])
        if armed and self.in_air and self.p["MPC_USE_HTE"] >= 1:
            if self._active_since is None:
                self._active_since = now_s
            denom = GRAVITY_MPS2 + accel_up_mps2
            if denom > 0.5 * GRAVITY_MPS2 and math.isfinite(collective):
                measured = collective * GRAVITY_MPS2 / denom
                self.estimate += (measured - self.estimate) * min(dt_s / HTE_TAU_S, 1.0)
            lo, hi = self.bounds()
            self.estimate = min(max(self.estimate, lo), hi)
        else:
            self._active_since = None
        return self.estimate if self.valid else float(self.p["MPC_THR_HOVER"])
