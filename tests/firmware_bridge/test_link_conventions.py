"""Each link's frames and signs, checked without any trained policy: a textbook PD position
controller (ENU/FLU, SI) flies through the link's own telemetry and ctbr command path to a point
off every axis. Wrong signs or frames anywhere in the chain (cflib's pitch negation, deg/s, the
thrust curve, NED/FRD conversions, BODY_FRD odometry velocity) would make it diverge."""

from __future__ import annotations

import time

import numpy as np
import pytest

from firmware_bridge.links import make_link
from sim.contract import CtbrCommand, default_spec
from sim.frames import quat_to_rotmat
from sim.vehicle import GRAVITY_MPS2, load_vehicle
from tests.firmware_bridge.bridge_support import crazyflie_twin, px4_twin

TARGET_W = np.array([0.3, -0.2, 0.8])


def _pd_flight(uri: str, vehicle_id: str, seconds: float = 2.5) -> np.ndarray:
    vehicle = load_vehicle(vehicle_id)
    link = make_link(uri)
    link.connect(10.0)
    try:
        if hasattr(link, "request_rate"):
            link.request_rate(100.0)
        assert link.telemetry.wait_newer(0, time.monotonic() + 3.0) is not None
        link.prepare(default_spec(vehicle), vehicle)
        link.arm(0.5)
        t0, seq, pos = time.monotonic(), 0, None
        while time.monotonic() - t0 < seconds:
            tel = link.telemetry.wait_newer(seq, time.monotonic() + 0.05)
            seq, pos = tel.seq, tel.pos_w
            acc_w = 4.0 * (TARGET_W - pos) - 3.0 * tel.vel_w + np.array([0.0, 0.0, GRAVITY_MPS2])
            rot_wb = quat_to_rotmat(tel.quat_wb)
            tilt_err_b = rot_wb.T @ np.cross(rot_wb[:, 2], acc_w / np.linalg.norm(acc_w))
            rates_b = 8.0 * tilt_err_b
            rates_b[2] = -tel.omega_b[2]
            thrust_n = vehicle.mass_kg * float(acc_w @ rot_wb[:, 2])
            link.send(CtbrCommand(np.array([thrust_n]), np.array([thrust_n / (4 * vehicle.max_thrust_n)]),
                                  rates_b[None]))
        link.stop_motors()
        return pos
    finally:
        link.close()


def px4_twin_linear_thrust():
    """The PX4 twin with THR_MDL_FAC 1: the PD below sends a fraction of maximum thrust, as the
    contract does, which PX4's default THR_MDL_FAC 0 would square on the x500's motors."""
    return px4_twin("--param", "THR_MDL_FAC=1")


@pytest.mark.parametrize("twin, vehicle", [(crazyflie_twin, "crazyflie"), (px4_twin_linear_thrust, "x500")])
def test_a_pd_controller_through_the_link_reaches_a_point_off_every_axis(twin, vehicle):
    with twin() as proc:
        pos = _pd_flight(proc.uri, vehicle)
    assert np.linalg.norm(pos - TARGET_W) < 0.05, pos
