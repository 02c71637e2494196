"""Takeoff/hover/land reference, the fixed-rate schedule and the flight log format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from firmware_bridge.flightlog import FlightLog, FlightLogError, FlightLogWriter
from firmware_bridge.reference import Reference
from firmware_bridge.scheduler import Scheduler


def test_reference_climbs_then_moves_hovers_and_lands_at_bounded_speed():
    ref = Reference.build(np.zeros(3), np.array([1.0, 0.0, 1.0]), 1.0, hover_s=5.0, handover=False)
    assert ref.ramp_s == pytest.approx(4.0)  # 1 m up + 1 m across at 0.5 m/s
    assert np.allclose(ref.at(0.0), [0, 0, 0])
    assert np.allclose(ref.at(2.0), [0, 0, 1])
    assert np.allclose(ref.at(3.0), [0.5, 0, 1])
    assert ref.phase(3.9) == "ramp" and ref.phase(4.1) == "hover" and ref.phase(9.1) == "land"
    assert np.allclose(ref.at(9.0 + 1.0), [1.0, 0, 0.6])
    assert ref.phase(9.0 + ref.land_s + 0.01) == "ground"
    assert np.allclose(ref.at(100.0), [1.0, 0, 0.0])
    ts = np.arange(0, 20, 0.01)
    speeds = np.linalg.norm(np.diff([ref.at(t) for t in ts], axis=0), axis=1) / 0.01
    assert speeds.max() <= 0.5 + 1e-9


def test_handover_starts_from_the_air_without_a_climb():
    ref = Reference.build(np.array([0, 0, 0.8]), np.array([0, 0, 1.0]), 1.0, 2.0, handover=True, ground_z_m=0.0)
    assert len(ref.waypoints_w) == 2 and ref.ground_z_m == 0.0


def test_scheduler_releases_on_a_fixed_grid_and_counts_skipped_ticks():
    s = Scheduler.start(100.0, t0_s=10.0)
    assert s.release() == 10.0 and s.deadline() == pytest.approx(10.01)
    s.advance(now_s=10.005)
    assert s.k == 1 and s.skipped == 0
    s.advance(now_s=10.047)  # tick 2's deadline (10.03) passed long ago: skip to the tick due now
    assert s.skipped == 2 and s.release() <= 10.047 < s.deadline()


def test_flight_log_is_flushed_line_by_line_and_survives_a_torn_tail(tmp_path):
    w = FlightLogWriter(tmp_path / "f.jsonl", {"model_sha256": "ab", "spec": {"vehicle": "crazyflie"}})
    w.write({"type": "tick", "k": 0, "pos": np.array([0.0, 1.0, 2.0]), "deadline_met": np.bool_(True)})
    # readable before close: nothing waits in a buffer
    assert len((tmp_path / "f.jsonl").read_text().splitlines()) == 2
    w.write({"type": "transition", "from": "FLYING", "to": "FAILSAFE", "reason": "geofence breach"})
    with open(tmp_path / "f.jsonl", "a") as f:
        f.write('{"type": "tick", "k": 1, "po')  # a kill in the middle of a line
    log = FlightLog.read(tmp_path / "f.jsonl")
    assert log.header["model_sha256"] == "ab" and log.torn_lines == 1
    assert log.column("pos").shape == (1, 3) and log.transitions[0]["reason"] == "geofence breach"
    w.close()


def test_reading_something_that_is_not_a_flight_log_names_the_problem(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps({"type": "tick"}) + "\n")
    with pytest.raises(FlightLogError, match="not a quadhil flight log"):
        FlightLog.read(p)
    with pytest.raises(FlightLogError, match="does not exist"):
        FlightLog.read(tmp_path / "missing.jsonl")


def test_phase_lock_moves_releases_just_before_sample_arrivals_without_changing_the_rate():
    s = Scheduler.start(100.0, t0_s=0.0)
    arrival_phase = 0.0093  # samples arrive 9.3 ms into each period: bad for latency
    for k in range(200):
        s.lock_phase(k * 0.01 + arrival_phase)
        s.advance(now_s=s.release() + 0.001)
    assert s.period_s == 0.01
    lag = (arrival_phase - s.t0_s) % 0.01
    assert lag == pytest.approx(0.001, abs=2e-4)
