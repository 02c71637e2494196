"""PX4 link through pymavlink (udpin:, udpout:, tcp:, serial:/dev/...:baud).

Telemetry: ODOMETRY (or LOCAL_POSITION_NED + ATTITUDE_QUATERNION when the autopilot does not
stream it) at the control rate, requested with MAV_CMD_SET_MESSAGE_INTERVAL; NED/FRD converted
to ENU/FLU in :mod:`sim.frames` only. Commands (ctbr): SET_ATTITUDE_TARGET with the attitude
ignored, body rates in FRD and normalized thrust, streamed before the switch to OFFBOARD as PX4
requires (PX4-Autopilot src/modules/commander: offboard needs a live setpoint stream;
src/modules/mavlink/mavlink_receiver.cpp handle_message_set_attitude_target).
"""

from __future__ import annotations

import struct
import threading
import time

import numpy as np

from firmware_bridge.links.base import Link, LinkError, Telemetry
from sim.contract import CtbrCommand
from sim.frames import enu_to_ned, flu_to_frd, frd_to_flu, ned_to_enu, quat_ned_frd_to_enu_flu, quat_rotate
from sim.frames import quat_enu_flu_to_ned_frd, quat_to_euler  # external pose (mocap)

HEARTBEAT_TIMEOUT_S = 1.5  # no heartbeat for this long: the link is lost
MAV_FRAME_BODY_FRD = 12
ATTITUDE_IGNORE = 128  # ATTITUDE_TARGET_TYPEMASK_ATTITUDE_IGNORE
MAV_FRAME_LOCAL_NED = 1
# POSITION_TARGET_TYPEMASK: ignore x, y, z (1, 2, 4), ax, ay, az (64, 128, 256), yaw (1024),
# yaw rate (2048): a velocity-only setpoint
VELOCITY_ONLY = 1 | 2 | 4 | 64 | 128 | 256 | 1024 | 2048
# ... ignore z position, vx, vy (4, 8, 16), accelerations, yaw, yaw rate: hold x, y, climb at vz
XY_POSITION_Z_VELOCITY = 4 | 8 | 16 | 64 | 128 | 256 | 1024 | 2048
MAV_PARAM_TYPE_INT32 = 6
MAV_LANDED_STATE_ON_GROUND = 1
# PX4 parameters that time the vehicle's own takeoff and landing, with PX4's defaults for when a
# vehicle does not answer (commander, mc_pos_control, land_detector parameter files)
TIMING_DEFAULTS = {"COM_SPOOLUP_TIME": 1.0, "MPC_TKO_RAMP_T": 3.0, "MPC_TKO_SPEED": 1.5, "MPC_LAND_SPEED": 0.7,
                   "COM_DISARM_LAND": 2.0}
# MulticopterLandDetector.h: ground contact 0.35 s + maybe landed 0.25 s + landed 0.3 s
LAND_DETECTOR_S = 0.9
# PX4's velocity integrator has to make up a hover thrust that is off by up to HTE_THR_RANGE
# (the preflight check refuses more); the twin at its defaults (0.60 set, 0.757 needed) takes
# 2.7 s longer than the spool-up + ramp + climb sum
TAKEOFF_MARGIN_S = 5.0
# below 1 m PX4's hover-thrust estimator is not running (in air only above 1 m), so after the
# touch-down the land detector waits for the velocity integrator to unwind the hover-thrust
# error (up to HTE_THR_RANGE): 3 to 4 s in the twin at its defaults
LAND_MARGIN_S = 8.0
PARAM_RETRY_S = 0.5  # PARAM_REQUEST_READ is re-sent this often for names still unanswered


def decode_param_value(wire_value: float, param_type: int) -> float:
    """A PARAM_VALUE's value: PX4 sends INT32 parameters bytewise in the float field
    (src/modules/mavlink/mavlink_parameters.cpp, MAV_PROTOCOL_CAPABILITY_PARAM_ENCODE_BYTEWISE)."""
    if param_type == MAV_PARAM_TYPE_INT32:
        return float(struct.unpack("<i", struct.pack("<f", wire_value))[0])
    return float(wire_value)


def encode_param_value(value: float, param_type: int) -> float:
    """The float that carries ``value`` in PARAM_SET (inverse of :func:`decode_param_value`)."""
    if param_type == MAV_PARAM_TYPE_INT32:
        return struct.unpack("<f", struct.pack("<i", int(round(value))))[0]
    return float(value)


