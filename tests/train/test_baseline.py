"""train.baseline.CascadeHover: the hand-written classical reference flown through the ctbr
interface recovers throws, and a tick of action latency costs it nothing on the nominal airframe."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim.contract import default_spec
from sim.randomization import RealismConfig
from sim.vehicle import GRAVITY_MPS2
from train.baseline import CascadeGains, CascadeHover, cascade_actions, cascade_setpoint
from train.evaluate import evaluate_policy


def _fly(crazyflie, latency_ticks: int, realism: RealismConfig, episodes: int = 40):
    spec = default_spec(crazyflie)
    return evaluate_policy(CascadeHover(spec, crazyflie), spec, "crazyflie", episodes=episodes, seed=3,
                           realism=dataclasses.replace(realism, latency_ticks=latency_ticks))


def test_the_cascade_recovers_every_throw_of_the_nominal_crazyflie_with_and_without_a_tick_of_delay(crazyflie):
    for latency in (0, 1):
        res = _fly(crazyflie, latency, RealismConfig.off())
        assert res.success_rate == 1.0 and res.rmse_m < 0.02
        assert res.yaw_rate_median_rad_s < 0.05  # it asks for no yaw rate and holds its heading


def test_its_altitude_integral_removes_the_offset_of_a_weak_airframe(crazyflie):
    spec = default_spec(crazyflie)
    weak = CascadeHover(spec, crazyflie)
    no_integral = CascadeHover(spec, crazyflie, CascadeGains(ki=0.0))

    def lighten(task):  # every motor 12 % weaker than the firmware believes (a worn set of props)
        task.sim.params.thrust_gain = task.sim.params.thrust_gain * 0.88
        task.sim.params.max_thrust_n = task.sim.params.max_thrust_n * 0.88

    runs = [evaluate_policy(c, spec, "crazyflie", episodes=20, seed=4, realism=RealismConfig.off(), after_reset=lighten)
            for c in (weak, no_integral)]
    assert runs[0].success_rate == 1.0
    assert runs[1].success_rate < 0.5  # the proportional term alone leaves it >10 cm low
    assert np.isfinite(runs[0].rmse_m) and runs[0].rmse_m < runs[1].rmse_m


def _at_rest(spec, n: int, error_w) -> np.ndarray:
    """(n, obs_dim) observations: level, at rest, at position error ``error_w`` (m, ENU)."""
    obs = np.zeros((n, spec.obs_dim))
    obs[:, spec.obs_slice("rotation_matrix_wb")] = np.eye(3).ravel()
    obs[:, spec.obs_slice("position_error_w")] = error_w
    return obs


def _collective_n(obs, spec, vehicle, gains, integral_z=0.0) -> float:
    return float(cascade_setpoint(obs, np.full(len(obs), integral_z), spec, vehicle, gains)[0][0])


def test_the_vertical_gains_act_on_the_vertical_error_only(crazyflie):
    spec = default_spec(crazyflie)
    below = _at_rest(spec, 1, [0.0, 0.0, -0.2])
    stiff = CascadeGains(kp_z=20.0)
    m = crazyflie.mass_kg
    assert _collective_n(below, spec, crazyflie, stiff) == pytest.approx(m * (GRAVITY_MPS2 + 20.0 * 0.2))
    assert _collective_n(below, spec, crazyflie, CascadeGains()) == pytest.approx(m * (GRAVITY_MPS2 + 12.0 * 0.2))
    aside = _at_rest(spec, 1, [0.3, 0.0, 0.0])
    np.testing.assert_array_equal(cascade_setpoint(aside, np.zeros(1), spec, crazyflie, stiff)[1],
                                  cascade_setpoint(aside, np.zeros(1), spec, crazyflie, CascadeGains())[1])


def test_a_cap_on_the_downward_demand_keeps_thrust_on_above_the_target(crazyflie):
    """1 m above the target the position term alone asks for more than free fall: zero thrust.
    With max_down_acc_mps2 the collective keeps m (g - cap)."""
    spec = default_spec(crazyflie)
    above = _at_rest(spec, 1, [0.0, 0.0, 1.0])
    assert _collective_n(above, spec, crazyflie, CascadeGains()) == 0.0
    capped = CascadeGains(max_down_acc_mps2=4.0)
    assert _collective_n(above, spec, crazyflie, capped) == pytest.approx(crazyflie.mass_kg * (GRAVITY_MPS2 - 4.0))


def test_the_horizontal_integral_term_tilts_against_an_accumulated_offset(crazyflie):
    spec = default_spec(crazyflie)
    obs = _at_rest(spec, 1, [0.0, 0.0, 0.0])
    gains = CascadeGains(ki_xy=10.0)
    east = cascade_actions(obs, np.zeros(1), spec, crazyflie, gains, np.array([[0.2, 0.0]]))
    # a level vehicle (body x east) that stayed east of the target tilts its thrust west: a
    # negative pitch rate (FLU: +pitch turns body z toward +x), no roll
    assert east[0, 2] < 0 and east[0, 1] == pytest.approx(0.0, abs=1e-9)
    without_ki_xy = CascadeGains()  # ki_xy 0: the horizontal integral is not read
    np.testing.assert_array_equal(cascade_actions(obs, np.zeros(1), spec, crazyflie, without_ki_xy, None),
                                  cascade_actions(obs, np.zeros(1), spec, crazyflie, without_ki_xy, np.array([[0.2, 0.0]])))


def test_the_yaw_rate_setpoint_yields_to_a_saturated_collective(crazyflie):
    """Spinning 3 rad/s in yaw: far below the target (collective demand above the yield fraction)
    the setpoint is the observed yaw rate, so the firmware's allocator takes no collective to stop
    the spin; near the target, and without the yield, it is zero."""
    spec = default_spec(crazyflie)
    gains = CascadeGains(max_down_acc_mps2=4.0, yaw_yield_thrust_fraction=0.8)
    obs = _at_rest(spec, 2, [0.0, 0.0, 0.0])
    obs[0, spec.obs_slice("position_error_w")] = [0.0, 0.0, -1.0]  # 1 m low: 12 m/s^2 up asked
    obs[:, spec.obs_slice("omega_b")] = [0.0, 0.0, 3.0]
    thrust_n, rates = cascade_setpoint(obs, np.zeros(2), spec, crazyflie, gains)
    assert thrust_n[0] > 0.8 * 4.0 * spec.thrust_max_n > thrust_n[1]
    np.testing.assert_allclose(rates[:, 2], [3.0, 0.0])
    plain = cascade_setpoint(obs, np.zeros(2), spec, crazyflie, dataclasses.replace(gains, yaw_yield_thrust_fraction=None))
    np.testing.assert_array_equal(plain[1][:, 2], [0.0, 0.0])
