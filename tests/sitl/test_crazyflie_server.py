"""The UDP server and command line of the twin, in-process: replies go to the sender, the
latency option delays both directions, bad arguments are refused with a clear message."""

import argparse
import socket
import struct
import time

import pytest

from sim.sitl.crazyflie import cli
from sim.sitl.crazyflie.server import CrazyflieServer
from sim.sitl.crazyflie.twin import CrazyflieTwin
from tests.sitl.conftest import serving


def echo_rtt_s(port: int) -> float:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        s.settimeout(2.0)
        t0 = time.monotonic()
        s.send(b"\xf0" + struct.pack("<d", t0))
        assert s.recv(64) == b"\xf0" + struct.pack("<d", t0)
        return time.monotonic() - t0


@pytest.mark.parametrize("latency_ms", [0.0, 40.0])
def test_echo_comes_back_to_the_sender_after_twice_the_latency(latency_ms):
    with serving(CrazyflieServer(CrazyflieTwin(), "127.0.0.1", 0, latency_ms=latency_ms)) as server:
        rtt = min(echo_rtt_s(server.port) for _ in range(3))
        assert rtt >= 2 * latency_ms / 1000.0
        if latency_ms:
            assert rtt < 2 * latency_ms / 1000.0 + 0.1
    assert server.stats.ticks > 0


def test_bad_command_line_values_are_refused():
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--start", "1,2"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--start", "0,0,-1"])
    args = parser.parse_args(["--port", "70000"])
    from sim.errors import QuadhilError

    with pytest.raises(QuadhilError, match="--port"):
        cli.run(args)
