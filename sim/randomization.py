"""Realism knobs: domain randomization, sensor noise, wind. All seeded through a Generator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.dynamics import BatchParams
from sim.frames import quat_from_axis_angle, quat_multiply, quat_normalize
from sim.vehicle import Vehicle


@dataclass(frozen=True)
class RealismConfig:
    """Which realism knobs are on, and how strong. ``scale`` multiplies the vehicle's ranges."""

    randomize: bool = True
    randomization_scale: float = 1.0
    sensor_noise: bool = True
    noise_scale: float = 1.0
    latency_ticks: int = 0  # action latency, control ticks
    # If set, each episode draws its latency uniformly from [latency_ticks, latency_ticks_max]:
    # a real link's delay is not one fixed number, and a policy trained on exactly one breaks on the other.
    latency_ticks_max: int | None = None
    wind_mean_mps: tuple[float, float, float] = (0.0, 0.0, 0.0)
    wind_gust_std_mps: float = 0.0  # std of the gust (Ornstein-Uhlenbeck) component
    wind_gust_tau_s: float = 1.0
    # None: the vehicle file's fraction of firmware builds without battery compensation (times
    # the randomization scale, at most 1x). A number replaces it: training may weight the build
    # whose thrust per command the policy cannot see, evaluation keeps the file's.
    uncompensated_fraction: float | None = None

    @classmethod
    def off(cls) -> "RealismConfig":
        """The nominal vehicle, perfect state, no latency, no wind."""
        return cls(randomize=False, sensor_noise=False)


def _scaled_range(rng_pair: tuple[float, float], scale: float) -> tuple[float, float]:
    lo, hi = rng_pair
    return 1.0 + (lo - 1.0) * scale, 1.0 + (hi - 1.0) * scale


def sample_params(vehicle: Vehicle, n: int, rng: np.random.Generator, config: RealismConfig) -> BatchParams:
    """N parameter sets: nominal, or randomized within the vehicle file's ranges x scale."""
    p = BatchParams.nominal(vehicle, n)
    if not config.randomize:
        return p
    r = vehicle.randomization
    s = config.randomization_scale
    p.mass_kg = p.mass_kg * rng.uniform(*_scaled_range(r.mass_scale, s), size=n)
    p.inertia_kgm2 = p.inertia_kgm2 * rng.uniform(*_scaled_range(r.inertia_scale, s), size=(n, 1))
    gain = rng.uniform(*_scaled_range(r.thrust_scale, s), size=(n, 1))
    gain = gain * (1.0 + r.motor_imbalance * s * rng.standard_normal((n, 4))).clip(0.8, 1.2)
    p.thrust_gain = gain
    p.max_thrust_n = p.max_thrust_n * gain
    if r.tau_up_range_s is not None and r.tau_down_range_s is not None:
        # absolute ranges (log-uniform); a motor never coasts down faster than it is driven up
        up = _log_uniform(rng, _scaled_about(r.tau_up_range_s, _geometric_mean(r.tau_up_range_s), s), (n, 1))
        down = _log_uniform(rng, _scaled_about(r.tau_down_range_s, _geometric_mean(r.tau_down_range_s), s), (n, 1))
        p.tau_up_s = np.broadcast_to(up, (n, 4)).copy()
        p.tau_down_s = np.broadcast_to(np.maximum(down, up), (n, 4)).copy()
    else:
        tau = rng.uniform(*_scaled_range(r.tau_scale, s), size=(n, 1))
        p.tau_up_s = p.tau_up_s * tau
        p.tau_down_s = p.tau_down_s * tau
    com = np.zeros((n, 3))
    com[:, :2] = rng.uniform(-r.com_offset_m * s, r.com_offset_m * s, size=(n, 2))
    p.rotor_pos_m = p.rotor_pos_m - com[:, None, :]
    # Draws added 2026-12-06 (issue #19/#26) come after the older ones, so a seed still gives the
    # older parameters their old values.
    if r.torque_to_thrust_range_m is not None:
        p.torque_to_thrust_m = _log_uniform(
            rng, _scaled_about(r.torque_to_thrust_range_m, _geometric_mean(r.torque_to_thrust_range_m), s), (n,))
    if r.rate_gain_scale is not None:
        p.rate_gain_scale = _log_uniform(rng, _scaled_about(r.rate_gain_scale, 1.0, s), (n,))
        p.rate_p_only = rng.uniform(size=n) < r.rate_p_only_fraction * min(s, 1.0)
    if r.noise_scale is not None:
        p.noise_scale = rng.uniform(*_scaled_about(r.noise_scale, 1.0, s), size=n)
    uncomp_fraction = (r.uncompensated_fraction * min(s, 1.0) if config.uncompensated_fraction is None
                       else config.uncompensated_fraction)
    if vehicle.compensated and uncomp_fraction > 0:
        uncomp = rng.uniform(size=n) < uncomp_fraction
        p.compensated = ~uncomp
        battery = rng.uniform(*_scaled_about(r.uncompensated_thrust_scale, 1.0, s), size=n)
        factor = np.where(uncomp, battery, 1.0)[:, None]
        p.thrust_gain = p.thrust_gain * factor
        p.max_thrust_n = p.max_thrust_n * factor
        p.battery_thrust_scale = factor[:, 0].copy()
        # From a jumped copy of the stream, which leaves ``rng`` where it was: the throws drawn
        # after the parameters stay those of the seed (figures before and after stay comparable).
        e = r.battery_sense_error * s
        sense = np.random.Generator(rng.bit_generator.jumped()).uniform(1.0 - e, 1.0 + e, size=n)
        p.battery_sense_ratio = np.where(uncomp, sense, 1.0)
    return p


