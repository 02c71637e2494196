"""A whole PX4 flight from the ground against the twin at PX4's default parameters (the gz x500
airframe's: MPC_THR_HOVER 0.60, THR_MDL_FAC 0, COM_SPOOLUP_TIME 1 s, MPC_TKO_RAMP_T 3 s,
COM_DISARM_LAND 2 s): arm, PX4's own smooth takeoff, the policy, PX4's LAND, disarmed by PX4's
land detector. And the preflight parameter check that refuses a vehicle whose parameters are
not the ones the policy was trained for."""

from __future__ import annotations

from firmware_bridge.flightlog import FlightLog
from tests.firmware_bridge.bridge_support import (  # noqa: F401 - fixtures
    fly_cmd, px4_policy, px4_twin, run_fly,
)

FLIGHT = ("--target", "0,0,1.5", "--duration", "10")


def test_from_the_ground_to_disarmed_by_landing_at_px4_defaults(px4_policy, tmp_path):
    with px4_twin() as twin:
        rc, summary, err = run_fly(fly_cmd(px4_policy, twin.uri, tmp_path, *FLIGHT), timeout_s=120)
    assert rc == 0, err[-3000:]
    assert summary["final_state"] == "DONE" and summary["failsafe"] is None, summary
    assert summary["rmse_m"] < 0.05, summary
    assert summary["landing"]["disarmed_by"] == "landing", summary["landing"]
    log = FlightLog.read(summary["log"])
    texts = [r["text"] for r in log.events if r.get("type") == "statustext"]
    assert "Disarmed by landing" in texts
    assert not any("Disarming denied" in t for t in texts), texts
    assert [t["to"] for t in log.transitions] == ["PREFLIGHT", "ARMED", "FLYING", "LANDING", "DONE"]
    link = next(e for e in log.events if e.get("type") == "link")
    assert link["telemetry"] == "ODOMETRY"  # written after the telemetry negotiation, not before
    assert link["px4_timing"]["MPC_TKO_RAMP_T"] == 3.0
    assert log.column("pos")[-1, 2] < 0.5  # the policy hands over to PX4's LAND near the ground
    takeoff = [r for r in log.events if r.get("type") == "phase" and r.get("phase") == "policy"]
    assert takeoff and takeoff[0]["takeoff_s"] > 4.0  # PX4's spool-up + ramp, not our own climb


def test_a_parameter_mismatch_is_refused_before_arming_naming_it(px4_policy, tmp_path):
    with px4_twin("--param", "MC_ROLLRATE_P=0.3", "--param", "MPC_THR_HOVER=0.5") as twin:
        rc, summary, err = run_fly(fly_cmd(px4_policy, twin.uri, tmp_path, *FLIGHT), timeout_s=60)
    assert rc == 2, err[-2000:]
    refused = " ".join(summary["refused"])
    assert "MC_ROLLRATE_P is 0.3 on the vehicle; the policy was trained with 0.15" in refused
    assert "MPC_THR_HOVER is 0.5 on the vehicle" in refused and "0.757" in refused
    log = FlightLog.read(summary["log"])
    assert [t["to"] for t in log.transitions] == ["PREFLIGHT", "DONE"]  # never armed


def test_set_params_puts_the_policys_values_on_the_vehicle_and_flies(px4_policy, tmp_path):
    with px4_twin("--param", "MC_ROLLRATE_P=0.3") as twin:
        rc, summary, err = run_fly(fly_cmd(px4_policy, twin.uri, tmp_path, *FLIGHT, "--set-params"), timeout_s=120)
    assert rc == 0, err[-3000:]
    assert summary["final_state"] == "DONE" and summary["landing"]["disarmed_by"] == "landing"
    rec = next(e for e in FlightLog.read(summary["log"]).events if e.get("type") == "px4_params")
    assert rec["set"]["MC_ROLLRATE_P"] == __import__("pytest").approx(0.15) and rec["problems_after_set"] == []
