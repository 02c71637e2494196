"""Body-rate controller approximating the firmware's, for the ``ctbr`` action mode.

The Crazyflie's PID rate loop (crazyflie-firmware src/modules/src/controller/pid_attitude.c,
attitude_pid_controller.c) and PX4's mc_rate_control (src/modules/mc_rate_control/) are both
PID on body-rate error with an integrator limit, followed by a mixer. Gains are taken from the
vehicle file in the firmware's units and converted to SI torque gains in ``sim.vehicle``; the
mixer here is the inverse of the vehicle's allocation matrix, clipped to [0, max thrust].
D acts on the measured rate (as PX4 does) so rate-setpoint steps do not kick the motors.
"""

from __future__ import annotations

import numpy as np

from sim.vehicle import Vehicle


class RateController:
    """Batched PID rate loop plus mixer: (collective thrust, body-rate setpoint) -> motor thrusts.

    Uses the vehicle's *nominal* parameters, as firmware does: it never knows the randomized
    airframe it flies.
    """

    def __init__(self, vehicle: Vehicle, n: int):
        rc = vehicle.rate_controller
        self.vehicle = vehicle
        self.rate_hz = rc.rate_hz
        self.kp = rc.kp_nm_per_rad_s
        self.ki = rc.ki_nm_per_rad
        self.kd = rc.kd_nm_s_per_rad
        self.integral_limit = rc.integral_limit_rad
        self.max_thrust_n = vehicle.max_thrust_n
        self.mixer = np.linalg.inv(vehicle.allocation_matrix())  # (4, 4): [T, tau] -> thrusts
        self.integral = np.zeros((n, 3))
        self.prev_omega_b = np.zeros((n, 3))

    def reset(self, mask: np.ndarray | None = None, omega_b: np.ndarray | None = None) -> None:
        """Zero the integrator (and seed the D term with ``omega_b``) for the selected vehicles."""
        idx = slice(None) if mask is None else mask
        self.integral[idx] = 0.0
        self.prev_omega_b[idx] = 0.0 if omega_b is None else omega_b

    def update(self, omega_b: np.ndarray, rate_sp_b: np.ndarray, collective_thrust_n: np.ndarray,
               dt_s: float) -> np.ndarray:
        """One rate-loop tick. omega_b, rate_sp_b: (N, 3) rad/s FLU; collective thrust (N,) in N.

        Returns (N, 4) motor thrust commands in N, firmware motor order.
        """
        err = rate_sp_b - omega_b
        self.integral = np.clip(self.integral + err * dt_s, -self.integral_limit, self.integral_limit)
        d_omega = (omega_b - self.prev_omega_b) / dt_s
        self.prev_omega_b = omega_b.copy()
        torque = self.kp * err + self.ki * self.integral - self.kd * d_omega
        wrench = np.concatenate([collective_thrust_n[:, None], torque], axis=1)
        thrust = wrench @ self.mixer.T
        return np.clip(thrust, 0.0, self.max_thrust_n)
