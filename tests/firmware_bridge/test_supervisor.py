"""The safety supervisor as a specification: pure logic, no vehicle, no link."""

from __future__ import annotations

import math

import numpy as np
import pytest

from firmware_bridge.supervisor import (
    FailsafeAction, Geofence, Limits, PreflightInputs, State, StateSample, Supervisor, failsafe_action,
    flight_violation, preflight_refusals,
)
from sim.frames import quat_from_euler

LIMITS = Limits(control_period_s=0.01, battery_min_v=3.2, geofence=Geofence(-1, 1, -1, 1, 2))
LEVEL = np.array([1.0, 0.0, 0.0, 0.0])


def sample(pos=(0, 0, 0), vel=(0, 0, 0), quat=LEVEL, omega=(0, 0, 0), age_s=0.005) -> StateSample:
    return StateSample(np.asarray(pos, float), np.asarray(vel, float), np.asarray(quat, float),
                       np.asarray(omega, float), age_s)


def inputs(**kw) -> PreflightInputs:
    base = dict(spec_vehicle="crazyflie", spec_firmware="crazyflie-firmware", spec_action_mode="ctbr",
                link_firmware="crazyflie-firmware", link_action_modes=("ctbr",), state=sample(), battery_v=4.0)
    base.update(kw)
    return PreflightInputs(**base)


def test_a_ground_vehicle_with_fresh_state_and_a_full_battery_may_arm():
    assert preflight_refusals(inputs(), LIMITS) == []


@pytest.mark.parametrize("kw, words", [
    (dict(link_firmware="px4"), "wrong vehicle"),
    (dict(spec_action_mode="motors"), "cannot carry action mode 'motors'"),
    (dict(state=None), "no state estimate"),
    (dict(state=sample(pos=(0, math.nan, 0))), "not finite"),
    (dict(state=sample(age_s=0.25)), "stale: 250 ms old"),
    (dict(battery_v=3.0), "battery low: 3.00 V < 3.20 V"),
    (dict(battery_v=None), "no battery reading"),
    (dict(state=sample(quat=quat_from_euler(0.4, 0.0, 0.0))), "not level"),
    (dict(state=sample(pos=(0, 0, 1.0))), "not on the ground"),
])
def test_preflight_refuses_and_says_why(kw, words):
    reasons = preflight_refusals(inputs(**kw), LIMITS)
    assert len(reasons) == 1 and words in reasons[0], reasons


def test_handover_skips_only_the_ground_check():
    airborne = sample(pos=(0, 0, 1.0), vel=(0.3, 0, 0), quat=quat_from_euler(0.3, 0, 0))
    assert preflight_refusals(inputs(state=airborne, handover=True), LIMITS) == []
    assert preflight_refusals(inputs(state=sample(age_s=1.0), handover=True), LIMITS)


def test_every_refusal_is_listed():
    reasons = preflight_refusals(inputs(link_firmware="px4", battery_v=2.0, state=None), LIMITS)
    assert len(reasons) == 3


def test_nominal_flight_walks_the_states_in_order_and_records_each_reason():
    sup = Supervisor(LIMITS)
    sup.start_preflight(0.0)
    assert sup.request_arm(0.1, inputs()) == []
    sup.takeoff(0.2)
    assert sup.check(0.3, sample(pos=(0, 0, 0.5))) is None
    sup.land(5.0, "hover complete")
    sup.landed(7.0)
    assert [t.dst for t in sup.transitions] == [State.PREFLIGHT, State.ARMED, State.FLYING, State.LANDING,
                                                State.DONE]
    assert all(t.reason for t in sup.transitions)
    assert sup.failsafe_reason is None and sup.terminal


def test_a_refusal_ends_in_done_without_arming():
    sup = Supervisor(LIMITS)
    sup.start_preflight(0.0)
    reasons = sup.request_arm(0.1, inputs(battery_v=3.0))
    assert reasons and sup.state == State.DONE
    assert "refused to arm: battery low" in sup.transitions[-1].reason
    with pytest.raises(RuntimeError, match="illegal transition"):
        sup.takeoff(0.2)


