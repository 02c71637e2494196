"""Frames and quaternions: the one place where ENU/FLU meets NED/FRD.

Conventions (DESIGN.md): world ENU (x east/forward, y north/left, z up), body FLU; PX4 speaks
world NED and body FRD. Quaternions are scalar-first (w, x, y, z), unit norm, body-to-world.
All functions take batched arrays with the vector/quaternion on the last axis.

ENU <-> NED swaps x and y and negates z; FLU <-> FRD negates y and z. Both are their own
inverse, so every conversion here is an involution and a round trip is the identity.
"""

from __future__ import annotations

import numpy as np

_SQRT1_2 = np.sqrt(0.5)
# Rotation taking NED coordinates to ENU coordinates, and FRD to FLU.
_NED_TO_ENU = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
_FRD_TO_FLU = np.diag([1.0, -1.0, -1.0])
# The same as quaternions (w, x, y, z): q_enu_ned is a rotation of pi about (1, 1, 0)/sqrt(2);
# q_flu_frd is pi about x.
_Q_ENU_FROM_NED = np.array([0.0, _SQRT1_2, _SQRT1_2, 0.0])
_Q_FRD_FROM_FLU = np.array([0.0, 1.0, 0.0, 0.0])


def quat_multiply(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Hamilton product q1 * q2 of (..., 4) scalar-first quaternions."""
    w1, x1, y1, z1 = np.moveaxis(np.asarray(q1, dtype=np.float64), -1, 0)
    w2, x2, y2, z2 = np.moveaxis(np.asarray(q2, dtype=np.float64), -1, 0)
    return np.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        axis=-1,
    )


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Conjugate (inverse for unit quaternions) of (..., 4) quaternions."""
    q = np.asarray(q, dtype=np.float64)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """Scale (..., 4) quaternions to unit norm."""
    q = np.asarray(q, dtype=np.float64)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quat_to_rotmat(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions (body-to-world) -> (..., 3, 3) rotation matrices R, v_w = R v_b."""
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    r = np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )
    return r.reshape(r.shape[:-1] + (3, 3))


def rotmat_to_quat(r: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions with w >= 0 (Shepperd's method)."""
    r = np.asarray(r, dtype=np.float64)
    flat = r.reshape(-1, 3, 3)
    out = np.empty((flat.shape[0], 4))
    tr = flat[:, 0, 0] + flat[:, 1, 1] + flat[:, 2, 2]
    diag = np.stack([tr, flat[:, 0, 0], flat[:, 1, 1], flat[:, 2, 2]], axis=1)
    pick = np.argmax(diag, axis=1)
    for i in range(flat.shape[0]):
        m = flat[i]
        k = pick[i]
        if k == 0:
            s = 2.0 * np.sqrt(max(1.0 + tr[i], 1e-300))
            out[i] = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
        elif k == 1:
            s = 2.0 * np.sqrt(max(1.0 + m[0, 0] - m[1, 1] - m[2, 2], 1e-300))
            out[i] = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
        elif k == 2:
            s = 2.0 * np.sqrt(max(1.0 + m[1, 1] - m[0, 0] - m[2, 2], 1e-300))
            out[i] = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
        else:
            s = 2.0 * np.sqrt(max(1.0 + m[2, 2] - m[0, 0] - m[1, 1], 1e-300))
            out[i] = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    out *= np.where(out[:, :1] < 0, -1.0, 1.0)
    return quat_normalize(out).reshape(r.shape[:-2] + (4,))


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate (..., 3) vectors from body to world by (..., 4) body-to-world quaternions."""
    return np.einsum("...ij,...j->...i", quat_to_rotmat(q), np.asarray(v, dtype=np.float64))


def quat_from_euler(roll_rad, pitch_rad, yaw_rad) -> np.ndarray:
    """Body-to-world quaternion from intrinsic Z-Y-X (yaw, pitch, roll) angles in radians."""
    cr, sr = np.cos(np.asarray(roll_rad) / 2), np.sin(np.asarray(roll_rad) / 2)
    cp, sp = np.cos(np.asarray(pitch_rad) / 2), np.sin(np.asarray(pitch_rad) / 2)
    cy, sy = np.cos(np.asarray(yaw_rad) / 2), np.sin(np.asarray(yaw_rad) / 2)
    return np.stack(
        [
            cr * cp * cy + sr * sp * sy,
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
        ],
        axis=-1,
    )


def quat_to_euler(q: np.ndarray) -> np.ndarray:
    """(..., 4) body-to-world quaternions -> (..., 3) roll, pitch, yaw (Z-Y-X) in radians."""
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    roll = np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = np.arcsin(np.clip(2 * (w * y - z * x), -1.0, 1.0))
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return np.stack([roll, pitch, yaw], axis=-1)


def quat_from_axis_angle(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) rotation vectors (axis * angle, rad) -> (..., 4) unit quaternions."""
    v = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(v, axis=-1, keepdims=True)
    half = 0.5 * angle
    scale = np.where(angle > 1e-12, np.sin(half) / np.where(angle > 1e-12, angle, 1.0), 0.5)
    return np.concatenate([np.cos(half), v * scale], axis=-1)


def tilt_rad(q: np.ndarray) -> np.ndarray:
    """Angle (rad) between the body z axis and world up, for (..., 4) quaternions."""
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    return np.arccos(np.clip(1 - 2 * (x * x + y * y), -1.0, 1.0))


# --- ENU/FLU <-> NED/FRD ------------------------------------------------------------------


def enu_to_ned(v: np.ndarray) -> np.ndarray:
    """World vectors (..., 3): ENU -> NED (positions, velocities, forces)."""
    v = np.asarray(v, dtype=np.float64)
    return np.stack([v[..., 1], v[..., 0], -v[..., 2]], axis=-1)


ned_to_enu = enu_to_ned  # the swap is its own inverse


def flu_to_frd(v: np.ndarray) -> np.ndarray:
    """Body vectors (..., 3): FLU -> FRD (body rates, accelerations, body velocities)."""
    v = np.asarray(v, dtype=np.float64)
    return np.stack([v[..., 0], -v[..., 1], -v[..., 2]], axis=-1)


frd_to_flu = flu_to_frd


def quat_enu_flu_to_ned_frd(q: np.ndarray) -> np.ndarray:
    """Attitude (..., 4): FLU-body-to-ENU-world -> FRD-body-to-NED-world (PX4's q), w >= 0."""
    q_ned = quat_multiply(quat_multiply(_Q_ENU_FROM_NED, q), _Q_FRD_FROM_FLU)
    return q_ned * np.where(q_ned[..., :1] < 0, -1.0, 1.0)


def quat_ned_frd_to_enu_flu(q: np.ndarray) -> np.ndarray:
    """Attitude (..., 4): FRD-body-to-NED-world (PX4's q) -> FLU-body-to-ENU-world, w >= 0."""
    q_enu = quat_multiply(quat_multiply(_Q_ENU_FROM_NED, q), _Q_FRD_FROM_FLU)
    return q_enu * np.where(q_enu[..., :1] < 0, -1.0, 1.0)


# Motion capture axes -> ENU. "z-up": the mocap world already is x forward, y left, z up (Vicon,
# Qualisys, and OptiTrack Motive with its "Up Axis" set to Z). "y-up": x forward, y up, z right
# (OptiTrack Motive's default, many VRPN servers): ENU = R_x(+90 deg) applied to the mocap axes,
# i.e. (x, y, z)_enu = (x, -z, y)_mocap. A rigid body's own axes are set when it is created
# (level, facing mocap +x), so the body axes turn with the world axes: the attitude is converted
# by the similarity q_enu = q_axes * q_mocap * q_axes^-1.
_Q_ENU_FROM_MOCAP = {"z-up": np.array([1.0, 0.0, 0.0, 0.0]), "y-up": np.array([_SQRT1_2, _SQRT1_2, 0.0, 0.0])}
MOCAP_AXES = tuple(_Q_ENU_FROM_MOCAP)


def _mocap_axes_quat(axes: str) -> np.ndarray:
    try:
        return _Q_ENU_FROM_MOCAP[axes]
    except KeyError:
        raise ValueError(f"mocap axes must be one of {', '.join(MOCAP_AXES)}, got {axes!r}") from None


def mocap_to_enu(pos_m: np.ndarray, quat_m: np.ndarray, axes: str = "z-up") -> tuple[np.ndarray, np.ndarray]:
    """A rigid body's pose in the mocap system's axes (position m, quaternion w,x,y,z
    body-to-mocap-world) -> world ENU position (m) and body-FLU-to-ENU quaternion."""
    qa = _mocap_axes_quat(axes)
    pos = quat_rotate(qa, np.asarray(pos_m, dtype=np.float64))
    quat = quat_multiply(quat_multiply(qa, quat_m), quat_conjugate(qa))
    return pos, quat_normalize(quat)


def enu_to_mocap(pos_w: np.ndarray, quat_wb: np.ndarray, axes: str = "z-up") -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`mocap_to_enu`: world ENU / body FLU pose -> the mocap system's axes
    (what a mocap system would report for the vehicle; the twins' mocap stream uses it)."""
    qa = quat_conjugate(_mocap_axes_quat(axes))
    pos = quat_rotate(qa, np.asarray(pos_w, dtype=np.float64))
    quat = quat_multiply(quat_multiply(qa, quat_wb), quat_conjugate(qa))
    return pos, quat_normalize(quat)
