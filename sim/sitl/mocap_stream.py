"""A twin's motion capture system: its true pose streamed over UDP, as a mocap system sees it.

Why this exists: the ``motioncapture`` package's own ``mock`` backend serves fixed poses (the
``rigid_bodies`` string given to ``motioncapture.connect("mock", ...)``, paced at its
``frequency``) and has no way to move them, so it cannot follow a flying twin. The twins therefore
stream their truth here, and the bridge reads it through an object with the ``motioncapture``
interface (``waitForNextFrame()``, ``rigidBodies``: :class:`firmware_bridge.mocap.SitlMotionCapture`).

Wire format, one datagram per mocap frame (little endian): ``b"QMC1"``, frame number (uint32),
twin time (float64, s), body count (uint8), then per visible body its name (uint8 length +
UTF-8) and 7 float64: position (m) and quaternion (w, x, y, z, body-to-mocap-world) in the
configured mocap axes (``z-up`` or ``y-up``, :func:`sim.frames.enu_to_mocap`). A body that is not
visible is left out of the frame, as real systems do. A client subscribes by sending any datagram
(``b"SUB"``) to the server's port, and again now and then: the server keeps the last 4 addresses.
"""

from __future__ import annotations

import argparse
import socket
import struct
from typing import Callable

import numpy as np

from sim.errors import QuadhilError
from sim.frames import enu_to_mocap

MAGIC = b"QMC1"
_HEAD = struct.Struct("<4sIdB")
_POSE = struct.Struct("<7d")


def encode_frame(frame: int, t_s: float, bodies: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """One frame datagram: ``bodies`` maps name -> (position m, quaternion w,x,y,z) in mocap axes."""
    out = [_HEAD.pack(MAGIC, frame & 0xFFFFFFFF, t_s, len(bodies))]
    for name, (pos, quat) in bodies.items():
        raw = name.encode()
        out.append(bytes((len(raw),)) + raw + _POSE.pack(*np.asarray(pos, dtype=float), *np.asarray(quat, dtype=float)))
    return b"".join(out)


def decode_frame(data: bytes) -> tuple[int, float, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """(frame, t_s, {name: (position, quaternion w,x,y,z)}); ValueError on a malformed datagram."""
    if len(data) < _HEAD.size:
        raise ValueError(f"mocap frame of {len(data)} bytes is shorter than its {_HEAD.size}-byte header")
    magic, frame, t_s, n = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"not a quadhil mocap frame (magic {magic!r})")
    off, bodies = _HEAD.size, {}
    for _ in range(n):
        if off >= len(data):
            raise ValueError("mocap frame truncated")
        ln = data[off]
        name = data[off + 1:off + 1 + ln].decode()
        off += 1 + ln
        if off + _POSE.size > len(data):
            raise ValueError("mocap frame truncated")
        v = np.array(_POSE.unpack_from(data, off))
        off += _POSE.size
        bodies[name] = (v[:3], v[3:])
    return frame, t_s, bodies


class MocapStreamServer:
    """Streams one body's pose to subscribers at ``rate_hz`` of twin time (call :meth:`tick` from
    the twin's physics loop); ``dropout_after_s``: the body stops being visible that many seconds
    after the motors first spin (a tracking-loss test), None: never."""

    def __init__(self, host: str, port: int, object_name: str = "cf", axes: str = "z-up", rate_hz: float = 100.0,
                 dropout_after_s: float | None = None) -> None:
        enu_to_mocap(np.zeros(3), np.array([1.0, 0.0, 0.0, 0.0]), axes)  # refuse unknown axes now
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.setblocking(False)
        self.host, self.port = self.sock.getsockname()[:2]
        self.object_name, self.axes, self.period_s = object_name, axes, 1.0 / rate_hz
        self.dropout_after_s = dropout_after_s
        self.subscribers: list[tuple] = []
        self.frames_sent = 0
        self._next_t = 0.0
        self._t_spin: float | None = None

    def _poll_subscribers(self) -> None:
        while True:
            try:
                _, addr = self.sock.recvfrom(64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if addr not in self.subscribers:
                self.subscribers = (self.subscribers + [addr])[-4:]

    def tick(self, t_s: float, pos_w: np.ndarray, quat_wb: np.ndarray, motors_spinning: bool) -> None:
        """Send a frame if one is due at twin time ``t_s``; the pose is world ENU / body FLU."""
        if t_s + 1e-9 < self._next_t:
            return
        self._next_t = t_s + self.period_s
        self._poll_subscribers()
        if motors_spinning and self._t_spin is None:
            self._t_spin = t_s
        lost = self.dropout_after_s is not None and self._t_spin is not None and t_s - self._t_spin > self.dropout_after_s
        bodies = {}
        if not lost:
            bodies[self.object_name] = enu_to_mocap(np.asarray(pos_w), np.asarray(quat_wb), self.axes)
        data = encode_frame(self.frames_sent, t_s, bodies)
        self.frames_sent += 1
        for addr in self.subscribers:
            try:
                self.sock.sendto(data, addr)
            except OSError:
                pass

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def add_mocap_stream_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--mocap-*`` options of a twin that also acts as the room's motion capture."""
    parser.add_argument("--mocap-port", type=int, default=None, metavar="PORT",
                        help="also act as the room's motion capture: stream the true pose over UDP on PORT "
                             "(read with quadhil fly --mocap sitl:127.0.0.1:PORT)")
    parser.add_argument("--mocap-object", default="cf", help="rigid body name in the mocap stream (default cf)")
    parser.add_argument("--mocap-axes", choices=("z-up", "y-up"), default="z-up",
                        help="axes the mocap stream reports in (default z-up)")
    parser.add_argument("--mocap-rate", type=float, default=100.0, help="mocap frames per second (default 100)")
    parser.add_argument("--mocap-dropout-after", type=float, default=None, metavar="S",
                        help="the rigid body stops being tracked S seconds after the motors first spin")


def open_mocap_stream(args: argparse.Namespace, host: str, tick_hooks: list,
                      pose_of: Callable[[object], tuple[float, np.ndarray, np.ndarray, bool]]) -> MocapStreamServer:
    """Bind the stream the ``--mocap-*`` options ask for on ``host`` and tick it from the twin's
    physics loop: ``pose_of(twin)`` gives (twin time s, ENU position m, body-to-world quaternion
    w-x-y-z, motors spinning). QuadhilError names a bad option or a port that cannot be bound."""
    if not 0 <= args.mocap_port <= 65535 or not args.mocap_rate > 0:
        raise QuadhilError("--mocap-port must be 0..65535 and --mocap-rate > 0")
    try:
        srv = MocapStreamServer(host, args.mocap_port, args.mocap_object, args.mocap_axes, args.mocap_rate,
                                args.mocap_dropout_after)
    except OSError as exc:
        raise QuadhilError(f"cannot bind mocap UDP {host}:{args.mocap_port}: {exc.strerror}") from None
    tick_hooks.append(lambda twin: srv.tick(*pose_of(twin)))
    return srv
