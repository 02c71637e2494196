"""Crazyflie link through cflib (radio://, usb://, udp:// - the last reaches the twin).

Telemetry: the state estimate in log blocks at 100 Hz (the firmware's log period has a 10 ms
unit: crazyflie-firmware src/modules/src/log.c, cflib LogConfig.period). A log packet carries at
most 26 bytes of variables (cflib LogConfig.MAX_LEN). Default ("float"): position+velocity
(6 floats, 24 B), quaternion (16 B) and gyro (12 B) in three blocks with the same period; a
sample is complete when all three carry timestamps within one period. Floats carry a diverged
estimator's NaN/inf through to the supervisor. Option ("compressed"): the firmware's
``stateEstimateZ`` (int16 mm, mm/s, mrad/s and a 32-bit packed quaternion: 22 bytes) in ONE
atomic block - a third of the radio traffic, but the int16 cast turns NaN into 0 on the vehicle
(C float-to-int conversion), so a failed estimate can look like a valid one at the origin.

Commands (ctbr): the generic commander's manual setpoint with the rate flag
(crazyflie-firmware src/modules/src/crtp_commander_generic.c, manualDecoder) through cflib's
link: roll/pitch/yaw rates in deg/s, thrust as the raw uint16 (see :func:`manual_rate_packet` for
why not ``send_setpoint_manual``), encoded by sim.command_path: with battery compensation (the
default build) the firmware reads it as thrust, linear to THRUST_MAX per motor (motors.c).
Signs: the firmware's PID rate loop compares the pitch-rate setpoint with ``-gyro.y``
(controller_pid.c) and the wire carries ``-pitch`` as cflib's commander does, so FLU body rates go
in unchanged.
"""

from __future__ import annotations

import logging
import math
import struct
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from firmware_bridge.links.base import Link, LinkError, Telemetry
from sim.command_path import ctbr_thrust_u16, raw_pwm_battery_scale
from sim.contract import CtbrCommand, MotorCommand, thrust_to_firmware_units

# Generic commander setpoint (crtp_commander_generic.c): port 7 channel 0, type 11 = manual,
# payload <BfffHB: type, roll, pitch, yaw rate, thrust (raw uint16), rate flag.
GENERIC_SETPOINT_CHANNEL = 0
TYPE_MANUAL = 11
MANUAL_PACKET = struct.Struct("<BfffHB")
LOG_PERIOD_MS = 10  # 100 Hz: the fastest a log block can run (10 ms period unit)
BLOCKS = (
    ("posvel", ("stateEstimate.x", "stateEstimate.y", "stateEstimate.z",
                "stateEstimate.vx", "stateEstimate.vy", "stateEstimate.vz")),
    ("quat", ("stateEstimate.qw", "stateEstimate.qx", "stateEstimate.qy", "stateEstimate.qz")),
    ("gyro", ("gyro.x", "gyro.y", "gyro.z")),
)
# One atomic 22-byte block: the firmware's compressed state (stabilizer.c stateCompressed):
# mm, mm/s, a quaternion packed by quatcompress.h, body rates in mrad/s.
Z_BLOCK = (
    ("stateEstimateZ.x", "int16_t"), ("stateEstimateZ.y", "int16_t"), ("stateEstimateZ.z", "int16_t"),
    ("stateEstimateZ.vx", "int16_t"), ("stateEstimateZ.vy", "int16_t"), ("stateEstimateZ.vz", "int16_t"),
    ("stateEstimateZ.quat", "uint32_t"),
    ("stateEstimateZ.rateRoll", "int16_t"), ("stateEstimateZ.ratePitch", "int16_t"),
    ("stateEstimateZ.rateYaw", "int16_t"),
)
SLOW_VARS = ("pm.vbat",)
# A firmware without the pm log group over udp:// (CrazySim's SITL build) gets this declared,
# simulated voltage: a 1S LiPo at full charge. See CrazyflieLink._battery_without_pm_group.
SITL_BATTERY_V = 4.2
SUPERVISOR_VAR = "supervisor.info"
RELAY_PARAM_ENABLE = "quadhil.enable"  # firmware_bridge/crazyflie_app: PARAM_GROUP quadhil
RELAY_PARAM_MODE = "quadhil.mode"  # 1 = motor relay, 2 = onboard policy
MOTOR_POWER_WRITE_S = 0.015  # one param write round trip on the radio, measured by Bitcraze users
PING_JOIN_TIMEOUT_S = 0.5  # cflib's ping thread sleeps 0.1 s between pings (link_statistics.py)
CLOSE_TIMEOUT_S = 3.0  # close_link waits up to 1 s for its incoming thread, and sends one setpoint