def parse_mavlink_uri(uri: str) -> tuple[str, dict]:
    """quadhil link URI -> (pymavlink device string, extra kwargs). ``serial:/dev/X:921600``."""
    if uri.startswith("serial:"):
        rest = uri[len("serial:"):]
        dev, sep, baud = rest.rpartition(":")
        if not sep or not baud.isdigit():
            raise LinkError(f"serial link must be serial:/dev/DEVICE:BAUD, got {uri!r}")
        return dev, {"baud": int(baud)}
    for prefix in ("udpin:", "udpout:", "tcp:"):
        if uri.startswith(prefix):
            host, sep, port = uri[len(prefix):].rpartition(":")
            if not sep or not port.isdigit():
                raise LinkError(f"MAVLink link must be {prefix}HOST:PORT, got {uri!r}")
            return uri, {}
    raise LinkError(f"not a MAVLink URI: {uri!r}")


def vision_position_estimate_fields(pos_w: np.ndarray, quat_wb: np.ndarray) -> dict:
    """VISION_POSITION_ESTIMATE fields for a pose (world ENU m, body-FLU-to-ENU quaternion).
    PX4's mavlink_receiver.cpp (handle_message_vision_position_estimate) reads x, y, z as
    LOCAL_FRAME_NED, builds the attitude from roll, pitch, yaw (Euler, body FRD in NED), stamps
    the sample through timesync's sync_stamp(usec) and takes the covariance (upper triangle of
    the 6x6, row-major) when EKF2_EV_NOISE_MD is 0; EKF2 then fuses it per EKF2_EV_CTRL
    (firmware_bridge.mocap.PX4_EV_PARAMS)."""
    pos_ned = enu_to_ned(np.asarray(pos_w, dtype=np.float64).reshape(3))
    roll, pitch, yaw = (float(v) for v in quat_to_euler(quat_enu_flu_to_ned_frd(np.asarray(quat_wb, dtype=np.float64))))
    cov = [0.0] * 21  # upper triangle of the 6x6 (x, y, z, roll, pitch, yaw), row-major
    for i, var in zip((0, 6, 11, 15, 18, 20), (1e-4, 1e-4, 1e-4, 4e-4, 4e-4, 4e-4)):
        cov[i] = var  # 1 cm, 0.02 rad standard deviations on the diagonal
    return {"x": float(pos_ned[0]), "y": float(pos_ned[1]), "z": float(pos_ned[2]), "roll": roll, "pitch": pitch,
            "yaw": yaw, "covariance": cov}


def px4_thrust_setpoint(cmd: CtbrCommand) -> float:
    """Normalized thrust for SET_ATTITUDE_TARGET: the contract's collective thrust fraction
    (of 4 x max motor thrust), clipped to [0, 1]."""
    return float(np.clip(np.asarray(cmd.collective_fraction).reshape(-1)[0], 0.0, 1.0))


