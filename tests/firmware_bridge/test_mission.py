"""The preflight mission rules as a specification: pure logic, no vehicle, no link.

The property-based part checks the rules on thousands of random missions and fences; the twin
flights of the same property are in test_fly_mission.py."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from firmware_bridge.mission import (
    FenceChoice, MissionError, MissionLimits, check_mission, default_geofence, flight_s, plan_mission, transit_limit_s,
    transit_s,
)
from firmware_bridge.reference import Reference
from firmware_bridge.supervisor import Geofence, Limits, StateSample, flight_violation
from sim.vehicle import load_vehicle

CF = MissionLimits.from_vehicle_file(load_vehicle("crazyflie").source_path)
X500 = MissionLimits.from_vehicle_file(load_vehicle("x500").source_path)
ORIGIN = np.zeros(3)
FENCE = Geofence(-1, 1, -1, 1, 1.5)


def mission(target=(0, 0, 1), takeoff=None, hover_s=5.0, rate_hz=100.0, trained_hz=100.0, start=ORIGIN,
            handover=False, telemetry_hz=None):
    return plan_mission(start, target, takeoff, hover_s, handover, rate_hz, trained_hz, telemetry_hz)


def rules(m, fence=FENCE, limits=CF, **kw):
    refusals, _ = check_mission(m, fence, limits, **kw)
    return [r.rule for r in refusals]


def test_every_vehicle_file_carries_its_limits():
    assert CF.fence_margin_m == 0.1 and CF.speed_max_mps == 1.0 and CF.geofence_height_m == 1.5
    assert X500.fence_margin_m == 0.5 and X500.min_height_m == 0.5 and X500.speed_max_mps == 3.0


def test_a_vehicle_file_without_limits_is_refused_by_name(tmp_path):
    p = tmp_path / "v.toml"
    p.write_text("[vehicle]\nid = 'v'\n")
    with pytest.raises(MissionError, match=r"no \[limits\] table"):
        MissionLimits.from_vehicle_file(p)
    p.write_text("[limits]\nfence_margin_m = -1\n")
    with pytest.raises(MissionError, match="limits.geofence_half_width_m"):
        MissionLimits.from_vehicle_file(p)


def test_overrides_replace_only_what_was_given():
    lim = CF.with_overrides(fence_margin_m=0.0, min_height_m=None)
    assert lim.fence_margin_m == 0.0 and lim.min_height_m == CF.min_height_m
    with pytest.raises(MissionError, match="unknown"):
        CF.with_overrides(ceiling_m=3.0)


def test_a_hover_a_metre_up_in_the_default_box_is_accepted():
    assert rules(mission()) == []


@pytest.mark.parametrize("kw, rule, words", [
    # the four missions of issue #20, as the Crazyflie sees them
    (dict(target=(0, 0, 30)), "target-in-fence", "z=30.00 m > zmax 1.5 - margin 0.1 = 1.40 m"),
    (dict(target=(0, 0, 30)), "reach", "30.00 m of climb and transit at 0.50 m/s takes 60.0 s > 10 s"),
    (dict(target=(0, 0, -1)), "target-above-ground", "target z=-1.00 m < ground 0.00 m + minimum height 0.2 m"),
    (dict(rate_hz=500.0), "rate", "control rate 500 Hz != the policy's trained rate 100 Hz"),
    # a 250 Hz motor-level policy relayed on cflib's 100 Hz log blocks
    (dict(rate_hz=250.0, trained_hz=250.0, telemetry_hz=100.0), "telemetry-rate",
     "acts at 250 Hz but this link delivers the state at 100 Hz: it would act 2.5 times on each state"),
    (dict(target=(0.95, 0, 1)), "target-in-fence", "x=0.95 m not in [-1.00 + 0.1, 1.00 - 0.1]"),
    (dict(target=(0, -1.2, 1)), "target-in-fence", "y=-1.20 m"),
    (dict(target=(0, 0, 1), takeoff=1.45), "takeoff-in-fence", "takeoff height 1.45 m not in [0.20, 1.40] m"),
    (dict(target=(0, 0, 1), takeoff=0.1), "takeoff-in-fence", "takeoff height 0.10 m"),
    (dict(hover_s=296.0), "flight-time", "planned flight 300.5 s (transit, hover 296 s, descent) + slack 3 s > 300 s"),
    (dict(start=np.array([1.5, 0, 0])), "start-in-fence", "x=1.50 m > xmax=1"),
])
def test_each_rule_refuses_and_names_its_numbers(kw, rule, words):
    refusals, _ = check_mission(mission(**kw), FENCE, CF)
    hit = [r for r in refusals if r.rule == rule]
    assert hit and words in hit[0].message, refusals
    assert str(hit[0]).startswith(f"{rule}: ") and hit[0].as_dict()["rule"] == rule


def test_a_low_fence_refuses_the_target_and_the_climb():
    assert rules(mission(), fence=Geofence(-1, 1, -1, 1, 0.5)) == ["target-in-fence", "takeoff-in-fence"]


def test_a_rate_mismatch_may_be_flown_explicitly_with_a_warning():
    refusals, warnings = check_mission(mission(rate_hz=500.0), FENCE, CF, allow_rate_mismatch=True)
    assert refusals == [] and len(warnings) == 1 and "500 Hz" in warnings[0] and "--allow-rate-mismatch" in warnings[0]


def test_a_policy_no_faster_than_its_telemetry_passes_and_a_faster_one_may_be_flown_with_a_warning():
    assert rules(mission(telemetry_hz=100.0)) == [] and rules(mission(rate_hz=50.0, trained_hz=50.0, telemetry_hz=100.0)) == []
    refusals, warnings = check_mission(mission(rate_hz=250.0, trained_hz=250.0, telemetry_hz=100.0), FENCE, CF,
                                       allow_rate_mismatch=True)
    assert refusals == [] and len(warnings) == 1 and warnings[0].startswith("telemetry-rate: ")
    assert "--onboard" in warnings[0] and "--allow-rate-mismatch" in warnings[0]


def test_handover_measures_height_from_the_ground_not_from_the_vehicle():
    m = mission(target=None, takeoff=0.3, start=np.array([0, 0, 1.0]), handover=True)
    assert np.allclose(m.target_w, [0, 0, 1.3]) and m.ground_z == 0.0
    assert rules(m) == []


def test_transit_and_flight_time_come_from_the_path_and_the_speeds():
    m = mission(target=(0.6, 0, 1), takeoff=1.0)  # 1 m up, 0.6 m across
    assert m.path_m == pytest.approx(1.6)
    assert transit_s(m, CF) == pytest.approx(1.6 / 0.5)  # the reference's 0.5 m/s < the vehicle's 1 m/s
    assert transit_limit_s(m, CF) == pytest.approx(3.2 + CF.transit_slack_s)
    assert flight_s(m, CF) == pytest.approx(3.2 + 5.0 + 1.0 / Reference.land_speed_mps)
    slow = replace(CF, speed_max_mps=0.25)  # a vehicle slower than the reference sets the pace
    assert transit_s(m, slow) == pytest.approx(1.6 / 0.25)


def test_default_crazyflie_fence_is_a_box_around_the_start():
    choice = default_geofence("cflib", np.array([0.5, -0.2, 0.0]), CF)
    assert choice.fence == Geofence(-0.5, 1.5, -1.2, 0.8, 1.5)
    assert "vehicle file" in choice.source


def test_default_px4_fence_comes_from_gf_params_where_set():
    params = {"GF_MAX_HOR_DIST": 10.0, "GF_MAX_VER_DIST": 4.0, "GF_ACTION": 5.0}
    choice = default_geofence("mavlink", ORIGIN, X500, params)
    half = 10.0 / math.sqrt(2.0)  # the box inscribed in PX4's circle around Home
    assert choice.fence == pytest.approx(Geofence(-half, half, -half, half, 4.0))
    assert "GF_MAX_HOR_DIST=10" in choice.source and "GF_ACTION=5 (Land mode)" in choice.source


@pytest.mark.parametrize("params, words", [
    ({}, "not readable"),
    ({"GF_MAX_HOR_DIST": 0.0, "GF_MAX_VER_DIST": 0.0, "GF_ACTION": 2.0}, "off (0)"),
])
def test_px4_without_its_own_fence_gets_the_conservative_box(params, words):
    choice = default_geofence("mavlink", ORIGIN, X500, params)
    assert choice.fence == Geofence(-5, 5, -5, 5, 5)
    assert words in choice.source


def test_fence_choice_serialises_with_its_source():
    d = FenceChoice(FENCE, "explicit (--geofence)").as_dict()
    assert d == {"x_min_m": -1, "x_max_m": 1, "y_min_m": -1, "y_max_m": 1, "z_max_m": 1.5,
                 "source": "explicit (--geofence)"}


# -- in flight: the time limits -----------------------------------------------------------------
LEVEL = np.array([1.0, 0.0, 0.0, 0.0])
HOVERING = StateSample(np.array([0, 0, 1.0]), np.zeros(3), LEVEL, np.zeros(3), 0.005)
TIMED = Limits(control_period_s=0.01, battery_min_v=3.2, geofence=FENCE, transit_limit_s=5.0, flight_time_max_s=60.0)


def test_a_target_not_reached_within_the_transit_limit_ends_in_failsafe():
    assert flight_violation(HOVERING, TIMED, t_flight_s=4.9, target_reached=False) is None
    reason = flight_violation(HOVERING, TIMED, t_flight_s=5.1, target_reached=False)
    assert reason == "transit limit: target not reached after 5.1 s of transit (limit 5.0 s)"
    assert flight_violation(HOVERING, TIMED, t_flight_s=30.0, target_reached=True) is None
    # the transit clock may start later than takeoff (when the policy takes over)
    assert flight_violation(HOVERING, TIMED, t_flight_s=7.0, t_transit_s=4.0, target_reached=False) is None


def test_the_total_flight_time_is_limited():
    assert flight_violation(HOVERING, TIMED, t_flight_s=59.0) is None
    assert flight_violation(HOVERING, TIMED, t_flight_s=60.5) == "flight time limit: 60.5 s > 60.0 s"


# -- properties over random missions and fences ---------------------------------------------------
coord = st.floats(-3.0, 3.0, allow_nan=False)
reach = st.floats(0.2, 2.0)


@st.composite
def cases(draw):
    """A start on the ground, a fence around it, a target placed by fractions of the fence (some
    beyond it), a takeoff height, a hover time and a control rate: about half pass every rule."""
    sx, sy = draw(coord), draw(coord)
    fence = Geofence(sx - draw(reach) - 0.01, sx + draw(reach) + 0.01, sy - draw(reach) - 0.01,
                     sy + draw(reach) + 0.01, draw(st.floats(0.3, 3.0)))
    frac = st.integers(-15, 115).map(lambda k: k / 100.0)
    target = (fence.x_min_m + draw(frac) * (fence.x_max_m - fence.x_min_m),
              fence.y_min_m + draw(frac) * (fence.y_max_m - fence.y_min_m), draw(frac) * fence.z_max_m)
    takeoff = draw(st.one_of(st.none(), st.floats(0.0, 3.0)))
    hover_s = draw(st.one_of(st.floats(0.1, 30.0), st.floats(0.1, 320.0)))
    m = mission(target=target, takeoff=takeoff, hover_s=hover_s, start=np.array([sx, sy, 0.0]),
                rate_hz=draw(st.sampled_from([100.0] * 8 + [50.0, 500.0])))
    return m, fence


def _reference_points(m) -> np.ndarray:
    ref = Reference.build(m.start_w, m.target_w, m.takeoff_h, m.hover_s, handover=False, ground_z_m=m.ground_z)
    t_end = ref.landing_start_s + ref.land_s
    return np.array([ref.at(t) for t in np.linspace(0.0, t_end, 400)])


@settings(max_examples=1500, deadline=None)
@given(case=cases())
def test_every_accepted_mission_keeps_its_whole_reference_inside_the_fence(case):
    m, fence = case
    refusals, _ = check_mission(m, fence, CF)
    event("refused" if refusals else "accepted")
    if refusals:
        return
    pts = _reference_points(m)
    assert all(fence.contains(p) for p in pts)
    assert np.all(pts[:, 2] >= m.ground_z - 1e-9)
    assert m.target_w[2] >= m.ground_z + CF.min_height_m
    assert m.rate_hz == m.trained_rate_hz
    assert flight_s(m, CF) + CF.transit_slack_s <= CF.flight_time_max_s


@settings(max_examples=1000, deadline=None)
@given(case=cases())
def test_a_target_outside_the_fence_is_always_refused(case):
    m, fence = case
    refusals, _ = check_mission(m, fence, CF)
    if not fence.contains(m.target_w):
        assert "target-in-fence" in [r.rule for r in refusals]


@settings(max_examples=500, deadline=None)
@given(case=cases(), shrink=st.floats(0.0, 0.5))
def test_shrinking_the_fence_never_turns_a_refusal_into_a_flight(case, shrink):
    m, fence = case
    smaller = Geofence(fence.x_min_m + shrink, max(fence.x_max_m - shrink, fence.x_min_m + shrink + 1e-6),
                       fence.y_min_m + shrink, max(fence.y_max_m - shrink, fence.y_min_m + shrink + 1e-6),
                       max(fence.z_max_m - shrink, 1e-6))
    if check_mission(m, fence, CF)[0]:
        assert check_mission(m, smaller, CF)[0]
