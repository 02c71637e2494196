"""``quadhil fly`` against the Crazyflie twin through the real cflib: a hover, every failsafe the
issue names, and the refusals. Each test runs the bridge as a user does (a subprocess) and
reads its JSON summary, its exit status, its stderr and its flight log."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import numpy as np

from firmware_bridge.cli_plot import plot_flight
from firmware_bridge.flightlog import FlightLog
from tests.firmware_bridge.bridge_support import (  # noqa: F401 - fixtures
    REPO, any_cf_policy, any_px4_policy, cf_policy, crazyflie_twin, fault_twin, fly_cmd, last_json, run_fly, stop,
)

HOVER = ("--target", "0,0,1", "--takeoff-height", "1")
FAILSAFE_RESPONSE_MS = 100.0


def _log(summary: dict) -> FlightLog:
    return FlightLog.read(summary["log"])


def _wait_for_flight(log_dir: Path, t_flight_s: float, timeout_s: float = 30.0) -> None:
    """Block until the flight log in ``log_dir`` has a tick ``t_flight_s`` after takeoff."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for p in log_dir.glob("*.jsonl"):
            log = FlightLog.read(p)
            if log.ticks and log.ticks[-1]["t"] >= t_flight_s:
                return
        time.sleep(0.05)
    raise AssertionError(f"no flight reached t={t_flight_s} s within {timeout_s} s")


def _assert_failsafe(rc: int, summary: dict, err: str, words: str, action: str) -> FlightLog:
    assert rc == 3, err
    assert summary is not None and words in (summary["failsafe"] or ""), (summary, err)
    assert "FAILSAFE" in err and words in err
    assert summary["failsafe_action"] == action
    log = _log(summary)
    fs = log.failsafes[-1]
    assert words in fs["reason"] and fs["action"] == action
    assert fs["response_ms"] < FAILSAFE_RESPONSE_MS, fs
    assert log.transitions[-1]["to"] == "FAILSAFE" and words in log.transitions[-1]["reason"]
    return log


def test_hover_10_s_in_the_twin_through_cflib(cf_policy, tmp_path):
    with crazyflie_twin() as twin:
        rc, summary, err = run_fly(fly_cmd(cf_policy, twin.uri, tmp_path, *HOVER, "--duration", "10"))
    assert rc == 0, err
    assert summary["failsafe"] is None and summary["final_state"] == "DONE"
    assert summary["rmse_m"] < 0.10, summary
    log = _log(summary)
    assert [t["to"] for t in log.transitions] == ["PREFLIGHT", "ARMED", "FLYING", "LANDING", "DONE"]
    assert log.header["model_sha256"] and log.header["spec"]["vehicle"] == "crazyflie"
    assert log.header["link"]["uri"] == twin.uri and log.summary is not None and log.torn_lines == 0
    phases = [t["phase"] for t in log.ticks]
    # takeoff and touch-down on the firmware's own stabilization, the policy in between
    assert phases[0] == "takeoff" and "hover" in phases and phases[-1] == "touchdown"
    hover_t = [t["t"] for t in log.ticks if t["phase"] == "hover"]
    assert abs(hover_t[-1] - hover_t[0] - 10.0) < 0.1
    final_z = log.column("pos")[-1, 2]
    assert final_z < 0.1  # landed
    assert len(plot_flight(summary["log"], tmp_path / "png")) == 4


def test_dry_run_sends_nothing_that_spins_motors(any_cf_policy, tmp_path):
    with crazyflie_twin() as twin:
        cmd = [c for c in fly_cmd(any_cf_policy, twin.uri, tmp_path, "--target", "0,0,0.2", "--duration", "0.5")
               if c != "--arm"]
        rc, summary, err = run_fly(cmd)
    assert rc == 0, err
    assert summary["dry_run"] is True and summary["rmse_m"] is None
    log = _log(summary)
    z = log.column("pos")[:, 2]
    assert np.all(np.abs(z) < 0.01)  # never left the ground
    assert all(t["cmd"] for t in log.ticks)  # ... but every tick logged what it would have sent


def test_killing_the_twin_mid_flight_ends_in_failsafe(cf_policy, tmp_path):
    with crazyflie_twin() as twin:
        bridge = subprocess.Popen(fly_cmd(cf_policy, twin.uri, tmp_path, *HOVER), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=REPO)
        try:
            _wait_for_flight(tmp_path, 1.0)
            stop(twin)
            out, err = bridge.communicate(timeout=30)
        finally:
            stop(bridge)
    summary = last_json(out)
    assert bridge.returncode == 3, err
    assert summary["failsafe"].startswith(("stale telemetry", "link lost")), summary
    log = _log(summary)
    assert log.failsafes[-1]["response_ms"] < FAILSAFE_RESPONSE_MS
    assert log.transitions[-1]["to"] == "FAILSAFE"


def test_nan_state_estimate_ends_in_controlled_descent(cf_policy, tmp_path):
    with fault_twin("--nan-after", "1.0") as twin:
        rc, summary, err = run_fly(fly_cmd(cf_policy, twin.uri, tmp_path, *HOVER))
    _assert_failsafe(rc, summary, err, "non-finite state estimate", "controlled_descent")


def test_wind_out_of_the_geofence_ends_in_failsafe(cf_policy, tmp_path):
    # 8 m/s (gusts 2.4 m/s std): past what a 27 g airframe with thrust-to-weight 1.7 can lean
    # into for long, whatever the policy; the committed policy holds 5 m/s (robustness suite)
    with crazyflie_twin("--wind", "8") as twin:
        rc, summary, err = run_fly(fly_cmd(cf_policy, twin.uri, tmp_path, *HOVER,
                                           "--geofence=-0.15,0.15,-0.5,0.5,2"))
    log = _assert_failsafe(rc, summary, err, "geofence breach: x=", "controlled_descent")
    assert log.column("pos")[-1, 0] > 0.1  # blown downwind (+x) up to the fence


def test_sigint_to_the_bridge_ends_in_failsafe(cf_policy, tmp_path):
    with crazyflie_twin() as twin:
        bridge = subprocess.Popen(fly_cmd(cf_policy, twin.uri, tmp_path, *HOVER), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=REPO)
        try:
            _wait_for_flight(tmp_path, 0.8)
            bridge.send_signal(signal.SIGINT)
            out, err = bridge.communicate(timeout=30)
        finally:
            stop(bridge)
    _assert_failsafe(bridge.returncode, last_json(out), err, "interrupted by SIGINT", "controlled_descent")


def test_refuses_a_policy_for_another_vehicle(any_px4_policy, tmp_path):
    with crazyflie_twin() as twin:
        rc, summary, err = run_fly(fly_cmd(any_px4_policy, twin.uri, tmp_path))
    assert rc == 2 and "refused to arm: wrong vehicle" in err, err
    assert summary["ticks"] == 0 and _log(summary).transitions[-1]["to"] == "DONE"


def test_refuses_stale_telemetry_and_a_low_battery_and_lists_both(any_cf_policy, tmp_path):
    with fault_twin("--stall-after", "0.1", "--battery-charge", "0.05") as twin:
        rc, summary, err = run_fly(fly_cmd(any_cf_policy, twin.uri, tmp_path))
    assert rc == 2, err
    assert "state estimate is stale" in err and "battery low: 3.0" in err, err
    assert summary["refused"] and len(summary["refused"]) == 2
    reason = _log(summary).transitions[-1]["reason"]
    assert "stale" in reason and "battery low" in reason
