"""A policy that observes past velocities and body rates (``quadhil train --state-history``) is fed
by the bridge as training fed it: through the real pymavlink, against the PX4 twin, in a dry run."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_bridge.flightlog import FlightLog
from sim.contract import PolicySpec
from tests.firmware_bridge.bridge_support import fly_cmd, px4_twin, run_fly, untrained_policy


@pytest.fixture(scope="module")
def history_policy(tmp_path_factory):
    return untrained_policy("x500", tmp_path_factory, "--state-history", "2")


def test_each_tick_observes_the_estimates_the_two_ticks_before_it_observed(history_policy, tmp_path):
    with px4_twin("--noise") as twin:  # a noisy estimate: every tick's velocity and rates differ
        cmd = [c for c in fly_cmd(history_policy, twin.uri, tmp_path, "--target", "0,0,1", "--duration", "0.5")
               if c != "--arm"]
        rc, summary, err = run_fly(cmd)
    assert rc == 0, err
    log = FlightLog.read(summary["log"])
    spec = PolicySpec.from_dict(log.header["spec"])
    obs = np.array([t["obs"] for t in log.ticks if t.get("obs") is not None], dtype=np.float32)
    assert spec.state_history == 2 and len(obs) >= 10, summary
    vel, vel_h = obs[:, spec.obs_slice("velocity_w")], obs[:, spec.obs_slice("velocity_history_w")]
    omega, omega_h = obs[:, spec.obs_slice("omega_b")], obs[:, spec.obs_slice("omega_history_b")]
    assert np.mean(np.any(vel[1:] != vel[:-1], axis=1)) > 0.5  # so the equalities below say something
    # the first tick the policy flies sees no motion before it (training starts an episode so)
    np.testing.assert_array_equal(vel_h[0], np.tile(vel[0], 2))
    np.testing.assert_array_equal(omega_h[0], np.tile(omega[0], 2))
    # then newest first: tick k holds ticks k-1 and k-2
    np.testing.assert_array_equal(vel_h[2:, :3], vel[1:-1])
    np.testing.assert_array_equal(vel_h[2:, 3:], vel[:-2])
    np.testing.assert_array_equal(omega_h[2:, :3], omega[1:-1])
    np.testing.assert_array_equal(omega_h[2:, 3:], omega[:-2])