logger = logging.getLogger(__name__)


def _one_line(msg) -> str:
    """cflib's link errors carry a traceback: keep the message and the exception line."""
    lines = [ln.strip() for ln in str(msg).splitlines() if ln.strip()]
    head = lines[:2] if len(lines) > 1 and lines[1].startswith("Exception") else lines[:1]
    return " - ".join(head) or "unknown error"


def quat_decompress(comp: int) -> tuple[float, float, float, float]:
    """crazyflie-firmware src/utils/interface/quatcompress.h quatdecompress: (x, y, z, w).

    Bits 31..30 name the largest component (dropped); the other three follow, last first, as a
    sign bit and 9 bits of magnitude scaled by 1/sqrt(2)."""
    small_max = 1.0 / math.sqrt(2.0)
    mask = (1 << 9) - 1
    i_largest = (comp >> 30) & 0x3
    q = [0.0, 0.0, 0.0, 0.0]
    sum_sq = 0.0
    for i in (3, 2, 1, 0):
        if i != i_largest:
            mag = comp & mask
            neg = (comp >> 9) & 0x1
            comp >>= 10
            q[i] = small_max * mag / mask * (-1.0 if neg else 1.0)
            sum_sq += q[i] * q[i]
    q[i_largest] = math.sqrt(max(0.0, 1.0 - sum_sq))
    return q[0], q[1], q[2], q[3]


def manual_rate_packet(enc: dict):
    """The generic commander's manual setpoint with the rate flag, as a cflib CRTPPacket.

    cflib's ``Commander.send_setpoint_manual`` builds this same packet but takes thrust as a
    percentage mapped to PWM 10001..60000, so it cannot command less than ~20 % of the
    Crazyflie's hover thrust: a policy's "thrust -1" would climb. The firmware's manualDecoder
    takes the raw uint16 (crtp_commander_generic.c), so the bridge packs the packet itself, with
    cflib's pitch negation (cflib/crazyflie/commander.py), and sends it through cflib's link.
    """
    from cflib.crtp.crtpstack import CRTPPacket, CRTPPort

    pk = CRTPPacket()
    pk.port = CRTPPort.COMMANDER_GENERIC
    pk.channel = GENERIC_SETPOINT_CHANNEL
    pk.data = MANUAL_PACKET.pack(TYPE_MANUAL, enc["roll_rate_deg_s"], -enc["pitch_rate_deg_s"],
                                 enc["yaw_rate_deg_s"], enc["thrust_u16"], 1)
    return pk


def ctbr_to_manual_setpoint(cmd: CtbrCommand, vehicle) -> dict:
    """Contract ctbr command (N = 1) -> the manual setpoint's fields (deg/s, 16-bit thrust).

    The legacy power distribution adds roll/pitch/yaw to a per-motor base thrust
    (power_distribution_quadrotor.c), so collective thrust / 4 goes through the firmware's 16-bit
    command mapping (sim.command_path.ctbr_thrust_u16, the one the simulator trains through).
    ``thrust_pwm`` is that command before rounding (the name predates battery compensation).
    """
    collective_n = np.asarray(cmd.collective_thrust_n, dtype=np.float64).reshape(-1)[:1]
    count = float(thrust_to_firmware_units(collective_n / 4.0, vehicle)[0])
    rates_deg_s = np.degrees(np.asarray(cmd.body_rate_b, dtype=np.float64).reshape(-1)[:3])
    return {
        "roll_rate_deg_s": float(rates_deg_s[0]),
        "pitch_rate_deg_s": float(rates_deg_s[1]),
        "yaw_rate_deg_s": float(rates_deg_s[2]),
        "thrust_pwm": count,
        "thrust_u16": int(ctbr_thrust_u16(collective_n, vehicle)[0]),
    }