def _geometric_mean(rng_pair: tuple[float, float]) -> float:
    """Centre of a log-uniform range: absolute ranges scale about it, not about the nominal value
    (the Crazyflie's nominal spin-down, L2F's 249 ms, is the range's end)."""
    return float(np.sqrt(rng_pair[0] * rng_pair[1]))


def _scaled_about(rng_pair: tuple[float, float], centre: float, scale: float) -> tuple[float, float]:
    """An absolute range [lo, hi] widened or narrowed ``scale`` x about ``centre`` (clamped at 0)."""
    lo, hi = rng_pair
    return max(0.0, centre + (lo - centre) * scale), centre + (hi - centre) * scale


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], size) -> np.ndarray:
    """Log-uniform draws in [lo, hi] (lo > 0); uniform where lo is 0."""
    lo, hi = bounds
    if lo <= 0.0:
        return rng.uniform(lo, hi, size=size)
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size=size))


def noisy_estimate(pos_w, vel_w, quat_wb, omega_b, vehicle: Vehicle, rng: np.random.Generator,
                   scale: float = 1.0):
    """A state estimate with Gaussian noise of the vehicle file's std x ``scale`` (a number, or
    (N,) per vehicle).

    Attitude noise is a random small rotation applied in the body frame. Returns new arrays.
    """
    sn = vehicle.sensor_noise
    n = pos_w.shape[0]
    scale = np.asarray(scale, dtype=np.float64)
    if scale.ndim == 1:
        scale = scale[:, None]
    pos = pos_w + rng.normal(0.0, sn.position_m * scale, size=(n, 3))
    vel = vel_w + rng.normal(0.0, sn.velocity_mps * scale, size=(n, 3))
    dq = quat_from_axis_angle(rng.normal(0.0, sn.attitude_rad * scale, size=(n, 3)))
    quat = quat_normalize(quat_multiply(quat_wb, dq))
    omega = omega_b + rng.normal(0.0, sn.gyro_rad_s * scale, size=(n, 3))
    return pos, vel, quat, omega


class Wind:
    """Constant wind plus an Ornstein-Uhlenbeck gust per vehicle (world ENU, m/s)."""

    def __init__(self, n: int, config: RealismConfig, rng: np.random.Generator):
        self.config = config
        self.rng = rng
        self.mean = np.asarray(config.wind_mean_mps, dtype=np.float64)
        self.gust = np.zeros((n, 3))

    def reset(self, mask=None) -> None:
        """Gusts of the selected vehicles back to zero."""
        self.gust[slice(None) if mask is None else mask] = 0.0

    def step(self, dt_s: float) -> np.ndarray:
        """Advance the gusts by dt; returns (N, 3) wind velocity."""
        c = self.config
        if c.wind_gust_std_mps > 0:
            a = np.exp(-dt_s / c.wind_gust_tau_s)
            self.gust = a * self.gust + np.sqrt(1 - a * a) * c.wind_gust_std_mps * self.rng.standard_normal(self.gust.shape)
        return self.mean + self.gust
