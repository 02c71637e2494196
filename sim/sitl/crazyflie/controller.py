"""The onboard PID controller (attitude + rate) of the Crazyflie, in the firmware's conventions.

crazyflie-firmware src/modules/src/controller/controller_pid.c runs, at ATTITUDE_RATE 500 Hz:
attitude PID (angles in degrees, legacy pitch sign) -> desired rates (deg/s), replaced by the
setpoint's rates on axes in velocity mode; then the rate PID on the gyro (x, -y, z) and the
power distribution. The attitude gains are the firmware defaults (src/platform/interface/
platform_defaults.h: PID_ROLL/PITCH_KP 6, KI 3, KD 0, integration limit 20; PID_YAW_KP 6,
KI 1, KD 0.35, limit 360). The rate loop and mixer are sim.rate_control.RateController, which
carries the firmware's rate gains (PID_*_RATE_*) converted to SI. A yaw-rate setpoint moves the
yaw angle setpoint (attitudeDesired.yaw += rate * dt). Zero thrust resets every PID and
commands no motor output, as controllerPid does. The 16-bit thrust and the motor commands follow
sim.command_path (battery compensation: linear to THRUST_MAX, a motor below THRUST_MIN stops); the
gyro the rate loop sees is low-passed by the twin at 1 kHz (``RateController.filter_gyro``).
"""

from __future__ import annotations

import math

import numpy as np

from sim.command_path import cap_n, firmware_collective_n, motor_thrust_n
from sim.rate_control import RateController
from sim.sitl.crazyflie.commander import MODE_ABS, MODE_VELOCITY, Setpoint
from sim.vehicle import Vehicle

ATTITUDE_RATE_HZ = 500.0
ATTITUDE_GAINS = {  # axis -> (kp, ki, kd, integration limit); platform_defaults.h
    "roll": (6.0, 3.0, 0.0, 20.0),
    "pitch": (6.0, 3.0, 0.0, 20.0),
    "yaw": (6.0, 1.0, 0.35, 360.0),
}


def cap_angle_deg(angle: float) -> float:
    """Wrap to [-180, 180] degrees (controller_pid.c capAngle)."""
    while angle > 180.0:
        angle -= 360.0
    while angle < -180.0:
        angle += 360.0
    return angle


class Pid:
    """pid.c pidUpdate: P on error, clamped integral, D on the error difference."""

    def __init__(self, kp: float, ki: float, kd: float, i_limit: float, dt_s: float):
        self.kp, self.ki, self.kd, self.i_limit, self.dt_s = kp, ki, kd, i_limit, dt_s
        self.integ = 0.0
        self.prev_error = 0.0

    def reset(self) -> None:
        """pidReset."""
        self.integ = 0.0
        self.prev_error = 0.0

    def update_error(self, error: float) -> float:
        """Output for ``error`` (desired - measured)."""
        self.integ = min(max(self.integ + error * self.dt_s, -self.i_limit), self.i_limit)
        deriv = (error - self.prev_error) / self.dt_s
        self.prev_error = error
        return self.kp * error + self.ki * self.integ + self.kd * deriv


class PidController:
    """Attitude + rate PID with the firmware's setpoint semantics, one vehicle."""

    def __init__(self, vehicle: Vehicle):
        self.vehicle = vehicle
        self.dt_s = 1.0 / ATTITUDE_RATE_HZ
        self.att = {axis: Pid(*g, dt_s=self.dt_s) for axis, g in ATTITUDE_GAINS.items()}
        self.rate = RateController(vehicle, 1)
        self.yaw_desired_deg = 0.0
        self.rate_desired_dps = (0.0, 0.0, 0.0)  # legacy: roll, pitch (nose up +), yaw
        self._prev_modes: tuple[int, int, int] | None = None
        self._zero = np.zeros((1, 4))

    def reset(self, yaw_deg: float, omega_b: np.ndarray) -> None:
        """controllerResetAllPids plus the rate loop; the yaw setpoint follows the vehicle."""
        for pid in self.att.values():
            pid.reset()
        self.rate.reset(omega_b=omega_b)
        self.yaw_desired_deg = yaw_deg

    def update(self, sp: Setpoint, rpy_legacy_deg: tuple[float, float, float], omega_b: np.ndarray) -> np.ndarray:
        """One 500 Hz step. ``rpy_legacy_deg``: estimated roll, legacy pitch, yaw (deg);
        ``omega_b``: (1, 3) gyro in rad/s FLU. Returns (1, 4) motor thrust commands (N)."""
        roll, pitch, yaw = rpy_legacy_deg
        modes = sp.modes()
        if modes != self._prev_modes:
            self._prev_modes = modes
            self.reset(yaw, omega_b)
        if sp.thrust <= 0.0:
            self.reset(yaw, omega_b)
            self.rate_desired_dps = (0.0, 0.0, 0.0)
            return self._zero
        if sp.mode_yaw == MODE_VELOCITY:
            self.yaw_desired_deg = cap_angle_deg(self.yaw_desired_deg + sp.yaw_rate_dps * self.dt_s)
        elif sp.mode_yaw == MODE_ABS:
            self.yaw_desired_deg = cap_angle_deg(sp.yaw_deg)
        roll_rate = self.att["roll"].update_error(sp.roll_deg - roll)
        pitch_rate = self.att["pitch"].update_error(sp.pitch_deg - pitch)
        yaw_rate = self.att["yaw"].update_error(cap_angle_deg(self.yaw_desired_deg - yaw))
        if sp.mode_roll == MODE_VELOCITY:
            roll_rate = sp.roll_rate_dps
        if sp.mode_pitch == MODE_VELOCITY:
            pitch_rate = sp.pitch_rate_dps
        self.rate_desired_dps = (roll_rate, pitch_rate, yaw_rate)
        # legacy rates -> FLU body rates: pitch (nose up +) is -omega_y
        rate_sp_b = np.array([[roll_rate, -pitch_rate, yaw_rate]]) * (math.pi / 180.0)
        v = self.vehicle
        collective_n = firmware_collective_n(np.array([min(sp.thrust, 65535.0)]), v)
        comp = np.array([v.compensated])
        return motor_thrust_n(self.rate.update(omega_b, rate_sp_b, collective_n, self.dt_s, cap_n(comp, v)), comp, v)