class CrazyflieLink(Link):
    """A Crazyflie (or its twin) reached through cflib."""

    firmware = "crazyflie-firmware"
    telemetry_rate_hz = 1000.0 / LOG_PERIOD_MS

    def __init__(self, uri: str, layout: str = "auto") -> None:
        super().__init__()
        if layout not in ("auto", "compressed", "float"):
            raise LinkError(f"telemetry layout must be auto, compressed or float, got {layout!r}")
        self.layout = layout
        self.uri = uri
        self._cf = None
        self._lock = threading.Lock()
        self._parts: dict[str, tuple[float, float, list]] = {}  # block -> (t_vehicle_s, t_arrival, values)
        self._connected = threading.Event()
        self._failed: str | None = None
        self._log_confs = []
        self.supervisor_info: int | None = None
        self.battery_source = "pm.vbat"
        self.motor_path: str | None = None  # "app_channel" | "motor_power_params" | None
        self._relay = None
        self._warned_params = False
        self._relay_seq = 0
        self._relay_active = False
        self.app_status: list = []  # StatusPacket (sim.sitl.app_channel) the app sent, in order

    # -- lifecycle -------------------------------------------------------------------------
    def connect(self, timeout_s: float) -> None:
        """Open the cflib link, wait for TOCs and params, start the log blocks."""
        import cflib.crtp
        from cflib.crazyflie import Crazyflie

        cflib.crtp.init_drivers()
        cache = Path(tempfile.gettempdir()) / "quadhil-cflib-toc-cache"  # TOCs are keyed by CRC
        cache.mkdir(exist_ok=True)
        cf = Crazyflie(rw_cache=str(cache))
        bound_ping_thread_stop(cf)
        cf.fully_connected.add_callback(lambda uri: self._connected.set())
        cf.connection_failed.add_callback(self._on_failed)
        cf.connection_lost.add_callback(self._on_lost)
        cf.appchannel.packet_received.add_callback(self._on_app_packet)
        self._cf = cf
        try:
            cf.open_link(self.uri)
        except Exception as exc:  # cflib raises plain Exception for a bad URI or missing driver
            raise LinkError(f"cannot open {self.uri}: {exc}") from None
        if not self._connected.wait(timeout_s) or self._failed:
            why = self._failed or f"no answer within {timeout_s:.0f} s"
            self.close()
            raise LinkError(f"cannot connect to a Crazyflie at {self.uri}: {why}")
        self._start_logging()

    def _on_failed(self, uri, msg) -> None:
        self._failed = _one_line(msg)
        self._connected.set()

    def _on_app_packet(self, data: bytes) -> None:
        """A packet from quadhil's app (STATUS); anything else on the app channel is ignored."""
        from sim.sitl import app_channel

        try:
            packet = app_channel.decode(bytes(data))
        except app_channel.PacketError:
            return
        if isinstance(packet, app_channel.StatusPacket):
            self.app_status.append(packet)

    def _on_lost(self, uri, msg) -> None:
        self.lost_reason = f"cflib reports connection lost: {_one_line(msg)}"
        self.telemetry.wake()

    @property
    def alive(self) -> bool:
        """False once cflib reports the connection lost, or has dropped its link without saying so.

        cflib 0.1.34 can drop it silently: when its LinkStatistics ping thread is the one whose send
        meets the dead socket, ``Crazyflie._link_error_cb`` runs in that thread, sets ``link`` to
        None, then raises from ``disconnected.call`` (``link_statistics.stop`` joins the ping thread
        from itself: "cannot join current thread") before it calls ``connection_lost``."""
        cf = self._cf
        if self.lost_reason is None and cf is not None and self._connected.is_set() and cf.link is None:
            self.lost_reason = "cflib dropped the link after a send or receive error without reporting it lost"
        return self.lost_reason is None

    def _toc_has(self, name: str, toc=None) -> bool:
        toc = self._cf.log.toc if toc is None else toc
        group, _, var = name.partition(".")
        return toc is not None and var in toc.toc.get(group, {})

    def _start_logging(self) -> None:
        from cflib.crazyflie.log import LogConfig

        z_vars = [name for name, _ in Z_BLOCK]
        float_vars = [v for _, vars_ in BLOCKS for v in vars_]
        if self.layout == "auto":
            self.layout = "float" if all(self._toc_has(v) for v in float_vars) else "compressed"
        if self.layout == "compressed":
            missing = [v for v in z_vars if not self._toc_has(v)]
        else:
            missing = [v for _, vars_ in BLOCKS for v in vars_ if not self._toc_has(v)]
        if missing:
            self.close()
            raise LinkError(f"the Crazyflie at {self.uri} has no log variable(s) {', '.join(missing)}")
        if self.layout == "compressed":
            conf = LogConfig(name="stateZ", period_in_ms=LOG_PERIOD_MS)
            for v, fetch in Z_BLOCK:
                conf.add_variable(v, fetch)
            self._add_block(conf, self._on_z_block)
        else:
            for name, vars_ in BLOCKS:
                conf = LogConfig(name=name, period_in_ms=LOG_PERIOD_MS)
                for v in vars_:
                    conf.add_variable(v, "float")
                self._add_block(conf, self._make_block_cb(name, vars_))
        slow = [v for v in SLOW_VARS if self._toc_has(v)]
        if not self._toc_has("pm.vbat"):
            self._battery_without_pm_group()
        if self._toc_has(SUPERVISOR_VAR):
            slow.append(SUPERVISOR_VAR)
        if slow:
            conf = LogConfig(name="slow", period_in_ms=100)
            for v in slow:
                conf.add_variable(v)
            self._add_block(conf, self._on_slow)

    def _battery_without_pm_group(self) -> None:
        """The battery rule for a firmware whose log TOC has no ``pm`` group. Every hardware build
        logs pm.vbat (crazyflie-firmware src/hal/src/pm_stm32f4.c, LOG_GROUP_START(pm)); CrazySim's
        SITL build (sitl-release) has no pm group, and cflib's udp:// driver reaches only software
        (cflib/crtp/udpdriver.py: "enables connecting to software-in-the-loop (SITL)"). So over
        udp:// the battery is declared simulated (SITL_BATTERY_V) and the flight log says so
        (``battery_source``), at the fixed 4.2 V that later SITL forks log from their pm stub
        (e.g. DynamicSwarms/crazyflie-firmware src/hal/src/pm_sitl.c); over radio:// or usb://
        nothing is read and the supervisor refuses to arm ("no battery reading")."""
        if self.uri.startswith("udp://"):
            self.battery_v = SITL_BATTERY_V
            self.battery_source = "declared: no pm log group (SITL firmware over udp://)"
        else:
            self.battery_source = "none: the firmware has no pm log group"

    def _on_z_block(self, timestamp, data, logconf) -> None:
        t_arr = time.monotonic()
        pos = np.array([data["stateEstimateZ.x"], data["stateEstimateZ.y"], data["stateEstimateZ.z"]]) * 1e-3
        vel = np.array([data["stateEstimateZ.vx"], data["stateEstimateZ.vy"], data["stateEstimateZ.vz"]]) * 1e-3
        qx, qy, qz, qw = quat_decompress(int(data["stateEstimateZ.quat"]))
        # stateCompressed.ratePitch carries the legacy pitch sign (-gyro.y): stabilizer.c
        omega = np.array([data["stateEstimateZ.rateRoll"], -data["stateEstimateZ.ratePitch"],
                          data["stateEstimateZ.rateYaw"]]) * 1e-3
        self.telemetry.publish(t_arr, timestamp / 1000.0, pos, vel, np.array([qw, qx, qy, qz]), omega)

    def _add_block(self, conf, cb) -> None:
        try:
            self._cf.log.add_config(conf)
        except (KeyError, AttributeError) as exc:
            self.close()
            raise LinkError(f"log block {conf.name!r} refused: {exc}") from None
        conf.data_received_cb.add_callback(cb)
        conf.start()
        self._log_confs.append(conf)

    def _on_slow(self, timestamp, data, logconf) -> None:
        if "pm.vbat" in data:
            self.battery_v = float(data["pm.vbat"])
        if SUPERVISOR_VAR in data:
            self.supervisor_info = int(data[SUPERVISOR_VAR])

    def _make_block_cb(self, name: str, vars_: tuple[str, ...]):
        def cb(timestamp, data, logconf) -> None:
            t_arr = time.monotonic()
            vals = [float(data[v]) for v in vars_]
            with self._lock:
                self._parts[name] = (timestamp / 1000.0, t_arr, vals)
                if len(self._parts) < len(BLOCKS):
                    return
                ts = [p[0] for p in self._parts.values()]
                if max(ts) - min(ts) > 0.9 * LOG_PERIOD_MS / 1000.0:
                    return  # pieces of different ticks: wait for the rest of this one
                pv = self._parts["posvel"][2]
                q = self._parts["quat"][2]
                g = self._parts["gyro"][2]
                t_vehicle = max(ts)
                self._parts = {}
            self.telemetry.publish(t_arr, t_vehicle, pv[0:3], pv[3:6], q, np.radians(g))

        return cb

    def close(self) -> None:
        """Stop log blocks and close the cflib link (idempotent), waiting at most CLOSE_TIMEOUT_S:
        a link cflib has wedged is left to its daemon threads rather than hang the bridge's exit."""
        cf, self._cf = self._cf, None
        if cf is None:
            return

        def _close() -> None:
            try:
                for conf in self._log_confs:
                    try:
                        conf.stop()
                    except Exception:  # noqa: BLE001 - the link may already be gone
                        pass
                cf.close_link()
            except Exception:  # noqa: BLE001
                pass

        closer = threading.Thread(target=_close, name="cflib-close", daemon=True)
        closer.start()
        closer.join(CLOSE_TIMEOUT_S)
        if closer.is_alive():
            logger.warning("cflib's close_link did not return within %.0f s; left to its daemon thread",
                           CLOSE_TIMEOUT_S)

    def action_modes(self) -> tuple[str, ...]:
        """ctbr always (stock firmware); motors when the motor relay app or motorPowerSet exists."""
        modes = ["ctbr"]
        if self._detect_motor_path() is not None:
            modes.append("motors")
        return tuple(modes)

    def _detect_motor_path(self) -> str | None:
        if self._cf is None:
            return None
        toc = self._cf.param.toc
        if self._toc_has(RELAY_PARAM_ENABLE, toc):
            from sim.sitl import app_channel  # the motor-relay packet codec (onboard issue)

            self._relay = app_channel
            self.motor_path = "app_channel"
        elif self._toc_has("motorPowerSet.enable", toc):
            self.motor_path = "motor_power_params"
        else:
            self.motor_path = None
        return self.motor_path

    def describe(self) -> dict:
        """Link facts for the log header."""
        return {"uri": self.uri, "firmware": self.firmware, "library": "cflib",
                "log_period_ms": LOG_PERIOD_MS, "telemetry_layout": self.layout,
                "motor_path": self.motor_path, "battery_source": self.battery_source}

    # -- flight ----------------------------------------------------------------------------
    def arm(self, hold_s: float, airborne: bool = False) -> None:
        """Unlock the commander (a zero setpoint, as cflib's examples do) and request arming."""
        self.dry_run = False
        cf = self._cf
        if cf is None:
            raise LinkError("link closed")
        cf.commander.send_setpoint(0, 0, 0, 0)  # thrust-lock release (commander.c: first setpoint must be 0)
        self._arming_request(True)
        if self.spec.action_mode == "motors" and self.motor_path == "motor_power_params":
            warnings.warn(motor_params_warning(), RuntimeWarning, stacklevel=2)
            self._warned_params = True

    def _arming_request(self, arm: bool) -> None:
        """Supervisor-port arming (CRTP protocol >= 12), else the legacy platform request."""
        cf = self._cf
        try:
            if cf.platform.get_protocol_version() >= 12:
                cf.supervisor.send_arming_request(arm)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    cf.platform.send_arming_request(arm)
        except Exception:  # noqa: BLE001 - firmware without an arming service is auto-armed
            pass

    def encode(self, command) -> dict:
        """Firmware-unit values for ``command``."""
        if isinstance(command, CtbrCommand):
            return ctbr_to_manual_setpoint(command, self.vehicle)
        if isinstance(command, MotorCommand):
            # motorPowerSet.m1..m4 replace the PWM after battery compensation (motors.c
            # motorsSetRatio), so these are PWM counts through the thrust curve, compensated here
            # for the cell's sag from pm.vbat as quadhil's app does on a build without it
            u = self.vehicle.pwm_for_thrust(np.asarray(command.thrust_n).reshape(-1)[:4])
            u = np.clip(u * raw_pwm_battery_scale(self.battery_v, self.vehicle), 0.0, 1.0)
            return {f"m{i + 1}_pwm": float(p) for i, p in enumerate(u * 65535.0)}
        raise TypeError(f"unknown command type {type(command).__name__}")

    def send(self, command) -> dict:
        """Send one command (nothing is sent in a dry run); return the encoded values."""
        enc = self.encode(command)
        if self.dry_run or self._cf is None:
            return enc
        cf = self._cf
        if isinstance(command, CtbrCommand):
            cf.send_packet(manual_rate_packet(enc))
        elif not self._motor_output_ours():
            return enc
        elif self.motor_path == "app_channel":
            # the relay takes the contract's normalized action: a = 2 f - 1 (sim.contract)
            action = 2.0 * np.asarray(command.thrust_fraction, dtype=np.float64).reshape(-1)[:4] - 1.0
            self._relay_seq = (self._relay_seq + 1) & 0xFFFF
            cf.appchannel.send_packet(self._relay.encode_motors(self._relay_seq, np.clip(action, -1.0, 1.0)))
        else:
            for i in range(1, 5):
                cf.param.set_value(f"motorPowerSet.m{i}", str(int(round(enc[f"m{i}_pwm"]))))
        return enc

    def stop_motors(self) -> None:
        """Stop setpoint, then hand control back to the firmware's other commanders."""
        cf = self._cf
        if cf is None or self.dry_run:
            return
        try:
            cf.commander.send_stop_setpoint()
            self._motor_output_to_stock()
            cf.commander.send_notify_setpoint_stop()
        except Exception:  # noqa: BLE001 - best effort on a dying link
            pass

    def failsafe_step(self, action: str, t_since_s: float, latest: Telemetry | None) -> bool:
        """Controlled descent: level attitude (legacy RPYT setpoint, angle mode), thrust below
        hover, closed on vertical speed while the estimate is fresh, open-loop ramp otherwise;
        motors stop on touch-down or after 3 s. ``motor_stop``: stop at once."""
        if self._cf is None or self.dry_run:
            return True
        if action == "motor_stop":
            self.stop_motors()
            return True
        self._motor_output_to_stock()
        if action == "blind_descent":  # the estimate has lost its position source: do not close on it
            latest = None
        fresh = latest is not None and time.monotonic() - latest.t_arrival_s < 0.1 and \
            np.all(np.isfinite(latest.pos_w)) and np.all(np.isfinite(latest.vel_w))
        if fresh and (latest.pos_w[2] < 0.05 or t_since_s > 3.0):
            self.stop_motors()
            return True
        if not fresh and t_since_s > 2.0:
            self.stop_motors()
            return True
        try:
            if fresh:
                self._level_vz(-0.4, float(latest.vel_w[2]))
            else:  # no usable estimate: level, and ramp the thrust down open loop
                self._level_thrust(self._hover_pwm() * max(0.6, 0.9 - 0.1 * t_since_s))
        except Exception:  # noqa: BLE001
            return True
        return False

    def _hover_pwm(self) -> float:
        return float(thrust_to_firmware_units(np.array([self.vehicle.weight_n / 4.0]), self.vehicle)[0])

    def _level_thrust(self, pwm: float) -> dict:
        """Legacy RPYT setpoint in angle mode: roll = pitch = 0 deg (the firmware's attitude loop
        levels the vehicle, crtp_commander_rpyt.c with flightmode.stabModeRoll/Pitch = 1), yaw
        rate 0, thrust in PWM counts."""
        thrust = int(min(60000, max(0, pwm)))
        self._cf.commander.send_setpoint(0.0, 0.0, 0.0, thrust)
        return {"roll_deg": 0.0, "pitch_deg": 0.0, "yaw_rate_deg_s": 0.0, "thrust_pwm": float(thrust)}

    def _level_vz(self, vz_ref_mps: float, vz_mps: float) -> dict:
        """Level attitude, thrust around hover closed on vertical speed (world z, m/s)."""
        scale = 1.0 + 0.8 * (vz_ref_mps - vz_mps)
        return self._level_thrust(self._hover_pwm() * min(1.3, max(0.6, scale)))

    def assist(self, vz_ref_mps: float, latest: Telemetry, hold_xy_w: np.ndarray | None = None) -> dict:
        """Climb or descend at ``vz_ref_mps`` (world z, m/s) on the firmware's own attitude
        control, for takeoff and touch-down, where a hover policy is out of its training range
        (ground contact); returns the wire values (nothing is sent in a dry run). The stock
        firmware without a position controller cannot hold ``hold_xy_w``: it only levels."""
        if self._cf is None or self.dry_run:
            return {"vz_ref_mps": vz_ref_mps}
        self._motor_output_to_stock()
        return {"vz_ref_mps": vz_ref_mps, **self._level_vz(vz_ref_mps, float(latest.vel_w[2]))}

    def _motor_output_ours(self) -> bool:
        """Switch the motors to our motor-level commands (relay app mode 1, or motorPowerSet) if
        they are not yet; False if that failed."""
        if self._relay_active:
            return True
        try:
            if self.motor_path == "app_channel":
                self._cf.param.set_value(RELAY_PARAM_MODE, "1")
                self._cf.param.set_value(RELAY_PARAM_ENABLE, "1")
            elif self.motor_path == "motor_power_params":
                self._cf.param.set_value("motorPowerSet.enable", "1")
            else:
                return False
        except Exception:  # noqa: BLE001 - a failing link: the supervisor will see it
            return False
        self._relay_active = True
        return True

    def _motor_output_to_stock(self) -> None:
        """Hand the motors back to the stock controller (relay app or motorPowerSet off), so
        commander setpoints (assisted takeoff/touch-down, failsafe descent) fly."""
        if not self._relay_active:
            return
        self._relay_active = False
        try:
            if self.motor_path == "app_channel":
                self._cf.param.set_value(RELAY_PARAM_ENABLE, "0")
            elif self.motor_path == "motor_power_params":
                self._cf.param.set_value("motorPowerSet.enable", "0")
        except Exception:  # noqa: BLE001 - best effort on a failing link
            pass

    # -- the app's onboard policy (mode 2) ----------------------------------------------------
    def onboard_setpoint(self, target_w: np.ndarray) -> dict:
        """Move the onboard policy's target (m, world ENU): one SETPOINT packet on the app channel
        (sim.sitl.app_channel; the app stores it in any mode). Nothing is sent in a dry run."""
        x, y, z = (float(v) for v in np.asarray(target_w, dtype=np.float64).reshape(3))
        if self._cf is None or self.dry_run:
            return {"x": x, "y": y, "z": z}
        if self.motor_path != "app_channel":
            raise LinkError(f"the Crazyflie at {self.uri} has no quadhil app (no {RELAY_PARAM_ENABLE} parameter)")
        from sim.sitl import app_channel

        self._relay_seq = (self._relay_seq + 1) & 0xFFFF
        self._cf.appchannel.send_packet(app_channel.encode_setpoint(self._relay_seq, (x, y, z)))
        return {"x": x, "y": y, "z": z}

    def onboard_start(self, target_w: np.ndarray) -> None:
        """Hand the motors to the app's onboard policy aimed at ``target_w``: the target first (so the
        policy's first tick already has it), then quadhil.mode = 2 and quadhil.enable = 1."""
        if self._cf is None or self.dry_run:
            return
        self.onboard_setpoint(target_w)
        self._cf.param.set_value(RELAY_PARAM_MODE, "2")
        self._cf.param.set_value(RELAY_PARAM_ENABLE, "1")

    def onboard_stop(self) -> None:
        """quadhil.enable = 0: the stock PID controller flies again, on the commander's setpoints
        (best effort on a failing link)."""
        if self._cf is None or self.dry_run:
            return
        try:
            self._cf.param.set_value(RELAY_PARAM_ENABLE, "0")
        except Exception:  # noqa: BLE001 - best effort on a failing link
            pass

    def send_external_pose(self, pos_w: np.ndarray, quat_wb: np.ndarray) -> dict:
        """A mocap pose to the firmware's estimator through cflib's ``Extpos.send_extpose``
        (cflib/crazyflie/localization.py: CRTP port 6 LOCALIZATION, channel 1, type EXT_POSE 8,
        ``<Bfffffff`` x, y, z, qx, qy, qz, qw), which crtp_localization_service.c extPoseHandler
        enqueues to the Kalman filter with locSrv.extPosStdDev / extQuatStdDev. The firmware's
        world frame is ours (x forward, y left, z up, body FLU); its quaternion is scalar-last."""
        w, x, y, z = (float(v) for v in np.asarray(quat_wb, dtype=np.float64).reshape(4))
        px, py, pz = (float(v) for v in np.asarray(pos_w, dtype=np.float64).reshape(3))
        cf = self._cf
        if cf is not None:
            cf.extpos.send_extpose(px, py, pz, x, y, z, w)
        return {"x": px, "y": py, "z": pz, "qx": x, "qy": y, "qz": z, "qw": w}

    def disarm(self) -> None:
        """Release the arming request (best effort)."""
        if self._cf is None or self.dry_run:
            return
        self._arming_request(False)


