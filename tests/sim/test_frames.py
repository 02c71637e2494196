"""ENU/FLU <-> NED/FRD in one place, and round trips are the identity."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sim import frames

finite = st.floats(-1e3, 1e3, allow_nan=False)
vec3 = arrays(np.float64, (5, 3), elements=finite)
quat = arrays(np.float64, (5, 4), elements=st.floats(-1, 1)).filter(
    lambda q: np.all(np.linalg.norm(q, axis=1) > 0.1)).map(frames.quat_normalize)


@given(vec3)
def test_world_vectors_round_trip(v):
    np.testing.assert_array_equal(frames.ned_to_enu(frames.enu_to_ned(v)), v)


@given(vec3)
def test_body_vectors_round_trip(v):
    np.testing.assert_array_equal(frames.frd_to_flu(frames.flu_to_frd(v)), v)


@settings(max_examples=50)
@given(quat)
def test_attitude_round_trip(q):
    back = frames.quat_ned_frd_to_enu_flu(frames.quat_enu_flu_to_ned_frd(q))
    # q and -q are the same rotation
    sign = np.sign(np.sum(back * q, axis=1, keepdims=True))
    np.testing.assert_allclose(back * sign, q, atol=1e-12)


@settings(max_examples=50)
@given(quat, vec3)
def test_converted_attitude_rotates_converted_vectors(q, v_flu):
    """R_ned_frd @ v_frd equals the ENU rotation result expressed in NED."""
    v_enu = frames.quat_rotate(q, v_flu)
    v_ned = frames.quat_rotate(frames.quat_enu_flu_to_ned_frd(q), frames.flu_to_frd(v_flu))
    np.testing.assert_allclose(v_ned, frames.enu_to_ned(v_enu), atol=1e-9)


def test_known_directions():
    east_enu = np.array([1.0, 0.0, 0.0])
    np.testing.assert_array_equal(frames.enu_to_ned(east_enu), [0.0, 1.0, 0.0])  # east is NED y
    np.testing.assert_array_equal(frames.enu_to_ned([0.0, 0.0, 2.0]), [0.0, 0.0, -2.0])  # up is -down
    # level, nose east in ENU (identity) is yaw = +90 deg in NED (nose toward NED y = east)
    q_ned = frames.quat_enu_flu_to_ned_frd(np.array([1.0, 0.0, 0.0, 0.0]))
    np.testing.assert_allclose(frames.quat_to_euler(q_ned), [0.0, 0.0, np.pi / 2], atol=1e-12)
    # a roll-right rate in FRD (+x) is the same axis in FLU; a yaw-right rate (+z FRD) is -z FLU
    np.testing.assert_array_equal(frames.frd_to_flu([0.1, 0.2, 0.3]), [0.1, -0.2, -0.3])


@settings(max_examples=50)
@given(quat)
def test_rotmat_quat_round_trip(q):
    back = frames.rotmat_to_quat(frames.quat_to_rotmat(q))
    sign = np.sign(np.sum(back * q, axis=1, keepdims=True))
    np.testing.assert_allclose(back * sign, q, atol=1e-9)


def test_euler_round_trip():
    rpy = np.array([[0.3, -0.4, 2.0], [-1.0, 0.2, -3.0]])
    np.testing.assert_allclose(frames.quat_to_euler(frames.quat_from_euler(*rpy.T)), rpy, atol=1e-12)


def test_tilt_of_a_rolled_vehicle():
    np.testing.assert_allclose(frames.tilt_rad(frames.quat_from_euler(0.5, 0.0, 1.0)), 0.5, atol=1e-12)
