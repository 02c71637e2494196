"""Motion capture in: a rigid body's pose from the room's mocap system, streamed to the vehicle.

``quadhil fly --mocap TYPE:HOST[,object=NAME][,key=value...]`` opens the mocap system through the
``motioncapture`` package (libmotioncapture, the one Crazyswarm2 uses):
``motioncapture.connect(TYPE, {"hostname": HOST, key: value...})``, then ``waitForNextFrame()``
and ``rigidBodies`` in a thread of its own. TYPE is whatever that package supports (``vicon``,
``optitrack``, ``qualisys``, ``vrpn``, ``mock``...), plus ``sitl``: a twin's own mocap stream
(:mod:`sim.sitl.mocap_stream`, read by :class:`SitlMotionCapture` through the same interface,
because the package's ``mock`` backend serves fixed poses and cannot follow a flying twin).

Every frame with the body in it is converted to world ENU / body FLU (:func:`sim.frames.mocap_to_enu`,
``--mocap-frame z-up|y-up``) and handed to the link at once, at the mocap rate
(:meth:`firmware_bridge.links.base.Link.send_external_pose`: cflib's extpose to a Crazyflie,
VISION_POSITION_ESTIMATE to PX4). :meth:`MocapStream.lost_reason` is the supervisor's tracking
input: no frame for ``timeout_s``, or frames without the body for ``timeout_s``.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from sim.errors import QuadhilError
from sim.frames import MOCAP_AXES, mocap_to_enu

# Tracking counts as lost after this long without a pose of the body: 20 frames at 100 Hz. A
# Crazyflie's Kalman filter dead-reckons on its IMU meanwhile (crtp_localization_service.c feeds it
# only when a pose arrives); in 0.2 s a hover drifts a few millimetres, not more.
MOCAP_TIMEOUT_S = 0.2
FIRST_FRAME_WAIT_S = 3.0  # preflight: how long to wait for the first frame with the body in it

# PX4's EKF2 external-vision parameters a mocap-fed PX4 needs (src/modules/ekf2/module.yaml and
# params_*.yaml of PX4 v1.14+): fuse EV horizontal + vertical position and yaw (EKF2_EV_CTRL bits
# 0, 1, 3 = 11; bit 2 would fuse EV velocity, which VISION_POSITION_ESTIMATE does not carry),
# height from vision (EKF2_HGT_REF 3), no GNSS indoors (EKF2_GPS_CTRL 0), the mocap-to-EKF delay
# (EKF2_EV_DELAY, ms; measure yours), noise from the parameters rather than the message
# (EKF2_EV_NOISE_MD 1) with mocap-grade floors (EKF2_EVP_NOISE m, EKF2_EVA_NOISE rad).
PX4_EV_PARAMS = {
    "EKF2_EV_CTRL": 11,
    "EKF2_HGT_REF": 3,
    "EKF2_GPS_CTRL": 0,
    "EKF2_EV_DELAY": 10.0,
    "EKF2_EV_NOISE_MD": 1,
    "EKF2_EVP_NOISE": 0.01,
    "EKF2_EVA_NOISE": 0.02,
}
PX4_EV_INT_PARAMS = ("EKF2_EV_CTRL", "EKF2_HGT_REF", "EKF2_GPS_CTRL", "EKF2_EV_NOISE_MD")  # INT32 in PX4


@dataclass(frozen=True)
class MocapSpec:
    """What ``--mocap`` names: the ``motioncapture`` type, host, rigid body, axes, extra config."""

    kind: str
    host: str
    object_name: str
    axes: str = "z-up"
    timeout_s: float = MOCAP_TIMEOUT_S
    options: dict = field(default_factory=dict)  # passed to motioncapture.connect as strings

    def describe(self) -> dict:
        """For the flight log header."""
        return {"type": self.kind, "host": self.host, "object": self.object_name, "axes": self.axes,
                "timeout_s": self.timeout_s, "options": dict(self.options)}


def _split_options(text: str) -> list[str]:
    """Split on commas outside parentheses (the mock backend's ``cf(x,y,z,qw,qx,qy,qz)``)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def parse_mocap(text: str, axes: str = "z-up", timeout_s: float = MOCAP_TIMEOUT_S) -> MocapSpec:
    """Parse ``TYPE:HOST[,object=NAME][,key=value...]``; the object defaults to ``cf``.
    Raises QuadhilError naming what is wrong."""
    if axes not in MOCAP_AXES:
        raise QuadhilError(f"--mocap-frame must be one of {', '.join(MOCAP_AXES)}, got {axes!r}")
    if not (timeout_s > 0):
        raise QuadhilError(f"the mocap timeout must be > 0 s, got {timeout_s}")
    kind, sep, rest = text.partition(":")
    if not sep or not kind.strip():
        raise QuadhilError(f"--mocap must be TYPE:HOST[,object=NAME] (e.g. vicon:192.168.1.10,object=cf1), got {text!r}")
    parts = _split_options(rest)
    host = parts[0] if parts and "=" not in parts[0] else ""
    options = {}
    for p in parts[1:] if host else parts:
        key, eq, value = p.partition("=")
        if not eq or not key.strip():
            raise QuadhilError(f"--mocap option {p!r} is not key=value")
        options[key.strip()] = value.strip()
    obj = options.pop("object", "cf")
    if kind == "sitl" and not host:
        raise QuadhilError("--mocap sitl: needs HOST:PORT of a twin's mocap stream (quadhil sitl ... --mocap-port)")
    return MocapSpec(kind.strip().lower(), host, obj, axes, timeout_s, options)


class _Quat:
    __slots__ = ("w", "x", "y", "z")

    def __init__(self, q) -> None:
        self.w, self.x, self.y, self.z = (float(v) for v in q)


class _Body:
    __slots__ = ("name", "position", "rotation")

    def __init__(self, name: str, pos: np.ndarray, quat: np.ndarray) -> None:
        self.name, self.position, self.rotation = name, pos, _Quat(quat)


class SitlMotionCapture:
    """A twin's mocap stream behind the ``motioncapture.MotionCapture`` interface:
    ``waitForNextFrame()`` blocks until the next frame (or ``timeout_s``: then the frame is
    empty, where the real package would block on), ``rigidBodies`` is {name: body} with
    ``.position`` (ndarray, m) and ``.rotation`` (``.w .x .y .z``)."""

    def __init__(self, host_port: str, timeout_s: float = 0.5) -> None:
        host, _, port = host_port.rpartition(":")
        try:
            self.addr = (host or "127.0.0.1", int(port))
        except ValueError:
            raise QuadhilError(f"--mocap sitl: expects HOST:PORT, got {host_port!r}") from None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1" if self.addr[0] in ("127.0.0.1", "localhost") else "0.0.0.0", 0))
        self.sock.settimeout(timeout_s)
        self._bodies: dict = {}
        self._last_sub = 0.0
        self.frames = 0

    def _subscribe(self) -> None:
        if time.monotonic() - self._last_sub > 0.5:
            self._last_sub = time.monotonic()
            try:
                self.sock.sendto(b"SUB", self.addr)
            except OSError:
                pass

    def waitForNextFrame(self) -> None:  # noqa: N802 - the motioncapture package's name
        """Block until the next frame arrives (at most the timeout: then no bodies)."""
        from sim.sitl.mocap_stream import decode_frame

        self._subscribe()
        try:
            data = self.sock.recv(2048)
            _, _, bodies = decode_frame(data)
        except (TimeoutError, socket.timeout, ValueError, OSError):
            self._bodies = {}
            return
        self.frames += 1
        self._bodies = {name: _Body(name, p, q) for name, (p, q) in bodies.items()}

    @property
    def rigidBodies(self) -> dict:  # noqa: N802
        """{name: body} of the last frame."""
        return self._bodies

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def connect(spec: MocapSpec):
    """Open the mocap system (``motioncapture.connect``, or the twin stream for ``sitl``)."""
    if spec.kind == "sitl":
        return SitlMotionCapture(spec.host)
    try:
        import motioncapture
    except ImportError:
        raise QuadhilError("--mocap needs the motioncapture package: pip install 'quadhil[lab]'") from None
    cfg = {"hostname": spec.host, **{k: str(v) for k, v in spec.options.items()}} if spec.host else \
        {k: str(v) for k, v in spec.options.items()}
    try:
        return motioncapture.connect(spec.kind, cfg)
    except RuntimeError as exc:
        raise QuadhilError(f"--mocap {spec.kind}: {exc} (motioncapture {getattr(motioncapture, '__version__', '?')})") from None


@dataclass(frozen=True)
class MocapPose:
    """One pose of the tracked body, converted: world ENU position (m), body-FLU-to-ENU quaternion."""

    t_s: float  # time.monotonic() when the frame arrived
    pos_w: np.ndarray
    quat_wb: np.ndarray
    seq: int


class MocapStream:
    """Reads frames in a thread, forwards each pose of the body to ``sink(pose)`` (the link's
    external-pose path) and keeps the tracking state for the supervisor."""

    def __init__(self, spec: MocapSpec, mocap=None) -> None:
        self.spec = spec
        self._mc = mocap
        self.sink = None  # callable(MocapPose), set once the link is connected
        self.latest: MocapPose | None = None
        self.frames = 0  # frames read
        self.frames_without_body = 0
        self.sent = 0
        self.send_errors = 0
        self.last_frame_s: float | None = None  # any frame, with or without the body
        self.last_seen_s: float | None = None  # a frame with the body
        self._t_start: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()

    def start(self) -> "MocapStream":
        """Connect (if not given a connected object) and start reading frames."""
        if self._mc is None:
            self._mc = connect(self.spec)
        self._t_start = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="quadhil-mocap", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        name, axes = self.spec.object_name, self.spec.axes
        while not self._stop.is_set():
            try:
                self._mc.waitForNextFrame()
                bodies = self._mc.rigidBodies
            except Exception:  # noqa: BLE001 - a dying mocap connection: tracking is lost, the supervisor sees it
                time.sleep(0.01)
                continue
            now = time.monotonic()
            self.frames += 1
            self.last_frame_s = now
            rb = bodies.get(name) if hasattr(bodies, "get") else None
            if rb is None:
                self.frames_without_body += 1
                continue
            r = rb.rotation
            q = np.array([r.w, r.x, r.y, r.z], dtype=np.float64)
            p = np.asarray(rb.position, dtype=np.float64).reshape(3)
            if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q)) and np.linalg.norm(q) > 0.5):
                self.frames_without_body += 1  # systems report a lost body as NaN: not visible
                continue
            pos_w, quat_wb = mocap_to_enu(p, q, axes)
            pose = MocapPose(now, pos_w, quat_wb, self.frames)
            with self._cond:
                self.latest = pose
                self.last_seen_s = now
                self._cond.notify_all()
            sink = self.sink
            if sink is not None:
                try:
                    sink(pose)
                    self.sent += 1
                except Exception:  # noqa: BLE001 - a failing link: the link's own loss detection reports it
                    self.send_errors += 1

    def wait_for_body(self, timeout_s: float = FIRST_FRAME_WAIT_S) -> MocapPose | None:
        """Block until a pose of the body exists or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.latest is None and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            return self.latest

    def age_s(self, now: float) -> float:
        """Seconds since the last pose of the body (since start if none yet)."""
        ref = self.last_seen_s if self.last_seen_s is not None else (self._t_start or now)
        return now - ref

    def lost_reason(self, now: float) -> str | None:
        """Why tracking counts as lost at ``now`` (monotonic s), or None while it holds."""
        limit = self.spec.timeout_s
        if self.age_s(now) <= limit:
            return None
        name = self.spec.object_name
        frame_age = now - (self.last_frame_s if self.last_frame_s is not None else (self._t_start or now))
        if frame_age > limit:
            return f"mocap tracking lost: no frame for {1e3 * frame_age:.0f} ms (limit {1e3 * limit:.0f} ms)"
        return (f"mocap tracking lost: object {name!r} not visible for {1e3 * self.age_s(now):.0f} ms "
                f"(limit {1e3 * limit:.0f} ms)")

    def stats(self) -> dict:
        """Counters for the flight summary."""
        span = (self.last_frame_s or 0.0) - (self._t_start or 0.0)
        return {"frames": self.frames, "frames_without_body": self.frames_without_body, "poses_sent": self.sent,
                "send_errors": self.send_errors, "rate_hz": (self.frames / span) if span > 0 else None}

    def stop(self) -> None:
        """Stop reading (the thread is a daemon: a mocap call that never returns cannot hang exit)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        close = getattr(self._mc, "close", None)
        if close is not None and (self._thread is None or not self._thread.is_alive()):
            close()


def px4_ev_params_text() -> str:
    """PX4_EV_PARAMS as a QGroundControl .params file (deploy.px4_params' writer)."""
    from deploy.px4_params import format_qgc_params

    return format_qgc_params(PX4_EV_PARAMS, comment="quadhil: EKF2 external vision (motion capture) parameters",
                             int_names=PX4_EV_INT_PARAMS)
