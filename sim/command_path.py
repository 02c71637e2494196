"""What the Crazyflie's stock firmware does with the 16-bit thrust of a manual-rate setpoint.

The bridge sends the generic commander's manual setpoint with the rate flag
(crazyflie-firmware src/modules/src/crtp_commander_generic.c ``manualDecoder``): roll, pitch and
yaw rates as floats and thrust as a uint16, which ``controllerPid`` (controller_pid.c) takes as
``actuatorThrust`` in the same 16-bit units the legacy mixer adds its torques to. This module is
the one place that turns the policy's collective thrust into those units and back, used by the
bridge's encoding (firmware_bridge/links/crazyflie.py), the simulator's ctbr path (sim.env) and
the twin, so the three agree by construction:

* battery compensation on (the default build): motors.c ``motorsCompensateBatteryVoltage`` reads
  a motor's command as ``cmd / 65535 * THRUST_MAX`` newtons and returns 0 below THRUST_MIN: the
  16-bit thrust is linear in thrust, full scale 4 x THRUST_MAX (0.45 N on platform_defaults_cf2.h).
* off: the command is the PWM duty cycle, through the vehicle's thrust curve.
* a thrust of exactly 0 stops the motors and resets every PID (controller_pid.c: ``if
  (control->thrust == 0)`` ... ``controllerResetAllPids``; ``attitudeDesired.yaw`` follows the
  vehicle). The simulator models it (:func:`stops_motors`); the bridge sends what the policy asks.

Inside the simulator's rate loop, "firmware thrust" is the 16-bit count times THRUST_MAX / 65535
newtons (what the firmware believes it asks for); :func:`motor_thrust_n` turns it into what a
motor is asked to produce for the build an episode flies.
"""

from __future__ import annotations

import numpy as np

from sim.vehicle import Vehicle

UINT16_MAX = 65535


def ctbr_thrust_u16(collective_thrust_n: np.ndarray, vehicle: Vehicle) -> np.ndarray:
    """(N,) collective thrust in N -> (N,) the manual setpoint's uint16 thrust (int64 array):
    a quarter of it per motor through the vehicle's 16-bit command mapping, rounded, 0..65535."""
    per_motor_n = np.asarray(collective_thrust_n, dtype=np.float64).reshape(-1) / 4.0
    u = vehicle.thrust_to_command(per_motor_n)
    return np.rint(np.clip(u, 0.0, 1.0) * UINT16_MAX).astype(np.int64)


def firmware_collective_n(thrust_u16: np.ndarray, vehicle: Vehicle) -> np.ndarray:
    """(N,) uint16 thrust -> (N,) collective thrust in the simulator's rate-loop units, N.

    With a ``[firmware]`` table and compensation: 4 x count x THRUST_MAX / 65535 (no THRUST_MIN
    cut here: that happens per motor, after the mixer). Otherwise 4 x the thrust curve at the
    command (PX4 and uncompensated vehicles: the rate loop's gains are in N at hover)."""
    u = np.asarray(thrust_u16, dtype=np.float64).reshape(-1) / UINT16_MAX
    if vehicle.compensated:
        return 4.0 * u * vehicle.command_path.thrust_max_n
    return 4.0 * vehicle.pwm_to_thrust(u) * (u > 0)


def stops_motors(thrust_u16: np.ndarray, vehicle: Vehicle) -> np.ndarray:
    """(N,) bool: the setpoint's thrust is 0, so controllerPid zeroes the output and resets every
    PID (Crazyflie; PX4 has no such rule here: all False)."""
    t = np.asarray(thrust_u16).reshape(-1)
    if vehicle.command_path is None:
        return np.zeros(t.shape, dtype=bool)
    return t == 0