class MavlinkLink(Link):
    """A PX4 vehicle (or its twin) reached through pymavlink."""

    firmware = "px4"

    def __init__(self, uri: str, source_system: int = 1, source_component: int = 191) -> None:
        super().__init__()
        self.uri = uri
        self._device, self._kw = parse_mavlink_uri(uri)
        self._src = (source_system, source_component)  # MAV_COMP_ID_ONBOARD_COMPUTER
        self._m = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._last_hb = 0.0
        self._odometry_seen = False
        self._lpn = None  # (t_vehicle_s, pos_enu, vel_enu)
        self._att = None  # (t_vehicle_s, quat_enu_flu, omega_flu)
        self.armed = False
        self.mode = ""
        self.autopilot: int | None = None
        self._last_pair = (None, None)
        self._next_land_request_s = 0.0
        self._params: dict[str, tuple[float, int]] = {}  # name -> (value, MAV_PARAM_TYPE) as PX4 sent it
        self._params_cond = threading.Condition()
        self.odometry_rejected = 0  # ODOMETRY whose velocity frame is neither LOCAL_NED nor BODY_FRD
        self.timing = dict(TIMING_DEFAULTS)  # read_timing() replaces these with the vehicle's
        self.landed_state = 0  # EXTENDED_SYS_STATE.landed_state

    # -- lifecycle -------------------------------------------------------------------------
    def connect(self, timeout_s: float) -> None:
        """Open the port, wait for a PX4 heartbeat, request telemetry streams."""
        from pymavlink import mavutil

        self._mavutil = mavutil
        try:
            self._m = mavutil.mavlink_connection(self._device, source_system=self._src[0],
                                                 source_component=self._src[1], **self._kw)
        except (OSError, ValueError) as exc:
            raise LinkError(f"cannot open {self.uri}: {exc}") from None
        deadline = time.monotonic() + timeout_s
        hb = None
        while time.monotonic() < deadline:
            if self._device.startswith("udpout:"):
                self._m.mav.heartbeat_send(mavutil.mavlink.MAV_TYPE_ONBOARD_CONTROLLER,
                                           mavutil.mavlink.MAV_AUTOPILOT_INVALID, 0, 0, 0)
            hb = self._m.recv_match(type="HEARTBEAT", blocking=True, timeout=0.2)
            if hb is not None and hb.get_srcComponent() == 1:
                break
            hb = None
        if hb is None:
            self.close()
            raise LinkError(f"no MAVLink heartbeat from a vehicle at {self.uri} within {timeout_s:.0f} s")
        self.autopilot = hb.autopilot
        self._m.target_system = hb.get_srcSystem()
        self._m.target_component = hb.get_srcComponent()
        self._on_heartbeat(hb)
        if hb.autopilot != mavutil.mavlink.MAV_AUTOPILOT_PX4:
            self.firmware = f"mavlink-autopilot-{hb.autopilot}"
        self._thread = threading.Thread(target=self._rx_loop, name="mavlink-rx", daemon=True)
        self._thread.start()

    def request_rate(self, rate_hz: float) -> None:
        """Ask for ODOMETRY at ``rate_hz``; fall back to LOCAL_POSITION_NED + ATTITUDE_QUATERNION."""
        mav = self._mavutil.mavlink
        interval_us = int(1e6 / rate_hz)
        self._set_interval(mav.MAVLINK_MSG_ID_ODOMETRY, interval_us)
        self._set_interval(mav.MAVLINK_MSG_ID_SYS_STATUS, 200_000)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline and not self._odometry_seen:
            time.sleep(0.02)
        if not self._odometry_seen:
            self._set_interval(mav.MAVLINK_MSG_ID_LOCAL_POSITION_NED, interval_us)
            self._set_interval(mav.MAVLINK_MSG_ID_ATTITUDE_QUATERNION, interval_us)

    def _set_interval(self, msg_id: int, interval_us: int) -> None:
        self._m.mav.command_long_send(self._m.target_system, self._m.target_component,
                                      self._mavutil.mavlink.MAV_CMD_SET_MESSAGE_INTERVAL, 0,
                                      msg_id, interval_us, 0, 0, 0, 0, 0)

    def close(self) -> None:
        """Stop the receive thread and close the port (idempotent)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        m, self._m = self._m, None
        if m is not None:
            try:
                m.close()
            except Exception:  # noqa: BLE001
                pass

    def action_modes(self) -> tuple[str, ...]:
        """PX4 v1.14+ takes no motor commands over MAVLink: ctbr only."""
        return ("ctbr",) if self.firmware == "px4" else ()

    def describe(self) -> dict:
        """Link facts for the log header (after request_rate: which telemetry was negotiated)."""
        return {"uri": self.uri, "firmware": self.firmware, "library": "pymavlink",
                "telemetry": "ODOMETRY" if self._odometry_seen else "LOCAL_POSITION_NED+ATTITUDE_QUATERNION",
                "px4_timing": dict(self.timing)}

    @property
    def alive(self) -> bool:
        """False once heartbeats stop or the port fails."""
        if self.lost_reason is None and self._last_hb and time.monotonic() - self._last_hb > HEARTBEAT_TIMEOUT_S:
            self.lost_reason = f"no heartbeat for {time.monotonic() - self._last_hb:.1f} s"
        return self.lost_reason is None

    # -- receive ---------------------------------------------------------------------------
    def _on_heartbeat(self, hb) -> None:
        self._last_hb = time.monotonic()
        self.armed = bool(hb.base_mode & self._mavutil.mavlink.MAV_MODE_FLAG_SAFETY_ARMED)
        self.mode = self._mavutil.interpret_px4_mode(hb.base_mode, hb.custom_mode)

    def _rx_loop(self) -> None:
        while not self._stop.is_set():
            m = self._m
            if m is None:
                return
            try:
                msg = m.recv_match(blocking=True, timeout=0.05)
            except Exception as exc:  # noqa: BLE001 - a dead port: report, don't crash the loop
                self.lost_reason = f"MAVLink port error: {exc}"
                self.telemetry.wake()
                return
            if msg is None:
                continue
            t_arr = time.monotonic()
            if msg.get_srcComponent() != 1 and msg.get_type() != "COMMAND_ACK":
                continue
            try:
                self._handle(msg, t_arr)
            except (ValueError, TypeError, IndexError):
                continue  # malformed content: drop it, never crash

    def _handle(self, msg, t_arr: float) -> None:
        kind = msg.get_type()
        if kind == "HEARTBEAT":
            self._on_heartbeat(msg)
        elif kind == "ODOMETRY":
            self._odometry_seen = True
            q = quat_ned_frd_to_enu_flu(np.array(msg.q, dtype=np.float64))
            pos = ned_to_enu(np.array([msg.x, msg.y, msg.z]))
            v = np.array([msg.vx, msg.vy, msg.vz], dtype=np.float64)
            # velocity in the frame the message declares: PX4 main sends LOCAL_NED (EKF2's
            # velocity_frame NED), older releases BODY_FRD; anything else is not ours to guess
            if msg.child_frame_id == MAV_FRAME_BODY_FRD:
                vel = quat_rotate(q, frd_to_flu(v))
            elif msg.child_frame_id == MAV_FRAME_LOCAL_NED:
                vel = ned_to_enu(v)
            else:
                self.odometry_rejected += 1
                return
            omega = frd_to_flu(np.array([msg.rollspeed, msg.pitchspeed, msg.yawspeed]))
            self.telemetry.publish(t_arr, msg.time_usec * 1e-6, pos, vel, q, omega)
        elif kind == "LOCAL_POSITION_NED" and not self._odometry_seen:
            self._lpn = (msg.time_boot_ms * 1e-3, ned_to_enu(np.array([msg.x, msg.y, msg.z])),
                         ned_to_enu(np.array([msg.vx, msg.vy, msg.vz])))
            self._pair(t_arr)
        elif kind == "ATTITUDE_QUATERNION" and not self._odometry_seen:
            q = quat_ned_frd_to_enu_flu(np.array([msg.q1, msg.q2, msg.q3, msg.q4]))
            self._att = (msg.time_boot_ms * 1e-3, q, frd_to_flu(np.array([msg.rollspeed, msg.pitchspeed,
                                                                           msg.yawspeed])))
            self._pair(t_arr)
        elif kind == "SYS_STATUS":
            if msg.voltage_battery != 65535:
                self.battery_v = msg.voltage_battery / 1000.0
        elif kind == "STATUSTEXT":
            text = msg.text.decode("ascii", "replace") if isinstance(msg.text, bytes) else str(msg.text)
            self.statustexts.append((t_arr, int(msg.severity), text.rstrip("\x00")))
        elif kind == "EXTENDED_SYS_STATE":
            self.landed_state = int(msg.landed_state)
        elif kind == "PARAM_VALUE":
            name = msg.param_id.decode("ascii", "replace") if isinstance(msg.param_id, bytes) else str(msg.param_id)
            with self._params_cond:
                self._params[name.rstrip("\x00")] = (decode_param_value(msg.param_value, msg.param_type),
                                                     int(msg.param_type))
                self._params_cond.notify_all()

    def _pair(self, t_arr: float) -> None:
        if self._lpn is None or self._att is None:
            return
        key = (self._lpn[0], self._att[0])
        if key == self._last_pair or abs(key[0] - key[1]) > 0.011:
            return
        self._last_pair = key
        self.telemetry.publish(t_arr, max(key), self._lpn[1], self._lpn[2], self._att[1], self._att[2])

    # -- parameters ------------------------------------------------------------------------
    def read_params(self, names: list[str], timeout_s: float = 3.0) -> dict[str, float]:
        """Read PX4 parameters by name with PARAM_REQUEST_READ (param_index -1), re-asking every
        0.5 s for those not yet answered, for at most ``timeout_s``. Returns {name: value} for
        every name PX4 answered (INT32 values decoded from PX4's bytewise encoding); a name it
        does not know (PX4 then only logs "unknown param") is absent from the result."""
        if self._m is None:
            raise LinkError("read_params needs a connected link")
        wanted = list(dict.fromkeys(names))
        for name in wanted:
            if not 0 < len(name) <= 16:
                raise LinkError(f"PX4 parameter names are 1..16 characters, got {name!r}")
        with self._params_cond:
            for name in wanted:  # a fresh read: never answer from an older reply
                self._params.pop(name, None)
        deadline = time.monotonic() + timeout_s
        while True:
            with self._params_cond:
                missing = [n for n in wanted if n not in self._params]
            if not missing or time.monotonic() >= deadline:
                break
            for name in missing:
                try:
                    self._m.mav.param_request_read_send(self._m.target_system, self._m.target_component,
                                                        name.encode("ascii"), -1)
                except OSError as exc:
                    raise LinkError(f"PARAM_REQUEST_READ failed: {exc}") from None
            retry_at = min(deadline, time.monotonic() + PARAM_RETRY_S)
            with self._params_cond:
                while any(n not in self._params for n in wanted) and time.monotonic() < retry_at:
                    self._params_cond.wait(retry_at - time.monotonic())
        with self._params_cond:
            return {n: self._params[n][0] for n in wanted if n in self._params}

    def set_params(self, values: dict[str, float], timeout_s: float = 3.0) -> dict[str, float]:
        """Set PX4 parameters with PARAM_SET and confirm each by the PARAM_VALUE PX4 echoes;
        the parameter's type is the one PX4 reported when it was read (read first if unknown).
        Returns the values PX4 now holds; raises LinkError naming any it did not confirm."""
        if self._m is None:
            raise LinkError("set_params needs a connected link")
        types = {}
        unknown = [n for n in values if n not in self._params]
        if unknown:
            self.read_params(unknown, timeout_s)
        for name in values:
            if name not in self._params:
                raise LinkError(f"PX4 did not answer for parameter {name}: cannot set it")
            types[name] = self._params[name][1]
        with self._params_cond:
            for name in values:
                self._params.pop(name, None)
        deadline = time.monotonic() + timeout_s
        pending = dict(values)
        while pending and time.monotonic() < deadline:
            for name, value in pending.items():
                self._m.mav.param_set_send(self._m.target_system, self._m.target_component, name.encode("ascii"),
                                           encode_param_value(value, types[name]), types[name])
            retry_at = min(deadline, time.monotonic() + PARAM_RETRY_S)
            with self._params_cond:
                while any(n not in self._params for n in pending) and time.monotonic() < retry_at:
                    self._params_cond.wait(retry_at - time.monotonic())
                pending = {n: v for n, v in pending.items() if n not in self._params}
        if pending:
            raise LinkError("PX4 did not confirm PARAM_SET of " + ", ".join(sorted(pending)))
        with self._params_cond:
            return {n: self._params[n][0] for n in values}

    def read_timing(self, values: dict | None = None) -> dict:
        """Take PX4's takeoff/landing timing parameters from ``values`` (already read) or read
        them; those PX4 did not answer keep PX4's defaults."""
        got = values if values is not None else self.read_params(list(TIMING_DEFAULTS), 2.0)
        self.timing.update({k: float(got[k]) for k in TIMING_DEFAULTS if k in got})
        return dict(self.timing)

    def takeoff_budget_s(self, height_m: float, climb_mps: float) -> float:
        """PX4's smooth takeoff: COM_SPOOLUP_TIME, then the MPC_TKO_RAMP_T ramp, then the climb
        at min(climb_mps, MPC_TKO_SPEED), plus TAKEOFF_MARGIN_S (mc_pos_control/Takeoff)."""
        t = self.timing
        climb = max(min(climb_mps, t["MPC_TKO_SPEED"]), 0.1)
        return t["COM_SPOOLUP_TIME"] + t["MPC_TKO_RAMP_T"] + max(height_m, 0.0) / climb + TAKEOFF_MARGIN_S

    def land_on_vehicle(self, height_m: float, alive=None) -> dict | None:
        """Switch PX4 to AUTO.LAND and wait for its land detector and COM_DISARM_LAND to disarm
        it: descent at MPC_LAND_SPEED, 0.9 s of land detection, COM_DISARM_LAND, plus a margin.
        Reports whether it disarmed, by what (PX4's "Disarmed by ..." STATUSTEXT) and when.
        ``alive()`` is called every turn of the wait (10 ms)."""
        if self._m is None or self.dry_run:
            return None
        t = self.timing
        t0 = time.monotonic()
        n_text = len(self.statustexts)
        budget = max(height_m, 0.0) / max(t["MPC_LAND_SPEED"], 0.1) + LAND_DETECTOR_S + max(t["COM_DISARM_LAND"], 0.0) \
            + LAND_MARGIN_S
        next_request = 0.0

        def said(prefix):  # (time, text) of PX4's first STATUSTEXT since LAND starting with prefix
            return next(((ts, txt) for ts, _, txt in self.statustexts[n_text:] if txt.startswith(prefix)), (None, None))

        while time.monotonic() - t0 < budget and self.alive:
            if alive is not None:
                alive()
            now = time.monotonic()
            if self.mode != "LAND" and self.armed and now >= next_request:
                self._m.set_mode("LAND")
                next_request = now + 0.2
            # PX4 says "Disarmed by ..." at once; its armed flag waits for the 1 Hz HEARTBEAT
            if not self.armed or said("Disarmed by ")[0] is not None:
                break
            time.sleep(0.01)
        t_disarmed, text = said("Disarmed by ")
        disarmed = t_disarmed is not None or not self.armed
        if t_disarmed is None and disarmed:
            t_disarmed = time.monotonic()
        t_landed, _ = said("Landing detected")
        return {"mode": "AUTO.LAND", "disarmed": disarmed,
                "disarmed_by": (text[len("Disarmed by "):] if text else "unknown") if disarmed else None,
                "land_to_disarm_s": None if t_disarmed is None else round(t_disarmed - t0, 3),
                "landed_to_disarm_s": None if t_landed is None or t_disarmed is None else round(t_disarmed - t_landed, 3),
                "budget_s": round(budget, 3), "statustexts": [txt for _, _, txt in self.statustexts[n_text:]]}

    # -- flight ----------------------------------------------------------------------------
    def _wait(self, pred, timeout_s: float, stream=None) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if pred():
                return True
            if stream is not None:
                stream()
            time.sleep(0.01)
        return pred()

    def arm(self, hold_s: float, airborne: bool = False) -> None:
        """Stream setpoints (idle on the ground, hover thrust when taking over in the air), arm,
        switch to OFFBOARD (PX4's order), keep streaming."""
        self.dry_run = False
        frac = self.vehicle.hover_thrust_fraction if airborne else 0.0
        idle = CtbrCommand(np.array([frac * 4 * self.vehicle.max_thrust_n]), np.array([frac]), np.zeros((1, 3)))
        self._wait(lambda: False, max(hold_s, 0.5), stream=lambda: self.send(idle))
        self._m.arducopter_arm()  # MAV_CMD_COMPONENT_ARM_DISARM param1=1 (name aside, generic)
        if not self._wait(lambda: self.armed, 3.0, stream=lambda: self.send(idle)):
            raise LinkError("PX4 did not arm (no armed heartbeat within 3 s)")
        self._m.set_mode("OFFBOARD")
        if not self._wait(lambda: self.mode == "OFFBOARD", 3.0, stream=lambda: self.send(idle)):
            self._m.arducopter_disarm()
            raise LinkError("PX4 did not enter OFFBOARD within 3 s")

    def encode(self, command) -> dict:
        """Wire values of SET_ATTITUDE_TARGET for a ctbr command (body rates FRD, rad/s)."""
        if not isinstance(command, CtbrCommand):
            raise LinkError("a motors policy cannot fly over MAVLink (PX4 v1.14+ takes no motor commands)")
        rates_frd = flu_to_frd(np.asarray(command.body_rate_b, dtype=np.float64).reshape(-1)[:3])
        return {"roll_rate_frd": float(rates_frd[0]), "pitch_rate_frd": float(rates_frd[1]),
                "yaw_rate_frd": float(rates_frd[2]), "thrust": px4_thrust_setpoint(command)}

    def send(self, command) -> dict:
        """Send one SET_ATTITUDE_TARGET (nothing in a dry run); return the wire values."""
        enc = self.encode(command)
        m = self._m
        if self.dry_run or m is None:
            return enc
        t_ms = int(1e3 * (time.monotonic() - self._t0)) & 0xFFFFFFFF
        try:
            m.mav.set_attitude_target_send(t_ms, m.target_system, m.target_component, ATTITUDE_IGNORE,
                                           [1.0, 0.0, 0.0, 0.0], enc["roll_rate_frd"], enc["pitch_rate_frd"],
                                           enc["yaw_rate_frd"], enc["thrust"])
        except OSError as exc:
            self.lost_reason = f"MAVLink send failed: {exc}"
        return enc

    def send_external_pose(self, pos_w: np.ndarray, quat_wb: np.ndarray) -> dict:
        """A mocap pose as VISION_POSITION_ESTIMATE (fields: :func:`vision_position_estimate_fields`)."""
        f = vision_position_estimate_fields(pos_w, quat_wb)
        f["usec"] = int(1e6 * (time.monotonic() - self._t0))
        m = self._m
        if m is not None:
            try:
                m.mav.vision_position_estimate_send(f["usec"], f["x"], f["y"], f["z"], f["roll"], f["pitch"], f["yaw"],
                                                    f["covariance"], 0)
            except OSError as exc:
                self.lost_reason = f"MAVLink send failed: {exc}"
        return {k: v for k, v in f.items() if k != "covariance"}

    def assist(self, vz_ref_mps: float, latest: Telemetry, hold_xy_w: np.ndarray | None = None) -> dict:
        """Climb or descend at ``vz_ref_mps`` (world z up, m/s) on PX4's own position/velocity
        control (SET_POSITION_TARGET_LOCAL_NED, still in OFFBOARD), holding the horizontal
        position ``hold_xy_w`` (ENU, m) if given: takeoff and touch-down, where a hover policy is
        out of its training range (ground contact)."""
        if hold_xy_w is None:
            mask, pos_ned = VELOCITY_ONLY, np.zeros(3)
        else:
            mask = XY_POSITION_Z_VELOCITY
            pos_ned = enu_to_ned(np.array([hold_xy_w[0], hold_xy_w[1], 0.0]))
        vel_ned = enu_to_ned(np.array([0.0, 0.0, vz_ref_mps]))
        m = self._m
        if not self.dry_run and m is not None:
            t_ms = int(1e3 * (time.monotonic() - self._t0)) & 0xFFFFFFFF
            try:
                m.mav.set_position_target_local_ned_send(t_ms, m.target_system, m.target_component,
                                                         MAV_FRAME_LOCAL_NED, mask, *pos_ned, *vel_ned,
                                                         0.0, 0.0, 0.0, 0.0, 0.0)
            except OSError as exc:
                self.lost_reason = f"MAVLink send failed: {exc}"
        return {"vz_ref_mps": vz_ref_mps, "vz_ned_mps": float(vel_ned[2]),
                "x_ned_m": float(pos_ned[0]), "y_ned_m": float(pos_ned[1])}

    def stop_motors(self) -> None:
        """Zero thrust, then disarm; if PX4 refuses, hand over to its LAND mode."""
        if self._m is None or self.dry_run:
            return
        idle = CtbrCommand(np.zeros(1), np.zeros(1), np.zeros((1, 3)))
        self._wait(lambda: False, 0.2, stream=lambda: self.send(idle))
        try:
            self._m.arducopter_disarm()
        except OSError:
            return
        if not self._wait(lambda: not self.armed, 1.0, stream=lambda: self.send(idle)):
            self._m.set_mode("LAND")

    def failsafe_step(self, action: str, t_since_s: float, latest: Telemetry | None) -> bool:
        """PX4 failsafe: request AUTO.LAND until the heartbeat shows it (1 s at most; after that
        PX4's own offboard-loss failsafe lands it since we stop streaming)."""
        if self._m is None or self.dry_run:
            return True
        if self.mode == "LAND" or not self.armed or t_since_s > 1.0:
            return True
        if t_since_s >= self._next_land_request_s:
            self._next_land_request_s = t_since_s + 0.1  # at most 10 requests per second
            try:
                self._m.set_mode("LAND")
            except OSError:
                return True
        return False

    def disarm(self) -> None:
        """Nothing beyond stop_motors: PX4 disarms itself after landing."""
