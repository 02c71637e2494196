"""The CrazySim physics side against a scripted firmware that speaks cf2's side of the protocol
(sim.sitl.crazysim.peer: socketlink.c handshake and reply rule, sensors_sitl.c parsing and
calibration, power_distribution_sitl.c motor packets)."""

import socket
import threading
import time

import pytest

from sim.sitl.crazysim import protocol
from sim.sitl.crazysim.server import BindError, CrazySimServer, ServerConfig
from tests.sitl.conftest import connect_cflib
from tests.sitl.crazysim_helpers import connected_peer, running_server, wait_for


def test_the_handshake_is_answered_with_exactly_one_byte_0xF3():
    with running_server() as srv:
        fw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        fw.settimeout(2.0)
        try:
            fw.sendto(b"\xf3", ("127.0.0.1", srv.drones[0].firmware_port))
            data, _ = fw.recvfrom(64)
            assert data == b"\xf3"
        finally:
            fw.close()


def test_at_rest_the_imu_reads_plus_one_g_on_body_z_and_zero_rates_at_about_1_khz():
    with running_server() as srv, connected_peer(srv.drones[0].firmware_port) as peer:
        wait_for(lambda: peer.log.imu_samples >= 1500, 10.0, "1500 IMU samples")
        t_span = peer.log.last_imu_t - peer.log.first_imu_t
        n = peer.log.imu_samples
        assert peer.log.acc_g == pytest.approx((0.0, 0.0, 1.0), abs=1e-3)
        assert peer.log.gyro_dps == (0.0, 0.0, 0.0)
        # paced by the wall clock: never more packets than milliseconds (no catch-up bursts), up to
        # 10 ms of the peer's own read scheduling at either end (its first read can come late and
        # then drain several packets at once: 1,504-1,506 in 1.500-1.503 s twice in a fresh-clone
        # run on 12-07; an unpaced server would send 1,500 in a few ms)
        assert n <= t_span * 1000.0 + 10
        assert n >= 0.5 * t_span * 1000.0
        assert peer.log.pose[:3] == (0.0, 0.0, 0.0) and peer.log.pose[6] == 1.0


def test_the_firmware_finds_its_gyro_bias_on_the_1024th_sample_and_its_ready_signal_reaches_the_server():
    with running_server() as srv, connected_peer(srv.drones[0].firmware_port) as peer:
        wait_for(lambda: srv.drones[0].ready, 5.0, "the ready signal 0x90 0x01")
        assert peer.log.bias_found_at_sample == protocol.GYRO_BIAS_SAMPLES
        assert 0.9 < srv.drones[0].stats.ready_after_s < 4.0
        wait_for(lambda: peer.log.acc_scale is not None, 5.0, "the accelerometer scale")
        assert peer.log.acc_scale == pytest.approx(1.0, abs=2e-3)  # the held vehicle reads 1 g


def test_the_vehicle_is_held_still_until_calibration_ends_then_a_thrust_ramp_lifts_it():
    with running_server() as srv, connected_peer(srv.drones[0].firmware_port, pwm=0) as peer:
        peer.pwm = [60000] * 4  # full thrust from the first tick: must not move while calibrating
        wait_for(lambda: srv.drones[0].ready, 5.0, "the ready signal")
        assert srv.sim.state.pos_w[0, 2] == 0.0
        assert not srv.drones[0].released
        peer.pwm = [0] * 4
        wait_for(lambda: srv.drones[0].released, 3.0, "the release after the accelerometer scale")
        for pwm in range(30000, 46001, 2000):  # hover is near PWM 38 500 for the nominal vehicle
            peer.pwm = [pwm] * 4
            time.sleep(0.1)
        wait_for(lambda: peer.log.pose[2] > 0.05, 3.0, "the pose packet to show the climb")
        assert srv.sim.state.pos_w[0, 2] > 0.05
        assert peer.log.motor_packets > 0
        assert srv.drones[0].stats.motor_packets > 0


def test_more_thrust_on_the_left_motors_rolls_right_side_up_positive_in_gyro_and_pose():
    with running_server() as srv, connected_peer(srv.drones[0].firmware_port) as peer:
        wait_for(lambda: srv.drones[0].released, 6.0, "calibration")
        # M3 and M4 sit at +y (FLU): a roll about +x (left side up)
        peer.pwm = [42000, 42000, 48000, 48000]
        wait_for(lambda: peer.log.gyro_dps[0] > 20.0, 2.0, "a positive roll rate")
        assert abs(peer.log.gyro_dps[1]) < 0.3 * peer.log.gyro_dps[0]
        wait_for(lambda: peer.log.pose[3] > 0.02, 2.0, "a positive qx in the pose")
        peer.pwm = [0] * 4


def test_real_cflib_udp_driver_traffic_is_relayed_both_ways_and_the_firmware_only_ever_sees_the_server():
    from cflib.crtp.crtpstack import CRTPPacket
    from cflib.crtp.udpdriver import UdpDriver

    with running_server() as srv, connected_peer(srv.drones[0].firmware_port, services="echo") as peer:
        drv = UdpDriver()
        errors = []
        drv.connect(srv.drones[0].uri, None, errors.append)
        try:
            pk = CRTPPacket()
            pk.set_header(15, 0)
            pk.data = b"quadhil relay"
            drv.send_packet(pk)
            back = drv.receive_packet(2.0)
            assert back is not None, "no echo through the relay"
            assert (back.port, back.channel, bytes(back.data)) == (15, 0, b"quadhil relay")
            assert errors == []
        finally:
            drv.close()
        # socketlink.c replies to whoever sent last: with the relay, that is always the server
        assert peer.log.senders == {("127.0.0.1", srv.drones[0].firmware_port)}