@pytest.mark.parametrize("s, missed, words", [
    (sample(pos=(1.5, 0, 1)), 0, "geofence breach: x=1.50 m > xmax=1"),
    (sample(pos=(0, 0, 2.5)), 0, "geofence breach: z=2.50 m > zmax=2"),
    (sample(quat=quat_from_euler(1.4, 0, 0)), 0, "tilt 80 deg > limit 75 deg"),
    (sample(omega=(0, 0, 20.0)), 0, "body rate 20.0 rad/s"),
    (sample(vel=(math.inf, 0, 0)), 0, "non-finite state"),
    (sample(age_s=0.13), 0, "stale telemetry: 130 ms old (limit 100 ms)"),
    (sample(), 20, "20 control deadlines missed in a row"),
    (None, 0, "no state estimate"),
])
def test_in_flight_violations_trigger_failsafe_with_their_reason(s, missed, words):
    sup = Supervisor(LIMITS)
    sup.start_preflight(0.0)
    sup.request_arm(0.0, inputs())
    sup.takeoff(0.0)
    reason = sup.check(1.0, s, missed_in_row=missed)
    assert reason is not None and words in reason
    assert sup.state == State.FAILSAFE and sup.failsafe_reason == reason
    assert sup.transitions[-1].reason == reason


def test_nineteen_missed_deadlines_are_tolerated():
    assert flight_violation(sample(), LIMITS, missed_in_row=19) is None


def test_stale_limit_is_ten_periods_but_never_below_50_ms():
    assert LIMITS.stale_s == pytest.approx(0.10)
    assert Limits(control_period_s=0.002, battery_min_v=3.0).stale_s == pytest.approx(0.05)
    assert Limits(control_period_s=0.02, battery_min_v=3.0).stale_s == pytest.approx(0.20)


def test_link_loss_wins_over_everything_else():
    assert flight_violation(sample(pos=(9, 9, 9)), LIMITS, link_alive=False) == "link lost"


def test_failsafe_is_terminal_and_checks_stop_there():
    sup = Supervisor(LIMITS)
    sup.start_preflight(0.0)
    sup.request_arm(0.0, inputs())
    sup.takeoff(0.0)
    sup.failsafe(1.0, "interrupted by SIGINT")
    assert sup.failsafe(1.1, "second reason") is None
    assert sup.check(1.2, sample(pos=(9, 0, 0))) is None
    assert sup.failsafe_reason == "interrupted by SIGINT"
    with pytest.raises(RuntimeError):
        sup.land(2.0, "too late")


def test_a_failsafe_before_arming_only_aborts():
    sup = Supervisor(LIMITS)
    sup.start_preflight(0.0)
    sup.failsafe(0.5, "interrupted by SIGTERM")
    assert sup.state == State.DONE and sup.failsafe_reason is None


def test_failsafe_action_per_firmware_and_attitude():
    assert failsafe_action("px4", sample(), LIMITS) == FailsafeAction.PX4_LAND
    assert failsafe_action("crazyflie-firmware", sample(), LIMITS) == FailsafeAction.CONTROLLED_DESCENT
    upside_down = sample(quat=quat_from_euler(2.5, 0, 0))
    assert failsafe_action("crazyflie-firmware", upside_down, LIMITS) == FailsafeAction.MOTOR_STOP
    assert failsafe_action("crazyflie-firmware", None, LIMITS) == FailsafeAction.CONTROLLED_DESCENT


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d,e", "1,0,-1,1,2", "-1,1,-1,1,0", "nan,1,-1,1,2"])
def test_geofence_parse_refuses_nonsense(text):
    with pytest.raises(ValueError):
        Geofence.parse(text)


def test_geofence_parse_and_contains():
    g = Geofence.parse("-1,1,-2,2,3")
    assert g.contains(np.array([0.5, -1.5, 2.9])) and not g.contains(np.array([0.0, 0.0, 3.1]))
