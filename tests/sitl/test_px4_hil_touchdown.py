"""px4-hil's sensors through a touch-down at PX4's landing speed: every HIL_SENSOR sample within
what PX4's int16 FIFO packing can carry (+-16 g, +-2000 deg/s), a compliant gear instead of a
-19 g spike, the crash limit kept, and a landing the twin's land detector accepts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pymavlink.dialects.v20 import common as mavlink

from sim.sitl.px4.hil import ACCEL_FIFO_SCALE_MPS2, HilConfig, HilServer
from sim.sitl.px4.land_detector import LandInputs, MulticopterLandDetector
from sim.sitl.px4.params import ParamStore
from tests.sitl.test_px4_hil import free_tcp_port

G = 9.80665
LIMIT_MPS2 = 32767 * ACCEL_FIFO_SCALE_MPS2  # 16 g less one LSB


def _server(**kw) -> HilServer:
    return HilServer(HilConfig(port=free_tcp_port(), noise=False, **kw))


def _sample(server: HilServer):
    return mavlink.MAVLink(None).decode(bytearray(server.sensor_message().pack(mavlink.MAVLink(None))))


def _descend_and_touch_down(server: HilServer, speed_mps: float, seconds: float):
    """Armed at hover thrust, 0.3 m up, sinking at ``speed_mps``; after contact the thrust falls to
    idle over 0.5 s (PX4's LAND: velocity integrator, then ground-contact zero thrust)."""
    v = server.vehicle
    u_hover = float(v.thrust_to_command(np.array([v.weight_n / 4]))[0])
    server.sim.state.pos_w[0] = [0.0, 0.0, 0.3]
    server.sim.state.vel_w[0] = [0.0, 0.0, -speed_mps]
    server.sim.state.thrust_n[0] = v.weight_n / 4
    server.in_contact = False
    server._prev_vel_w = server.sim.state.vel_w[0].copy()
    server.armed = True
    rows, t_contact = [], None
    for k in range(int(seconds / 0.004)):
        t = k * 0.004
        if t_contact is None and server.in_contact:
            t_contact = t
        frac = 1.0 if t_contact is None else max(0.0, 1.0 - (t - t_contact) / 0.5)
        server.controls = np.full(4, u_hover * math.sqrt(frac))  # thrust ~ u^2: collective falls linearly
        server.step()
        m = _sample(server)
        rows.append((t, m, server.last_accel_frd_raw.copy(), server.sim.state.vel_w[0].copy(),
                     server.sim.state.omega_b[0].copy(), frac * v.hover_thrust_fraction))
    return rows, t_contact


def test_a_touch_down_at_px4s_landing_speed_stays_inside_the_sensor_range():
    server = _server()
    try:
        rows, t_contact = _descend_and_touch_down(server, 0.7, 3.0)
    finally:
        server.close()
    assert t_contact is not None and not server.crashed
    assert server.touchdown_speeds_mps[0] == pytest.approx(0.7, abs=0.05)
    zacc_raw = np.array([r[2][2] for r in rows])
    sent = np.array([[r[1].xacc, r[1].yacc, r[1].zacc] for r in rows])
    assert np.all(np.abs(sent) <= LIMIT_MPS2 + 1e-3)
    # the gear spreads the stop over tens of ms: a few g, nowhere near the rigid ground's -19 g
    assert zacc_raw.min() > -8 * G, zacc_raw.min()
    gyro = np.array([[r[1].xgyro, r[1].ygyro, r[1].zgyro] for r in rows])
    assert np.all(np.abs(gyro) <= math.radians(2000.0))


def test_the_twins_land_detector_accepts_that_landing():
    params = ParamStore({})
    server = _server()
    try:
        rows, t_contact = _descend_and_touch_down(server, params["MPC_LAND_SPEED"], 4.0)
    finally:
        server.close()
    ld = MulticopterLandDetector(params)
    t_landed = None
    for t, m, _, vel, omega, throttle in rows:
        ld.update(t, LandInputs(armed=True, vel_w=tuple(vel), rate_roll_pitch_rad_s=float(np.linalg.norm(omega[:2])),
                                specific_force_mps2=math.sqrt(m.xacc ** 2 + m.yacc ** 2 + m.zacc ** 2),
                                throttle=throttle, climb_rate_controlled=True, vz_setpoint_mps=-params["MPC_LAND_SPEED"],
                                hover_thrust=params["MPC_THR_HOVER"], hover_estimate_valid=False))
        if t_landed is None and ld.landed.state:
            t_landed = t
        assert not ld.freefall.state  # the bounce never reads as free fall
    assert t_landed is not None and t_landed - t_contact < 2.0, (t_contact, t_landed)


def test_the_crash_limit_stays():
    server = _server()
    try:
        _descend_and_touch_down(server, 2.5, 1.0)  # beyond the x500's crash_speed_mps (2 m/s)
    finally:
        server.close()
    assert server.crashed and server.status()["crashed"]


def test_a_sample_beyond_16_g_is_saturated_not_wrapped():
    server = _server()
    try:
        server._accel_w = np.array([0.0, 0.0, 30 * G])  # a hard knock
        m = _sample(server)
    finally:
        server.close()
    assert m.zacc == pytest.approx(-32768 * ACCEL_FIFO_SCALE_MPS2)  # -16 g, the sign kept
    assert m.time_usec > 0
