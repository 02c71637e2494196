"""``quadhil fly --live`` (firmware_bridge/live.py): a Foxglove WebSocket server on 127.0.0.1 that
advertises the MCAP log's channels with Foxglove's schema names and delivers a tick's pose to a
subscribed client. The client here speaks the WebSocket protocol (RFC 6455) by hand, with the
foxglove.sdk.v1 subprotocol, as Foxglove does."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time

import pytest

pytest.importorskip("foxglove")

from firmware_bridge.live import LiveView  # noqa: E402

TICK = {"type": "tick", "k": 1, "t": 0.01, "pos": [0.1, 0.2, 1.0], "quat": [1.0, 0.0, 0.0, 0.0],
        "target": [0.0, 0.0, 1.0], "action": [0.0] * 4, "cmd": {}, "latency_ms": 0.2, "state": "FLYING",
        "phase": "hover"}


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("server closed")
        buf += chunk
    return buf


def _frame(s: socket.socket) -> tuple[int, bytes]:
    b0, b1 = _recv_exact(s, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", _recv_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", _recv_exact(s, 8))[0]
    return b0 & 0x0F, _recv_exact(s, n)


def _send_text(s: socket.socket, text: str) -> None:
    data, mask = text.encode(), os.urandom(4)
    head = bytes((0x81, 0x80 | len(data))) if len(data) < 126 else bytes((0x81, 0x80 | 126)) + struct.pack(">H", len(data))
    s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def test_the_live_view_advertises_the_log_channels_and_streams_the_pose():
    live = LiveView.start(0)
    s = socket.create_connection(("127.0.0.1", live.port), timeout=3.0)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Protocol: foxglove.sdk.v1\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        assert b" 101 " in head.split(b"\r\n")[0]
        channels = {}
        deadline = time.monotonic() + 3.0
        while "/pose" not in channels and time.monotonic() < deadline:
            op, data = _frame(s)
            if op == 1:
                msg = json.loads(data)
                if msg.get("op") == "advertise":
                    channels.update({c["topic"]: c for c in msg["channels"]})
        assert channels["/pose"]["schemaName"] == "foxglove.PoseInFrame"
        assert channels["/tf"]["schemaName"] == "foxglove.FrameTransform"
        assert {"/setpoint", "/command", "/supervisor", "/latency"} <= set(channels)
        _send_text(s, json.dumps({"op": "subscribe", "subscriptions": [{"id": 7, "channelId": channels["/pose"]["id"]}]}))
        time.sleep(0.2)  # the server registers the subscription on its own thread
        live.write(TICK)
        while True:
            op, data = _frame(s)
            if op == 2 and data[0] == 1:  # binary MessageData: opcode, subscription id, log time, payload
                sub_id = struct.unpack_from("<I", data, 1)[0]
                pose = json.loads(data[13:])
                break
        assert sub_id == 7
        assert pose["frame_id"] == "world" and pose["pose"]["position"] == {"x": 0.1, "y": 0.2, "z": 1.0}
    finally:
        s.close()
        live.close()