def motor_thrust_n(firmware_thrust_n: np.ndarray, compensated: np.ndarray, vehicle: Vehicle) -> np.ndarray:
    """(N, 4) per-motor firmware thrust (rate-loop units, N) -> (N, 4) thrust each motor is asked
    to produce, N, for a vehicle of nominal ``vehicle`` flying the build ``compensated`` (N,) bool.

    Compensated rows: unchanged, 0 below THRUST_MIN (motors.c). Uncompensated rows of a vehicle
    whose nominal build is compensated: the count is PWM, through the thrust curve (0 stays 0).
    Vehicles without a ``[firmware]`` table, or uncompensated ones: unchanged.
    """
    t = np.asarray(firmware_thrust_n, dtype=np.float64)
    if not vehicle.compensated:
        return t
    path = vehicle.command_path
    comp = np.asarray(compensated, dtype=bool).reshape(-1, 1)
    on = np.where(t < path.thrust_min_n, 0.0, t)
    off = vehicle.pwm_to_thrust(np.clip(t / path.thrust_max_n, 0.0, 1.0)) * (t > 0)
    return np.where(comp, on, off)


def cap_n(compensated: np.ndarray, vehicle: Vehicle) -> np.ndarray | None:
    """(N,) where powerDistributionCap limits each vehicle's motors, in rate-loop units (N): it
    caps the PWM after compensation (power_distribution_quadrotor.c, stabilizer.c), so the motor's
    full thrust when compensated and 65535 counts (THRUST_MAX) when not. None for other vehicles."""
    if not vehicle.compensated:
        return None
    comp = np.asarray(compensated, dtype=bool).reshape(-1)
    return np.where(comp, vehicle.max_thrust_n, vehicle.command_path.thrust_max_n)


MIN_BATTERY_READING_V = 2.0  # below this pm.vbat is not a battery (motors.c's own sanity bound)


def raw_pwm_battery_scale(vbat_v: float | None, vehicle: Vehicle) -> float:
    """Factor on a raw PWM fraction that holds its thrust as the cell sags: the thrust curve's
    supply voltage over ``vbat_v`` (V), the rule of motors.c's compensation and of quadhil's app on a
    build without it (firmware_bridge/crazyflie_app/src/quadhil_nn.c qh_action_to_pwm_ratio: a duty
    drives the motor at duty x supply). 1.0 without a reading (None, or below 2 V). The caller clips
    the product to full PWM."""
    if vbat_v is None or not vbat_v >= MIN_BATTERY_READING_V:
        return 1.0
    return float(vehicle.battery.voltage_full_v / vbat_v)


def app_battery_compensation(thrust_n: np.ndarray, compensated: np.ndarray, battery_thrust_scale: np.ndarray,
                             battery_sense_ratio: np.ndarray, vehicle: Vehicle) -> np.ndarray:
    """(N, 4) motor thrust a motor-level policy asks for, N -> (N, 4) thrust command after quadhil's
    Crazyflie app (firmware_bridge/crazyflie_app/src/quadhil_nn.c qh_action_to_pwm_ratio) on a
    build without the firmware's battery compensation: PWM through the thrust curve, times
    V_curve / V from pm.vbat (motors.c's rule in the compensated build: the PWM fraction is the
    voltage needed over the supply voltage), at most full PWM.

    ``battery_thrust_scale`` (N,) is the battery's (V / V_curve)^2, ``battery_sense_ratio`` (N,)
    what the app reads of it over the truth. Compensated rows, and vehicles without a battery-
    compensated firmware path, pass through unchanged. The physics then applies the battery's
    scale (``BatchParams.thrust_gain``) and cap (``max_thrust_n``) as for any command."""
    t = np.asarray(thrust_n, dtype=np.float64)
    if not vehicle.compensated:
        return t
    comp = np.asarray(compensated, dtype=bool).reshape(-1, 1)
    if comp.all():
        return t
    sensed = (np.asarray(battery_thrust_scale, dtype=np.float64) * battery_sense_ratio).reshape(-1, 1)
    pwm = np.clip(vehicle.pwm_for_thrust(t) / np.sqrt(sensed), 0.0, 1.0)
    return np.where(comp, t, vehicle.pwm_to_thrust(pwm) * (t > 0))
