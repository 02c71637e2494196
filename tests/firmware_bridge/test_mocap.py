"""Motion capture in (firmware_bridge/mocap.py), driven through the motioncapture package's own
``mock`` backend: the pose it serves reaches the sink converted to ENU, a missing object and a
silent system count as lost tracking, and bad --mocap text is refused by name."""

from __future__ import annotations

import time

import numpy as np
import pytest

from firmware_bridge.mocap import PX4_EV_PARAMS, MocapStream, parse_mocap, px4_ev_params_text
from firmware_bridge.supervisor import FailsafeAction, Limits, State, Supervisor, failsafe_action
from sim.errors import QuadhilError

pytest.importorskip("motioncapture")


def _run(spec_text: str, axes: str = "z-up", seconds: float = 0.3) -> MocapStream:
    got = []
    m = MocapStream(parse_mocap(spec_text, axes, timeout_s=0.1))
    m.sink = got.append
    m.start()
    try:
        time.sleep(seconds)
    finally:
        m.stop()
    m.got = got
    return m


def test_parse_keeps_the_mock_backends_parenthesised_bodies_whole():
    s = parse_mocap("mock:localhost,object=cf1,rigid_bodies=cf1(1,2,3,1,0,0,0);cf2(0,0,0,1,0,0,0),frequency=200")
    assert (s.kind, s.host, s.object_name) == ("mock", "localhost", "cf1")
    assert s.options == {"rigid_bodies": "cf1(1,2,3,1,0,0,0);cf2(0,0,0,1,0,0,0)", "frequency": "200"}


@pytest.mark.parametrize("text", ["vicon", ":host", "mock:localhost,object"])
def test_bad_mocap_text_is_refused_by_name(text):
    with pytest.raises(QuadhilError, match="--mocap"):
        parse_mocap(text)


def test_an_unknown_motioncapture_type_is_refused_with_the_packages_own_message():
    m = MocapStream(parse_mocap("nosuchsystem:localhost"))
    with pytest.raises(QuadhilError, match="Unknown motion capture type"):
        m.start()


def test_the_mock_pose_reaches_the_sink_at_the_mock_rate_in_enu():
    # a Y-up mock: the body 1.2 m up (mocap y) and 0.5 m to the right (mocap z)
    m = _run("mock:localhost,object=cf,rigid_bodies=cf(0.3,1.2,0.5,1,0,0,0),frequency=100", axes="y-up")
    assert len(m.got) >= 15  # ~30 frames in 0.3 s at 100 Hz, on a busy machine at least half
    np.testing.assert_allclose(m.got[-1].pos_w, [0.3, -0.5, 1.2], atol=1e-6)
    np.testing.assert_allclose(m.got[-1].quat_wb, [1, 0, 0, 0], atol=1e-6)
    assert m.lost_reason(m.latest.t_s + 0.05) is None
    assert 50 < m.stats()["rate_hz"] < 150


def test_an_object_the_system_does_not_track_is_lost_tracking():
    m = _run("mock:localhost,object=cf9,rigid_bodies=cf1(0,0,1,1,0,0,0),frequency=100")
    assert m.got == [] and m.frames > 5 and m.frames_without_body == m.frames
    reason = m.lost_reason(time.monotonic())
    assert reason is not None and "'cf9' not visible" in reason


def test_a_silent_system_is_lost_tracking_after_the_timeout():
    m = _run("mock:localhost,object=cf,rigid_bodies=cf(0,0,1,1,0,0,0),frequency=100")
    last = m.last_frame_s
    assert m.lost_reason(last + 0.09) is None
    assert "no frame for" in m.lost_reason(last + 0.15)


def test_tracking_loss_is_a_supervisor_input_with_its_own_failsafe():
    sup = Supervisor(Limits(control_period_s=0.01, battery_min_v=3.0))
    assert sup.check_tracking(0.0, "mocap tracking lost: x") is None  # not powered: nothing to make safe
    sup.state = State.FLYING
    assert sup.check_tracking(1.0, None) is None and sup.state == State.FLYING
    assert sup.check_tracking(1.0, "mocap tracking lost: x") == "mocap tracking lost: x"
    assert sup.state == State.FAILSAFE
    limits = sup.limits
    assert failsafe_action("crazyflie-firmware", None, limits, tracking_lost=True) == FailsafeAction.BLIND_DESCENT
    assert failsafe_action("px4", None, limits, tracking_lost=True) == FailsafeAction.PX4_LAND


def test_the_px4_ev_parameters_go_out_as_a_qgroundcontrol_params_file():
    from deploy.px4_params import parse_qgc_params

    text = px4_ev_params_text()
    assert parse_qgc_params(text) == pytest.approx(PX4_EV_PARAMS)
    assert "\tEKF2_EV_CTRL\t11\t6" in text  # INT32 (MAV_PARAM_TYPE 6), as PX4 declares it
