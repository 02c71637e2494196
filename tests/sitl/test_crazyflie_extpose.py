"""The Crazyflie twin takes external poses as the firmware does (CRTP localization port, generic
channel, EXT_POSE: crtp_localization_service.c) from real cflib's ``extpos.send_extpose``; with
``estimate="mocap"`` its estimate follows them, otherwise only ext_pos records them. And the
twin's mocap stream (sim/sitl/mocap_stream.py) reports its truth in the mocap axes."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from sim import frames
from sim.sitl.crazyflie.server import CrazyflieServer
from sim.sitl.crazyflie.twin import CrazyflieTwin, TwinConfig
from sim.sitl.mocap_stream import MocapStreamServer, decode_frame
from tests.sitl.conftest import connect_cflib, serving


@pytest.mark.parametrize("estimate", ["mocap", "truth"])
def test_cflib_extpose_moves_the_mocap_fed_estimate_only(estimate):
    twin = CrazyflieTwin(TwinConfig(estimate=estimate))
    with serving(CrazyflieServer(twin, "127.0.0.1", 0)) as server:
        scf = connect_cflib(server.uri)
        try:
            yaw = 0.4
            q = frames.quat_from_euler(0.0, 0.0, yaw)  # w, x, y, z
            for _ in range(20):  # 100 Hz, as a mocap system sends
                scf.cf.extpos.send_extpose(0.5, -0.2, 0.0, q[1], q[2], q[3], q[0])
                time.sleep(0.01)
            time.sleep(0.05)
            est_pos, est_yaw = list(twin.est_pos), twin.est_rpy_deg[2]
        finally:
            scf.close_link()
    assert twin.ext_pose_count >= 15 and twin.ext_pose[1] == pytest.approx([0.5, -0.2, 0.0], abs=1e-6)
    if estimate == "mocap":
        assert est_pos == pytest.approx([0.5, -0.2, 0.0], abs=1e-3)
        assert est_yaw == pytest.approx(np.degrees(yaw), abs=0.1)
    else:  # the truth twin records the pose (ext_pos log group) but flies on its truth
        assert est_pos == pytest.approx([0.0, 0.0, 0.0], abs=1e-6) and est_yaw == pytest.approx(0.0, abs=1e-6)


def test_a_short_or_non_finite_ext_pose_is_counted_and_ignored():
    twin = CrazyflieTwin(TwinConfig(estimate="mocap"))
    twin.handle_datagram(bytes((0x61, 8)) + b"\x00" * 10)  # port 6 channel 1, type 8, too short
    twin.handle_datagram(bytes((0x61, 8)) + np.array([np.nan, 0, 0, 0, 0, 0, 1], dtype="<f4").tobytes())
    assert twin.ext_pose is None
    assert twin.counters["ext_pose_short"] == 1 and twin.counters["ext_pose_nonfinite"] == 1


def test_the_twins_mocap_stream_reports_its_truth_in_y_up_axes():
    srv = MocapStreamServer("127.0.0.1", 0, "cf", "y-up", rate_hz=100.0)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(2.0)
    try:
        client.sendto(b"SUB", (srv.host, srv.port))
        time.sleep(0.05)
        srv.tick(0.0, np.array([0.3, -0.5, 1.2]), np.array([1.0, 0, 0, 0]), motors_spinning=False)
        frame, t_s, bodies = decode_frame(client.recv(2048))
    finally:
        client.close()
        srv.close()
    np.testing.assert_allclose(bodies["cf"][0], [0.3, 1.2, 0.5], atol=1e-12)  # y up, z = -ENU y
