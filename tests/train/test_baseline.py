"""train.baseline.CascadeHover: the hand-written classical reference flown through the ctbr
interface recovers throws, and a tick of action latency costs it nothing on the nominal airframe."""

from __future__ import annotations

import dataclasses

import numpy as np

from sim.contract import default_spec
from sim.randomization import RealismConfig
from train.baseline import CascadeGains, CascadeHover
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
