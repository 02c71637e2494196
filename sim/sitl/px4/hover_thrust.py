"""PX4's hover-thrust estimator (mc_hover_thrust_estimator), as far as the twin needs it.

From PX4-Autopilot src/modules/mc_hover_thrust_estimator/MulticopterHoverThrustEstimator.cpp:
the estimate starts at MPC_THR_HOVER and is reset to it while disarmed; it only runs armed and
"in air", which latches once the distance to the ground exceeds 1 m and clears when landed;
it is bounded to [MPC_THR_HOVER - HTE_THR_RANGE, MPC_THR_HOVER + HTE_THR_RANGE], each end
constrained to [0, 0.8] and [0.2, 0.9]; it is declared valid after it has been converged for
2 s (_valid_hysteresis). mc_pos_control uses it instead of MPC_THR_HOVER while valid.

The filter is zero_order_hover_thrust_ekf.cpp's: one state (hover thrust h) with variance P,
predicted with P += HTE_HT_NOISE^2 dt^2, fusing the vertical acceleration a_z measured against
the predicted g T / h - g for the collective T (H = -g T / h^2), innovations beyond HTE_ACC_GATE
sigmas rejected, the accelerometer noise variance learned from the residuals within [1, 400]
(m/s^2)^2 (time constant 2 s) and started at 5 (resetAccelNoise). Valid once P < 0.001 and the
test ratio passes, held for 2 s. The large-offset variance bump is left out.
"""

from __future__ import annotations

import math

from sim.vehicle import GRAVITY_MPS2

IN_AIR_HEIGHT_M = 1.0
VALID_AFTER_S = 2.0
VALID_VAR = 0.001
ACC_VAR_INIT = 5.0
NOISE_LEARNING_S = 2.0
HTE_HT_ERR_INIT = 0.1  # PX4 default of the initial standard deviation
HTE_HT_NOISE = 0.0036  # PX4 default process noise, normalized thrust / s
HTE_ACC_GATE = 3.0  # PX4 default gate, standard deviations


class HoverThrustEstimator:
    """Hover thrust estimate (normalized collective thrust) with PX4's bounds and validity."""

    def __init__(self, params):
        self.p = params
        self.in_air = False
        self._valid_since: float | None = None
        self._now = 0.0
        self.reset()

    def reset(self) -> None:
        """MulticopterHoverThrustEstimator::reset: back to MPC_THR_HOVER, initial uncertainty."""
        self.estimate = float(self.p["MPC_THR_HOVER"])
        self.var = HTE_HT_ERR_INIT ** 2
        self.acc_var = ACC_VAR_INIT

    def bounds(self) -> tuple[float, float]:
        """(min, max) the estimate may take: MPC_THR_HOVER -/+ HTE_THR_RANGE, constrained."""
        hover, rng = self.p["MPC_THR_HOVER"], self.p["HTE_THR_RANGE"]
        return min(max(hover - rng, 0.0), 0.8), min(max(hover + rng, 0.2), 0.9)

    @property
    def valid(self) -> bool:
        """True once converged (variance < 0.001) for the 2 s validity hysteresis."""
        return self._valid_since is not None and self._now - self._valid_since >= VALID_AFTER_S

    def _fuse(self, dt_s: float, acc_z: float, thrust: float) -> bool:
        g = GRAVITY_MPS2
        h = self.estimate
        self.var += HTE_HT_NOISE ** 2 * dt_s * dt_s
        jac = -g * thrust / (h * h)
        innov_var = max(jac * self.var * jac + self.acc_var, self.acc_var)
        innov = acc_z - (g * thrust / h - g)
        ratio = innov * innov / (HTE_ACC_GATE ** 2 * innov_var)
        if ratio < 1.0:
            gain = self.var * jac / innov_var
            lo, hi = self.bounds()
            self.estimate = min(max(h + gain * innov, lo), hi)
            self.var = min(max((1.0 - gain * jac) * self.var, 1e-10), 1.0)
            innov = acc_z - (g * thrust / self.estimate - g)
        alpha = dt_s / (NOISE_LEARNING_S + dt_s)
        self.acc_var = min(max((1 - alpha) * self.acc_var + alpha * (innov * innov + jac * self.var * jac), 1.0), 400.0)
        return ratio < 1.0

    def update(self, now_s: float, dt_s: float, armed: bool, landed: bool, height_m: float, collective: float,
               accel_up_mps2: float) -> float:
        """Advance one cycle; returns the hover thrust position control should use."""
        self._now = now_s
        if landed:
            self.in_air = False
        elif height_m > IN_AIR_HEIGHT_M:
            self.in_air = True
        if armed and self.in_air and self.p["MPC_USE_HTE"] >= 1 and math.isfinite(collective) and collective > 0:
            passing = self._fuse(dt_s, accel_up_mps2, collective)
            ok = self.var < VALID_VAR and (passing or self.valid)
            if not ok:
                self._valid_since = None
            elif self._valid_since is None:
                self._valid_since = now_s
        else:
            self._valid_since = None
            if not armed:
                self.reset()
        return self.estimate if self.valid else float(self.p["MPC_THR_HOVER"])
