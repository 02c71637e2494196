"""``quadhil fly`` against the PX4 twin through the real pymavlink: arm, OFFBOARD with body-rate
setpoints, hover, land; geofence failsafe hands the vehicle to PX4's LAND mode."""

from __future__ import annotations

from firmware_bridge.flightlog import FlightLog
from tests.firmware_bridge.bridge_support import (  # noqa: F401 - fixtures
    fly_cmd, px4_policy, px4_twin, run_fly,
)

HOVER = ("--target", "0,0,1", "--takeoff-height", "1")


def test_hover_10_s_in_the_px4_twin_through_pymavlink(px4_policy, tmp_path):
    with px4_twin() as twin:
        rc, summary, err = run_fly(fly_cmd(px4_policy, twin.uri, tmp_path, *HOVER, "--duration", "10"))
    assert rc == 0, err
    assert summary["failsafe"] is None and summary["final_state"] == "DONE"
    assert summary["rmse_m"] < 0.10, summary
    log = FlightLog.read(summary["log"])
    assert [t["to"] for t in log.transitions] == ["PREFLIGHT", "ARMED", "FLYING", "LANDING", "DONE"]
    assert log.header["spec"]["vehicle"] == "x500" and log.summary is not None
    hover_t = [t["t"] for t in log.ticks if t["phase"] == "hover"]
    assert abs(hover_t[-1] - hover_t[0] - 10.0) < 0.1
    # the policy hands over near the ground; PX4's LAND lands and its land detector disarms it
    assert log.column("pos")[-1, 2] < 0.5 and summary["landing"]["disarmed_by"] == "landing"


def test_geofence_breach_hands_the_vehicle_to_px4_land(px4_policy, tmp_path):
    with px4_twin("--wind", "12,0,0", "--gust-std", "2") as twin:
        rc, summary, err = run_fly(fly_cmd(px4_policy, twin.uri, tmp_path, *HOVER,
                                           "--geofence", "-0.1,0.1,-1,1,3", "--fence-margin", "0.05"))
    assert rc == 3, err
    assert summary["failsafe"].startswith("geofence breach: x="), summary
    assert summary["failsafe_action"] == "px4_land" and summary["failsafe_response_ms"] < 100.0
    assert "FAILSAFE" in err
