"""10,000 random datagrams never crash or stall the twin; real cflib then connects and flies.

Valid commands that legitimately change the vehicle for good are left out of the fuzz: the two
emergency stops, parameter writes (stabilizer.stop locks, idleThrust spins the motors) and
setpoints that could spin the motors (a flying twin that then hears nothing locks after 2 s,
as the firmware does). Everything else goes in: random bytes, every port and channel, empty
and oversize datagrams, truncated payloads, out-of-range TOC and block ids.
"""

import socket
import struct
import time

from cflib.crazyflie.log import LogConfig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sitl.conftest import connect_cflib

DATAGRAMS_PER_EXAMPLE = 100
EXAMPLES = 100


def harmless(datagram: bytes) -> bool:
    if not datagram or len(datagram) > 31:
        return True
    port, ch, data = datagram[0] >> 4, datagram[0] & 3, datagram[1:]
    first = data[0] if data else None
    if port == 9 and ch == 1 and first in (3, 4):
        return False
    if port == 6 and ch == 1 and first in (3, 4):
        return False
    if port == 2 and ch in (2, 3):
        return False
    if port == 3 and ch == 0 and len(data) >= 14:
        return False
    if port == 7 and ch == 0 and first == 11:
        return False
    return True


structured = st.builds(
    lambda header, first, rest: bytes((header,)) + bytes(first) + rest,
    st.integers(0, 255),
    st.lists(st.integers(0, 12), max_size=1),
    st.binary(max_size=32),
)
datagrams = st.lists(st.one_of(st.binary(max_size=40), structured).filter(harmless),
                     min_size=DATAGRAMS_PER_EXAMPLE, max_size=DATAGRAMS_PER_EXAMPLE)


def drain(sock):
    try:
        while True:
            sock.recv(2048)
    except BlockingIOError:
        pass


def alive(sock, deadline_s=1.0) -> bool:
    """The twin echoes on port 15 channel 0 within the deadline."""
    token = struct.pack("<d", time.monotonic())
    sock.send(bytes((0xF0,)) + token)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if sock.recv(2048) == bytes((0xF0,)) + token:
                return True
        except BlockingIOError:
            time.sleep(0.001)
    return False


def test_random_datagrams_then_cflib_still_connects_and_flies(crazyflie_twin):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", crazyflie_twin.port))
    sock.setblocking(False)
    sent = [0]

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(datagrams)
    def fuzz(batch):
        for d in batch:
            sock.send(d)
            sent[0] += 1
        drain(sock)
        assert alive(sock), "twin stopped answering"
        assert crazyflie_twin.poll() is None, "twin process died"

    try:
        fuzz()
    finally:
        sock.close()
    assert sent[0] >= 10_000

    scf = connect_cflib(crazyflie_twin.uri, timeout_s=10.0)
    try:
        cf = scf.cf
        conf = LogConfig("after", 10)
        for n in ("stateEstimate.z", "sitl.badPackets"):
            conf.add_variable(n)
        samples = []
        conf.data_received_cb.add_callback(lambda ts, data, _: samples.append(data))
        cf.log.add_config(conf)
        conf.start()
        cf.commander.send_setpoint(0, 0, 0, 0)
        # through hover: ~38600 with battery compensation (motors.c: the 16-bit thrust is thrust,
        # THRUST_MAX at 65535), where PWM 30000 used to be near it
        for i in range(120):
            cf.commander.send_setpoint(0, 0, 0, int(38000 + 125 * i))
            time.sleep(0.01)
        cf.commander.send_setpoint(0, 0, 0, 0)
        conf.stop()
    finally:
        scf.close_link()
    assert max(s["stateEstimate.z"] for s in samples) > 0.2
    assert samples[-1]["sitl.badPackets"] > 1000  # malformed input was seen and counted
    assert crazyflie_twin.poll() is None
