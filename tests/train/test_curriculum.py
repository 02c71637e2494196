"""The training-only randomization ramp (train.loop.curriculum_realism): narrow ranges first, the
vehicle file's full ranges after ``randomization_ramp_steps``; evaluations never see the ramp."""

from __future__ import annotations

import numpy as np
import pytest

from sim.randomization import RealismConfig, sample_params
from sim.vehicle import load_vehicle
from train.loop import TrainConfig, curriculum_realism


def test_the_randomization_scale_ramps_from_the_start_fraction_to_the_runs_scale():
    tc = TrainConfig(randomization_ramp_steps=1000, randomization_ramp_start=0.25)
    final = RealismConfig(randomization_scale=1.0)
    assert curriculum_realism(final, tc, 0).randomization_scale == pytest.approx(0.25)
    assert curriculum_realism(final, tc, 500).randomization_scale == pytest.approx(0.625)
    assert curriculum_realism(final, tc, 5000).randomization_scale == pytest.approx(1.0)
    assert curriculum_realism(final, TrainConfig(), 0) is final  # off by default


def test_a_quarter_scale_keeps_the_crazyflies_motor_lag_about_the_middle_of_its_range():
    cf = load_vehicle("crazyflie")
    narrow = sample_params(cf, 4000, np.random.default_rng(0), RealismConfig(randomization_scale=0.25))
    full = sample_params(cf, 4000, np.random.default_rng(0), RealismConfig())
    mid = np.sqrt(0.025 * 0.249)  # log-uniform spin-down range: its centre is the geometric mean
    assert narrow.tau_down_s.max() < full.tau_down_s.max()
    assert narrow.tau_down_s.min() > 0.8 * mid * (0.249 / 0.025) ** -0.125
    assert narrow.rate_p_only.mean() < 0.1 and full.rate_p_only.mean() > 0.15
