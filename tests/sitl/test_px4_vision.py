"""The pose the bridge sends PX4 as VISION_POSITION_ESTIMATE (firmware_bridge/links/mavlink.py)
comes back out of the PX4 twin's vision handler as the same ENU/FLU pose, and the twin's
``--estimate vision`` estimate sits on it."""

from __future__ import annotations

import numpy as np
import pytest
from pymavlink.dialects.v20 import common as mavlink

from firmware_bridge.links.mavlink import vision_position_estimate_fields
from sim import frames
from sim.sitl.px4.twin import Px4Twin, TwinConfig


@pytest.mark.parametrize("rpy", [(0.0, 0.0, 0.0), (0.1, -0.2, 2.5), (-0.3, 0.25, -1.2)])
def test_a_vision_pose_round_trips_through_px4s_conventions_into_the_estimate(rpy):
    twin = Px4Twin(TwinConfig(estimate="vision"), open_links=False)
    pos_w, quat_wb = np.array([0.4, -1.1, 0.7]), frames.quat_from_euler(*rpy)
    f = vision_position_estimate_fields(pos_w, quat_wb)
    assert (f["x"], f["y"], f["z"]) == pytest.approx((-1.1, 0.4, -0.7))  # NED: north, east, down
    msg = mavlink.MAVLink_vision_position_estimate_message(1000, f["x"], f["y"], f["z"], f["roll"], f["pitch"],
                                                          f["yaw"], f["covariance"], 0)
    twin.handle(msg, None)
    _, p, q = twin.vision
    np.testing.assert_allclose(p, pos_w, atol=1e-9)
    assert abs(float(np.dot(q, quat_wb))) == pytest.approx(1.0, abs=1e-9)
    est = twin._estimate()
    np.testing.assert_allclose(est.pos_w, pos_w, atol=1e-9)  # no time has passed since the pose


def test_a_non_finite_vision_message_is_counted_and_ignored():
    twin = Px4Twin(TwinConfig(estimate="vision"), open_links=False)
    msg = mavlink.MAVLink_vision_position_estimate_message(1000, float("nan"), 0, 0, 0, 0, 0, [0.0] * 21, 0)
    twin.handle(msg, None)
    assert twin.vision is None and twin.counters["vision_nonfinite"] == 1
