"""The app-channel packets: one definition (sim.sitl.app_channel), a generated C header that is
up to date, and C and Python decoders that accept and refuse exactly the same datagrams."""

from __future__ import annotations

import math
import shutil
import struct

import numpy as np
import pytest

from sim.sitl import app_channel as ac
from tests.firmware_bridge.onboard_support import APP, build


def test_committed_c_header_is_generated_from_the_python_definition():
    committed = (APP / "src" / "quadhil_packets.h").read_text()
    assert committed == ac.generate_c_header(), (
        "firmware_bridge/crazyflie_app/src/quadhil_packets.h is stale: run "
        "`python -m sim.sitl.app_channel --header firmware_bridge/crazyflie_app/src/quadhil_packets.h`")


def test_motor_packet_round_trips_and_is_fixed_size():
    data = ac.encode_motors(65535, [-1.0, -0.25, 0.5, 1.0])
    assert len(data) == ac.PACKET_SIZE <= ac.APP_CHANNEL_MTU
    p = ac.decode(data)
    assert p == ac.MotorPacket(65535, (-1.0, -0.25, 0.5, 1.0))


def test_setpoint_and_status_round_trip():
    assert ac.decode(ac.encode_setpoint(7, (0.5, -1.0, 1.25))) == ac.SetpointPacket(7, (0.5, -1.0, 1.25))
    status = ac.StatusPacket(3, ac.AppState.RELAY_TIMEOUT, ac.AppEvent.WATCHDOG, 2, 5, 123456)
    assert ac.decode(ac.encode_status(status)) == status


@pytest.mark.parametrize("data, problem", [
    (b"", "20 bytes"),
    (ac.encode_motors(1, [0, 0, 0, 0])[:-1], "20 bytes"),
    (ac.encode_motors(1, [0, 0, 0, 0]) + b"\0", "20 bytes"),
    (b"\x02" + ac.encode_motors(1, [0, 0, 0, 0])[1:], "version"),
    (b"\x01\x09" + ac.encode_motors(1, [0, 0, 0, 0])[2:], "kind"),
    (struct.pack("<BBH4f", 1, 1, 1, 0.0, math.nan, 0.0, 0.0), "finite"),
    (struct.pack("<BBH4f", 1, 1, 1, 0.0, 1.5, 0.0, 0.0), "within"),
    (struct.pack("<BBH4f", 1, 1, 1, 0.0, 0.0, math.inf, 0.0), "finite"),
    (struct.pack("<BBH4f", 1, 2, 1, 0.0, 0.0, 1.0, 3.0), "reserved"),
])
def test_malformed_packets_are_refused_with_a_reason(data, problem):
    with pytest.raises(ac.PacketError, match=problem):
        ac.decode(data)


def test_encoders_refuse_what_the_decoder_would_refuse():
    with pytest.raises(ac.PacketError):
        ac.encode_motors(1, [0, 0, 0])
    with pytest.raises(ac.PacketError):
        ac.encode_motors(1, [0, 0, 0, 1.01])
    with pytest.raises(ac.PacketError):
        ac.encode_motors(70000, [0, 0, 0, 0])
    with pytest.raises(ac.PacketError):
        ac.encode_setpoint(1, (0, 0, math.nan))


def test_sequence_must_advance_modulo_2_16():
    assert ac.sequence_is_newer(0, None)
    assert ac.sequence_is_newer(1, 0)
    assert ac.sequence_is_newer(0, 65535)  # wrap
    assert not ac.sequence_is_newer(5, 5)  # replay
    assert not ac.sequence_is_newer(4, 5)  # reordered
    assert not ac.sequence_is_newer(5 + 0x8000, 5)  # too far ahead is "old"


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: host C build skipped")
    return build(tmp_path_factory.mktemp("packets"))


def _fuzz_datagrams(rng: np.random.Generator, n: int) -> list[bytes]:
    out = []
    for i in range(n):
        kind = rng.choice([1, 2])
        vals = rng.uniform(-1.3, 1.3, 4).astype(np.float32)
        if rng.random() < 0.1:
            vals[rng.integers(4)] = rng.choice([np.nan, np.inf, -np.inf])
        if kind == 2 and rng.random() < 0.8:
            vals[3] = 0.0
        version = 1 if rng.random() < 0.9 else int(rng.integers(0, 256))
        out.append(struct.pack("<BBH4f", version, int(kind), int(rng.integers(0, 65536)), *vals))
    return out


def test_c_decoder_accepts_and_refuses_exactly_what_python_does(harness):
    datagrams = _fuzz_datagrams(np.random.default_rng(3), 2000)
    lines = harness.run("packets", str(len(datagrams)), data=b"".join(datagrams)).decode().splitlines()
    assert len(lines) == len(datagrams)
    accepted = 0
    for data, line in zip(datagrams, lines):
        fields = line.split()
        c_ok = fields[1] == "0"
        try:
            p = ac.decode(data)
            py_ok = True
        except ac.PacketError:
            py_ok = False
        assert c_ok == py_ok, f"C and Python disagree on {data.hex()}: C {line!r}"
        if py_ok:
            accepted += 1
            assert int(fields[2]) == p.sequence
            values = p.motors if isinstance(p, ac.MotorPacket) else p.target_w
            assert np.allclose([float(x) for x in fields[3:3 + len(values)]], values, rtol=0, atol=1e-7)
    assert 0 < accepted < len(datagrams), "the fuzz set must hold both valid and invalid packets"


def test_c_status_encoder_writes_the_python_bytes(harness):
    status = ac.StatusPacket(513, ac.AppState.RELAY_TIMEOUT, ac.AppEvent.WATCHDOG, 3, 70000, 4_000_000_000)
    out = harness.run("status", "513", str(int(status.state)), str(int(status.event)), "3", "70000", "4000000000")
    assert out == ac.encode_status(status)
