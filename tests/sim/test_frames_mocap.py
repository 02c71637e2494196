"""Motion capture axes -> ENU (sim/frames.py): Z-up is the identity, Y-up turns up into z, and a
round trip through either is the identity."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sim import frames

finite = st.floats(-1e3, 1e3, allow_nan=False)
vec3 = arrays(np.float64, (5, 3), elements=finite)
quat = arrays(np.float64, (5, 4), elements=st.floats(-1, 1)).filter(
    lambda q: np.all(np.linalg.norm(q, axis=1) > 0.1)).map(frames.quat_normalize)


def _same_rotation(a, b):
    dots = np.abs(np.sum(a * b, axis=-1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-9)


@settings(max_examples=50)
@given(vec3, quat, st.sampled_from(frames.MOCAP_AXES))
def test_mocap_round_trip_is_identity(p, q, axes):
    p2, q2 = frames.enu_to_mocap(*frames.mocap_to_enu(p, q, axes), axes)
    np.testing.assert_allclose(p2, p, atol=1e-9)
    _same_rotation(q2, q)


def test_z_up_is_the_identity():
    p, q = np.array([1.0, 2.0, 3.0]), frames.quat_from_euler(0.1, -0.2, 0.3)
    p2, q2 = frames.mocap_to_enu(p, q, "z-up")
    np.testing.assert_allclose(p2, p)
    _same_rotation(q2, q)


def test_y_up_height_becomes_z_and_mocap_z_becomes_minus_y():
    # Motive's default: y up, z to the right of +x: a marker 1 m up and 2 m right
    p, _ = frames.mocap_to_enu(np.array([0.5, 1.0, 2.0]), np.array([1.0, 0, 0, 0]), "y-up")
    np.testing.assert_allclose(p, [0.5, -2.0, 1.0], atol=1e-12)


def test_y_up_yaw_about_the_mocap_up_axis_is_yaw_in_enu():
    yaw = 0.7  # a body turned about mocap +y (up) by 0.7 rad is yawed by 0.7 rad in ENU
    q_m = np.array([np.cos(yaw / 2), 0.0, np.sin(yaw / 2), 0.0])
    _, q = frames.mocap_to_enu(np.zeros(3), q_m, "y-up")
    np.testing.assert_allclose(frames.quat_to_euler(q), [0.0, 0.0, yaw], atol=1e-12)


def test_unknown_axes_are_refused_by_name():
    with pytest.raises(ValueError, match="y-up"):
        frames.mocap_to_enu(np.zeros(3), np.array([1.0, 0, 0, 0]), "x-up")