def test_a_burst_from_cflib_reaches_the_firmware_spread_one_per_tick_and_every_packet_comes_back():
    with running_server() as srv, connected_peer(srv.drones[0].firmware_port, services="echo") as peer:
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(2.0)
        try:
            c.connect(("127.0.0.1", srv.drones[0].cflib_port))
            wait_for(lambda: peer.log.imu_samples > 50, 5.0, "the sensor stream")
            for i in range(50):
                c.send(bytes((0xF0, i)))  # port 15 channel 0: echo
            echoed = sorted(c.recv(64)[1] for _ in range(50))
        finally:
            c.close()
        assert echoed == list(range(50))
        times = [t for t, d in peer.log.other_arrivals if d[0] == 0xF0]
        assert len(times) == 50
        assert times[-1] - times[0] >= 0.040  # 50 packets over >= 40 ms, not one burst
        # the burst waited in the relay's queue and left it one packet per tick (the peer's own
        # per-millisecond arrival count is not checked: its thread's scheduling can batch reads)
        stats = srv.drones[0].stats
        assert stats.relay_queue_max >= 2 and stats.relay_overflow == 0
        assert stats.relayed_to_firmware >= 50


def test_the_relay_answers_cflibs_0xFF_scan_probe_and_keeps_it_from_the_firmware():
    with running_server() as srv, connected_peer(srv.drones[0].firmware_port) as peer:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.settimeout(0.1)  # cflib udpdriver.py _SCAN_TIMEOUT
        try:
            probe.connect(("127.0.0.1", srv.drones[0].cflib_port))
            probe.send(b"\xff")
            assert probe.recv(1024) == b"\xff"
        finally:
            probe.close()
        time.sleep(0.05)
        assert peer.log.other_arrivals == []
        assert srv.drones[0].stats.scan_answers == 1


def _free_scan_port() -> int | None:
    for port in range(19850, 19860):  # cflib udpdriver.py: _BASE_PORT 19850, 10 ports scanned
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return None


def test_real_cflibs_udp_scan_finds_the_drone_through_the_relays_answer():
    from cflib.crtp.udpdriver import UdpDriver

    port = _free_scan_port()
    if port is None:
        pytest.skip("UDP ports 19850-19859 (the ones cflib scans) are all taken on this machine")
    srv = CrazySimServer(ServerConfig(firmware_base_port=0, cflib_base_port=port))
    try:
        srv.receive(0.0)
        found = []
        t = threading.Thread(target=lambda: found.extend(UdpDriver().scan_interface()), daemon=True)
        t.start()
        deadline = time.monotonic() + 5.0
        while t.is_alive() and time.monotonic() < deadline:
            srv.receive(0.01)  # serve the probes without the 1 kHz loop: no firmware is needed
        t.join(1.0)
    finally:
        srv.close()
    assert [f"udp://127.0.0.1:{port}", ""] in found


def test_real_cflib_fully_connects_through_the_relay_and_downloads_both_tocs():
    with running_server() as srv, connected_peer(srv.drones[0].firmware_port, services="twin"):
        t0 = time.monotonic()
        scf = connect_cflib(srv.drones[0].uri, timeout_s=10.0)
        try:
            elapsed = time.monotonic() - t0
            assert "stateEstimate" in scf.cf.log.toc.toc
            assert "stabilizer" in scf.cf.param.toc.toc
        finally:
            scf.close_link()
        assert elapsed < 10.0
        st = srv.drones[0].stats
        assert st.relayed_to_firmware > 20 and st.relayed_to_cflib > 20
        assert st.relay_overflow == 0


def test_two_drones_fly_independently_on_their_own_port_pairs():
    with running_server(instances=2) as srv, \
            connected_peer(srv.drones[0].firmware_port) as p0, connected_peer(srv.drones[1].firmware_port) as p1:
        assert len({srv.drones[0].firmware_port, srv.drones[1].firmware_port,
                    srv.drones[0].cflib_port, srv.drones[1].cflib_port}) == 4
        wait_for(lambda: srv.drones[0].released and srv.drones[1].released, 8.0, "both calibrated")
        p1.pwm = [46000] * 4
        wait_for(lambda: p1.log.pose[2] > 0.05, 3.0, "drone 1 climbing")
        assert p0.log.pose[2] == 0.0
        assert p1.log.pose[0] == pytest.approx(0.5)  # drone 1 starts --spacing 0.5 m along x
        assert p0.log.acc_g[2] == pytest.approx(1.0, abs=1e-3)


def test_a_restarted_firmware_shakes_hands_again_and_gets_a_fresh_vehicle_on_the_ground():
    with running_server() as srv:
        with connected_peer(srv.drones[0].firmware_port) as first:
            wait_for(lambda: srv.drones[0].released, 6.0, "calibration")
            first.pwm = [50000] * 4
            wait_for(lambda: srv.sim.state.pos_w[0, 2] > 0.05, 3.0, "a climb")
        with connected_peer(srv.drones[0].firmware_port) as second:
            wait_for(lambda: second.log.pose is not None, 2.0, "a pose after the new handshake")
            assert srv.drones[0].stats.handshakes == 2
            assert not srv.drones[0].released
            assert second.log.pose[2] == 0.0


def test_a_taken_port_is_a_clear_error():
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 0))
    try:
        with pytest.raises(BindError, match=f"firmware: cannot bind UDP 127.0.0.1:{blocker.getsockname()[1]}"):
            CrazySimServer(ServerConfig(firmware_base_port=blocker.getsockname()[1], cflib_base_port=0))
    finally:
        blocker.close()
