"""10,000 random and mutated frames at the PX4 twin, then a pymavlink client still flies it."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import struct
import time

import numpy as np
from pymavlink.dialects.v20 import common as mavlink

from tests.sitl.px4_helpers import px4_twin
from tests.sitl.test_px4_twin import ACCEPTED, LINEAR_THRUST, enter_offboard, fly_altitude_hold

N_FRAMES = 10_000
# commands whose *valid* use changes the vehicle's state or streams; the fuzzer sends them only
# with bad targets or out-of-range values so that the flight afterwards tests robustness,
# not whatever random state the fuzz left behind
STATEFUL_COMMANDS = {20, 21, 22, 176, 400, 410, 511, 512, 519, 520}


def _valid_messages(rng: np.random.Generator, mav: mavlink.MAVLink):
    """Well-formed frames with hostile content."""
    f = lambda: float(rng.choice([math.nan, math.inf, -math.inf, 1e30, -1e30, 0.0, rng.normal() * 100]))
    kind = rng.integers(0, 9)
    sysid = int(rng.choice([1, 0, 2, 255]))
    if kind == 0:
        return mav.set_attitude_target_encode(0, sysid, int(rng.choice([0, 1, 5])), int(rng.integers(0, 256)),
                                              [f(), f(), f(), f()], f(), f(), f(), f())
    if kind == 1:
        return mav.set_position_target_local_ned_encode(0, sysid, 1, int(rng.integers(0, 30)),
                                                        int(rng.integers(0, 65536)), *[f() for _ in range(11)])
    if kind == 2:
        cmd = int(rng.integers(0, 65536))
        target = sysid if cmd not in STATEFUL_COMMANDS else int(rng.choice([2, 7, 255]))
        return mav.command_long_encode(target, int(rng.integers(0, 256)), cmd, 0, *[f() for _ in range(7)])
    if kind == 3:  # out-of-range enums to us: arm param1, unknown main modes, bad auto sub modes
        choice = rng.integers(0, 3)
        if choice == 0:
            return mav.command_long_encode(1, 1, 400, 0, float(rng.choice([2, -1, 7, math.nan])), 0, 0, 0, 0, 0, 0)
        if choice == 1:
            return mav.command_long_encode(1, 1, 176, 0, 1.0, float(rng.integers(11, 256)), 0, 0, 0, 0, 0)
        return mav.command_long_encode(1, 1, 176, 0, 1.0, 4.0, float(rng.integers(10, 256)), 0, 0, 0, 0)
    if kind == 4:
        name = bytes(rng.integers(32, 127, int(rng.integers(0, 17))).astype(np.uint8))
        if rng.random() < 0.3:
            name = rng.choice([b"COM_OF_LOSS_T", b"MPC_XY_P", b"COM_OBL_RC_ACT"])
            return mav.param_set_encode(1, 1, name, float(rng.choice([math.nan, math.inf, 1e9, -1e9])), 9)
        return mav.param_set_encode(sysid, 1, name, f(), int(rng.integers(0, 12)))
    if kind == 5:
        return mav.param_request_read_encode(sysid, 1, b"X" * int(rng.integers(0, 17)), int(rng.integers(-5, 500)))
    if kind == 6:
        return mav.set_mode_encode(int(rng.choice([2, 7])), int(rng.integers(0, 256)), int(rng.integers(0, 2**32)))
    if kind == 7:
        return mav.set_actuator_control_target_encode(0, 0, sysid, 1, [f() for _ in range(8)])
    return mav.command_int_encode(int(rng.choice([2, 9])), 1, int(rng.integers(0, 20)), int(rng.integers(0, 65536)),
                                  0, 0, f(), f(), f(), f(), int(rng.integers(-2**31, 2**31)),
                                  int(rng.integers(-2**31, 2**31)), f())


def fuzz_frames(seed: int, n: int):
    """n datagrams: random bytes, bit-flipped / truncated valid frames, MAVLink 1 frames,
    unknown message ids, and well-formed frames with hostile values."""
    rng = np.random.default_rng(seed)
    mav = mavlink.MAVLink(None, srcSystem=77, srcComponent=1)
    for i in range(n):
        kind = i % 6
        if kind == 0:
            yield rng.integers(0, 256, int(rng.integers(1, 300))).astype(np.uint8).tobytes()
            continue
        frame = bytearray(_valid_messages(rng, mav).pack(mav))
        mav.seq = (mav.seq + 1) % 256
        if kind == 1:  # flip a few bytes: bad CRC (or a bad header)
            for _ in range(int(rng.integers(1, 4))):
                frame[int(rng.integers(0, len(frame)))] ^= int(rng.integers(1, 256))
        elif kind == 2:  # truncated
            frame = frame[: int(rng.integers(1, len(frame)))]
        elif kind == 3:  # MAVLink 1 framing of a heartbeat/command (valid v1 frames are legal)
            frame = bytearray(mav.heartbeat_encode(6, 8, 0, 0, 0).pack(mav, force_mavlink1=True))
        elif kind == 4:  # unknown message id with a plausible v2 header
            msgid = int(rng.integers(20000, 2**24))
            payload = rng.integers(0, 256, int(rng.integers(1, 40))).astype(np.uint8).tobytes()
            header = struct.pack("<BBBBBBBHB", 0xFD, len(payload), 0, 0, 0, 77, 1, msgid & 0xFFFF, msgid >> 16)
            frame = bytearray(header + payload + b"\x00\x00")
        yield bytes(frame)  # kind 5: the well-formed hostile frame itself


def test_ten_thousand_bad_frames_then_a_client_still_arms_and_flies():
    with px4_twin("--json", *LINEAR_THRUST) as twin:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for i, frame in enumerate(fuzz_frames(seed=1234, n=N_FRAMES)):
                sock.sendto(frame, ("127.0.0.1", twin.listen_port))
                if i % 25 == 24:
                    time.sleep(0.004)  # let the twin drain its socket (no kernel drops)
        finally:
            sock.close()
        time.sleep(0.3)
        assert twin.proc.poll() is None, "the twin died under fuzzing"
        # the clean client: the twin answers the newest peer, so announce ourselves again
        twin.client.mav.heartbeat_send(6, 8, 0, 0, 0)
        if twin.heartbeat().base_mode & 128:
            twin.disarm(force=True)
        enter_offboard(twin)
        fly_altitude_hold(twin, 1.0, 2.5)
        assert -twin.local_position().z > 0.6
        assert twin.disarm(force=True) == ACCEPTED
        os.kill(twin.proc.pid, signal.SIGTERM)
        out, _ = twin.proc.communicate(timeout=10)
    status = json.loads(out.decode().strip().splitlines()[-1])
    rx = status["links"]["onboard"]
    assert rx["rx_datagrams"] >= 0.95 * N_FRAMES
    for counter in ("rx_bad_crc", "rx_truncated", "rx_unknown_id", "rx_mavlink1"):
        assert rx.get(counter, 0) > 100, (counter, rx)
    counters = status["counters"]
    assert counters.get("rx_wrong_target", 0) > 100
    assert counters.get("rx_nan_setpoint", 0) > 10
    assert counters.get("rx_actuator_control_ignored", 0) > 10
    assert not status["crashed"]