def bound_ping_thread_stop(cf) -> None:
    """Make cflib's ``link_statistics`` stop without an unbounded join of its ping thread.

    cflib 0.1.34 (crazyflie/__init__.py, crazyflie/link_statistics.py): a driver's send error calls
    ``Crazyflie._link_error_cb`` in the sending thread, inside ``send_packet`` and so holding
    ``_send_lock``; its ``disconnected`` callback runs ``Latency.stop``, which joins the ping thread,
    which waits for ``_send_lock`` to send its next ping: the sender (the bridge's control loop, or
    cflib's incoming thread answering a packet) and every later ``close_link`` block forever. Here
    ``stop`` sets the ping thread's stop event and waits for it at most PING_JOIN_TIMEOUT_S, never
    from the ping thread itself (which cflib's own ``stop`` tries, and raises "cannot join current
    thread" before it reports the connection lost); the thread then ends at its next turn, once
    the lock is free. Left alone if cflib's internals differ from that version's.
    """
    latency = getattr(getattr(cf, "link_statistics", None), "latency", None)
    if latency is None or not hasattr(latency, "_stop_event") or not hasattr(latency, "_ping_thread_instance"):
        return

    def stop() -> None:
        latency._stop_event.set()
        ping = latency._ping_thread_instance
        if ping is not None and ping is not threading.current_thread():
            ping.join(PING_JOIN_TIMEOUT_S)
        if ping is None or not ping.is_alive():
            latency._ping_thread_instance = None

    latency.stop = stop


def motor_params_warning() -> str:
    """The warning shown when motor commands fall back to parameters."""
    return (f"motor-level control falls back to motorPowerSet params: ~{1e3 * MOTOR_POWER_WRITE_S:.0f} ms "
            "per write; flash the motor-relay app for closed-loop motor control")

