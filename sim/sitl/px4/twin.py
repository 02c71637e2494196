"""The PX4 twin: x500 physics in real time behind PX4's MAVLink behaviour.

One process, one thread. Every 4 ms of wall time the loop advances the simulation to the
monotonic clock (1 kHz physics, 500 Hz rate loop, 250 Hz position/attitude loops and
commander), serves the UDP links (commands, setpoints, parameters) and sends the telemetry
that is due; between ticks it sleeps in select() on the sockets, so an idle twin uses a few
percent of a core. If the host stalls for more than 100 ms the lost time is dropped (counted
as ``overruns``) rather than simulated in a burst.

Frames: the simulator is ENU/FLU; MAVLink is NED/FRD. Every conversion goes through
``sim.frames`` (enu_to_ned, flu_to_frd, quat_enu_flu_to_ned_frd and their inverses).
"""

from __future__ import annotations

import math
import select
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from pymavlink.dialects.v20 import common as mavlink

from sim.dynamics import QuadSim
from sim.frames import (enu_to_ned, flu_to_frd, frd_to_flu, ned_to_enu, quat_enu_flu_to_ned_frd, quat_from_euler,
                        quat_ned_frd_to_enu_flu, quat_normalize, quat_to_euler, quat_to_rotmat)
from sim.frames import quat_from_axis_angle, quat_multiply  # the vision-fed estimate
from sim.randomization import RealismConfig, Wind, noisy_estimate
from sim.vehicle import GRAVITY_MPS2, Vehicle, load_vehicle
from sim.sitl.px4 import commander as cmdr
from sim.sitl.px4.commander import Commander
from sim.sitl.px4.controllers import Estimate, Px4Cascade, Setpoint
from sim.sitl.px4.land_detector import LandInputs
from sim.sitl.px4.links import LinkConfig, MavlinkUdpLink
from sim.sitl.px4.params import PARAM_DEFS, ParamError, ParamStore, decode_value, encode_value
from sim.sitl.px4.modes import decode_custom_mode
from sim.sitl.px4.streams import (MAV_STATE_ACTIVE, MAV_STATE_CRITICAL, MAV_STATE_STANDBY, NAMES_BY_ID, Snapshot,
                                  StreamSchedule, build)

TICK_S = 0.004
RATE_LOOP_S = 0.002
MAX_CATCH_UP_TICKS = 25
HOME_LAT_DEG = 47.397742  # PX4 SITL default home (PX4_HOME_LAT/LON/ALT, Zurich)
HOME_LON_DEG = 8.545594
HOME_AMSL_M = 488.0
EARTH_RADIUS_M = 6371000.0
MAG_NED_GAUSS = np.array([0.21523, 0.00771, 0.42741])  # WMM at the PX4 SITL home, gauss
COMP_ID_AUTOPILOT = 1
PX4_VERSION = (1 << 24) | (14 << 16) | (0 << 8) | 255  # v1.14.0 official

# MAV_CMD handled by the mavlink module itself (mavlink_receiver.cpp), not the commander
CMD_SET_MESSAGE_INTERVAL = 511
CMD_GET_MESSAGE_INTERVAL = 510
CMD_REQUEST_MESSAGE = 512
CMD_REQUEST_PROTOCOL_VERSION = 519
CMD_REQUEST_AUTOPILOT_CAPABILITIES = 520
CMD_GET_HOME_POSITION = 410
# SET_ATTITUDE_TARGET / SET_POSITION_TARGET_LOCAL_NED type_mask bits (common.xml)
ATT_IGNORE_ROLL_RATE, ATT_IGNORE_PITCH_RATE, ATT_IGNORE_YAW_RATE = 1, 2, 4
ATT_THRUST_BODY_SET, ATT_IGNORE_THROTTLE, ATT_IGNORE_ATTITUDE = 32, 64, 128
POS_IGNORE = {"x": 1, "y": 2, "z": 4, "vx": 8, "vy": 16, "vz": 32, "afx": 64, "afy": 128, "afz": 256}
POS_FORCE_SET, POS_IGNORE_YAW, POS_IGNORE_YAW_RATE = 512, 1024, 2048
MAV_FRAME_LOCAL_NED, MAV_FRAME_BODY_NED = 1, 8


@dataclass
class TwinConfig:
    """How to start a twin. Ports follow px4-rc.mavlink for ``instance``; 0 picks that default."""

    vehicle: str = "x500"
    instance: int = 0
    sysid: int = 0  # 0 -> 1 + instance (MAV_SYS_ID)
    bind_host: str = "127.0.0.1"
    remote_host: str = "127.0.0.1"
    onboard_listen_port: int = 0  # 14580 + instance
    onboard_remote_port: int = 0  # 14540 + instance
    gcs_listen_port: int = 0  # 18570 + instance
    gcs_remote_port: int = 0  # 14550
    gcs: bool = True
    start_enu_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    seed: int = 0
    noise: bool = False
    wind_mps: tuple[float, float, float] | None = None
    gust_std_mps: float = 0.0
    ekf_init_s: float = 1.0
    battery_fraction: float = 1.0
    params: dict = field(default_factory=dict)
    controller: str = "px4"
    # "vision": EKF2 fed external vision (VISION_POSITION_ESTIMATE): the estimate follows those
    # messages (Px4Twin._vision_fed); "truth": the simulator's state (plus noise with ``noise``)
    estimate: str = "truth"

    def resolved(self) -> "TwinConfig":
        """A copy with the PX4 SITL default ports and sysid filled in."""
        i = self.instance
        return TwinConfig(**{**self.__dict__,
                             "sysid": self.sysid or 1 + i,
                             "onboard_listen_port": self.onboard_listen_port or 14580 + i,
                             "onboard_remote_port": self.onboard_remote_port or (14540 + i if i <= 9 else 14549),
                             "gcs_listen_port": self.gcs_listen_port or 18570 + i,
                             "gcs_remote_port": self.gcs_remote_port or 14550})


CONTROLLERS = {"px4": lambda vehicle, params: Px4Cascade(vehicle, params)}


class Px4Twin:
    """One simulated PX4 quadrotor. ``tick()`` advances 4 ms of simulated time; ``run()`` does
    that in real time while serving the links."""

    def __init__(self, config: TwinConfig, open_links: bool = True):
        self.config = config.resolved()
        c = self.config
        self.vehicle: Vehicle = load_vehicle(c.vehicle)
        self.rng = np.random.default_rng(c.seed)
        self.params = ParamStore({"MAV_SYS_ID": c.sysid, **c.params})
        self.sysid = int(self.params["MAV_SYS_ID"])
        self.sim = QuadSim.create(self.vehicle, 1)
        self.start_w = np.asarray(c.start_enu_m, dtype=np.float64)
        self.sim.state.pos_w[0] = self.start_w
        self.commander = Commander(self.params, self.start_w, ekf_init_s=c.ekf_init_s)
        if c.controller.startswith("mc_nn:"):  # mc_nn_control flying an exported px4-nn network (docs/onboard.md)
            from sim.sitl.px4.nn_control import NeuralControl

            self.controller = NeuralControl(self.vehicle, self.params, c.controller.split(":", 1)[1])
            if "THR_MDL_FAC" not in c.params:  # as after loading the export's px4_params.txt
                self.params.set("THR_MDL_FAC", self.controller.defaults["THR_MDL_FAC"])
        elif c.controller not in CONTROLLERS:
            raise ValueError(f"unknown controller {c.controller!r}; known: {sorted(CONTROLLERS)}, mc_nn:PATH.npz")
        else:
            self.controller = CONTROLLERS[c.controller](self.vehicle, self.params)
        self.wind = None
        if c.wind_mps is not None:
            self.wind = Wind(1, RealismConfig(wind_mean_mps=tuple(c.wind_mps), wind_gust_std_mps=c.gust_std_mps),
                             self.rng)
        self.battery_fraction = float(c.battery_fraction)
        self.commander.battery_fraction = self.battery_fraction
        self.battery_consumed_mah = 0.0
        self.battery_a = 0.0
        self.ticks = 0
        self.overruns = 0
        self.counters: Counter = Counter()
        self.setpoint = Setpoint("idle")
        self._prev_vel_w = np.zeros(3)
        self._accel_w = np.zeros(3)
        self._motor_cmd_n = np.zeros(4)
        if c.estimate not in ("truth", "vision"):
            raise ValueError(f"estimate must be truth or vision, got {c.estimate!r}")
        self.vision: tuple[float, np.ndarray, np.ndarray] | None = None  # (twin s, pos ENU, quat ENU/FLU)
        self.tick_hooks: list = []  # callables(twin) run at the start of every tick (mocap stream)
        self.estimate = self._estimate()
        self.links: list[MavlinkUdpLink] = []
        self.schedules: dict[str, StreamSchedule] = {}
        if open_links:
            self._open_links()

    # ---- links -----------------------------------------------------------------------------

    def _open_links(self) -> None:
        c = self.config
        cfgs = [LinkConfig("onboard", c.bind_host, c.onboard_listen_port, c.remote_host, c.onboard_remote_port,
                           "onboard")]
        if c.gcs:
            cfgs.append(LinkConfig("gcs", c.bind_host, c.gcs_listen_port, c.remote_host, c.gcs_remote_port, "normal"))
        try:
            for cfg in cfgs:
                self.links.append(MavlinkUdpLink(cfg, self.sysid, COMP_ID_AUTOPILOT))
                self.schedules[cfg.name] = StreamSchedule(cfg.mode)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        """Close every socket."""
        for link in self.links:
            link.close()
        self.links = []

    # ---- simulation ------------------------------------------------------------------------

    @property
    def time_s(self) -> float:
        """Simulated time since boot, s."""
        return self.ticks * TICK_S

    def _estimate(self) -> Estimate:
        s = self.sim.state
        pos, vel, quat, omega = s.pos_w, s.vel_w, s.quat_wb, s.omega_b
        if self.config.noise:
            pos, vel, quat, omega = noisy_estimate(pos, vel, quat, omega, self.vehicle, self.rng)
        if self.config.estimate == "vision":
            return self._vision_fed(vel[0], quat[0], omega[0])
        return Estimate(pos[0].copy(), vel[0].copy(), quat[0].copy(), omega[0].copy())

    def _vision_fed(self, vel, quat, omega) -> Estimate:
        """EKF2 fusing external vision position and yaw (EKF2_EV_CTRL 11, EKF2_HGT_REF vision) with
        mocap-grade noise: it sits on the last vision pose, predicted forward by the IMU (here the
        twin's velocity and body rate) for the pose's age. Before the first: the origin, IMU attitude."""
        if self.vision is None:
            return Estimate(np.zeros(3), vel.copy(), quat.copy(), omega.copy())
        t_s, p, q = self.vision
        age_s = max(self.time_s - t_s, 0.0)
        q = quat_multiply(q, quat_from_axis_angle(omega * age_s))
        return Estimate(p + age_s * vel, vel.copy(), q / np.linalg.norm(q), omega.copy())

    def _on_vision_position_estimate(self, msg, link) -> None:
        """mavlink_receiver.cpp handle_message_vision_position_estimate: x, y, z in NED, attitude
        from roll, pitch, yaw (body FRD); converted to ENU/FLU once here."""
        vals = (msg.x, msg.y, msg.z, msg.roll, msg.pitch, msg.yaw)
        if not all(math.isfinite(v) for v in vals):
            self.counters["vision_nonfinite"] += 1
            return
        pos = ned_to_enu(np.array(vals[:3], dtype=np.float64))
        q = quat_ned_frd_to_enu_flu(quat_from_euler(*vals[3:]))
        self.vision = (self.time_s, pos, q)
        self.counters["rx_vision_position_estimate"] += 1

    def _land_inputs(self) -> LandInputs:
        """What PX4's land detector sees this cycle (from the previous cycle's controller output)."""
        est, ctl = self.estimate, self.controller
        specific_force = self._accel_w + np.array([0.0, 0.0, GRAVITY_MPS2])
        throttle = getattr(ctl, "throttle", float(np.sum(self._motor_cmd_n)) / (4 * self.vehicle.max_thrust_n))
        hte = getattr(ctl, "hte", None)
        return LandInputs(
            armed=self.commander.armed, vel_w=tuple(est.vel_w), rate_roll_pitch_rad_s=float(np.linalg.norm(est.omega_b[:2])),
            specific_force_mps2=float(np.linalg.norm(specific_force)), throttle=float(throttle),
            climb_rate_controlled=bool(getattr(ctl, "climb_rate_controlled", False)),
            vz_setpoint_mps=float(getattr(ctl, "vz_setpoint_mps", math.nan)),
            hover_thrust=float(getattr(ctl, "hover_thrust", self.params["MPC_THR_HOVER"])),
            hover_estimate_valid=bool(hte is not None and hte.valid))

    def tick(self) -> None:
        """Advance 4 ms: commander, controllers (rate loop at 500 Hz), physics at 1 kHz."""
        for hook in self.tick_hooks:
            hook(self)
        self.commander.battery_fraction = self.battery_fraction
        self.setpoint = self.commander.update(self.time_s, self.estimate, self._land_inputs())
        if hasattr(self.controller, "update_status"):
            self.controller.update_status(self.time_s, TICK_S, self.commander.armed, self.commander.landed,
                                          self.setpoint, self.estimate, float(self.estimate.pos_w[2] - self.start_w[2]),
                                          float(self._accel_w[2]), self.commander.land_detector.ground_contact.state)
        if self.wind is not None:
            self.sim.disturbance.wind_w[:] = self.wind.step(TICK_S)
        n_inner = int(round(TICK_S / RATE_LOOP_S))
        substeps = int(round(RATE_LOOP_S * self.sim.physics_rate_hz))
        for _ in range(n_inner):
            thrust = self.controller.motor_thrust_n(self.estimate, self.setpoint, RATE_LOOP_S)
            if not self.commander.armed:
                thrust = np.zeros(4)
            self._motor_cmd_n = thrust
            self.sim.step(thrust[None, :], substeps)
            self.estimate = self._estimate()
        vel = self.sim.state.vel_w[0]
        self._accel_w = (vel - self._prev_vel_w) / TICK_S
        self._prev_vel_w = vel.copy()
        self._battery(TICK_S)
        self.ticks += 1

    def _battery(self, dt_s: float) -> None:
        b = self.vehicle.battery
        if self.commander.armed:
            load = float(np.sum(self.sim.state.thrust_n[0])) / self.vehicle.weight_n
            self.battery_a = b.hover_current_a * max(load, 0.05) ** 1.5
        else:
            self.battery_a = 0.3  # autopilot, receivers, ESCs idle
        used_mah = self.battery_a * dt_s / 3.6
        self.battery_consumed_mah += used_mah
        self.battery_fraction = max(0.0, self.battery_fraction - used_mah / b.capacity_mah)

    def battery_voltage_v(self) -> float:
        """Terminal voltage: open-circuit linear in charge, ohmic sag."""
        b = self.vehicle.battery
        return b.voltage_empty_v + (b.voltage_full_v - b.voltage_empty_v) * self.battery_fraction \
            - self.battery_a * b.internal_resistance_ohm

    # ---- telemetry -------------------------------------------------------------------------

    def system_status(self) -> int:
        """HEARTBEAT.system_status: STANDBY disarmed, ACTIVE armed, CRITICAL in failsafe."""
        if not self.commander.armed:
            return MAV_STATE_STANDBY
        return MAV_STATE_CRITICAL if self.commander.failsafe else MAV_STATE_ACTIVE

    def snapshot(self) -> Snapshot:
        """The vehicle in PX4's frames (NED/FRD) for telemetry; converted with sim.frames."""
        est = self.estimate
        pos_rel_enu = est.pos_w - self.start_w  # PX4's local origin is where the EKF started
        q_ned = quat_enu_flu_to_ned_frd(est.quat_wb)
        rot_ned = quat_to_rotmat(q_ned)
        vel_ned = enu_to_ned(est.vel_w)
        accel_flu = quat_to_rotmat(est.quat_wb).T @ (self._accel_w + np.array([0.0, 0.0, GRAVITY_MPS2]))
        alt_amsl = HOME_AMSL_M + est.pos_w[2]
        north, east = est.pos_w[1], est.pos_w[0]
        c = self.commander
        state = c.nav_state
        return Snapshot(
            time_boot_ms=int(self.time_s * 1000),
            time_usec=int(self.time_s * 1e6),
            pos_ned=enu_to_ned(pos_rel_enu),
            vel_ned=vel_ned,
            q_ned=q_ned,
            euler_ned=quat_to_euler(q_ned),
            rates_frd=flu_to_frd(est.omega_b),
            accel_frd=flu_to_frd(accel_flu),
            gyro_frd=flu_to_frd(est.omega_b),
            mag_frd_gauss=rot_ned.T @ MAG_NED_GAUSS,
            pressure_hpa=1013.25 * (1.0 - 2.25577e-5 * alt_amsl) ** 5.25588,
            temperature_c=25.0,
            alt_amsl_m=alt_amsl,
            home_amsl_m=HOME_AMSL_M + self.start_w[2],
            lat_deg=HOME_LAT_DEG + math.degrees(north / EARTH_RADIUS_M),
            lon_deg=HOME_LON_DEG + math.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(HOME_LAT_DEG)))),
            home_lat_deg=HOME_LAT_DEG + math.degrees(self.start_w[1] / EARTH_RADIUS_M),
            home_lon_deg=HOME_LON_DEG + math.degrees(
                self.start_w[0] / (EARTH_RADIUS_M * math.cos(math.radians(HOME_LAT_DEG)))),
            battery_v=self.battery_voltage_v(),
            battery_a=self.battery_a,
            battery_remaining=self.battery_fraction,
            battery_consumed_mah=self.battery_consumed_mah,
            battery_cells=self.vehicle.battery.cells,
            armed=c.armed,
            custom_mode=state.custom_mode,
            base_mode=state.base_mode(c.armed),
            system_status=self.system_status(),
            landed_state=c.landed_state(),
            thrust_fraction=float(np.sum(self._motor_cmd_n)) / (4 * self.vehicle.max_thrust_n),
            vel_body_frd=rot_ned.T @ vel_ned,
            pos_var_m2=self.vehicle.sensor_noise.position_m ** 2,
            vel_var_m2s2=self.vehicle.sensor_noise.velocity_mps ** 2,
            att_var_rad2=self.vehicle.sensor_noise.attitude_rad ** 2,
        )

    def broadcast(self, msg) -> None:
        """Send one message on every link (COMMAND_ACK and STATUSTEXT go everywhere, as PX4's
        uORB-fed streams do)."""
        for link in self.links:
            link.send(msg)

    def _send_statustexts(self) -> None:
        for severity, text in self.commander.messages:
            for link in self.links:
                link.send(link.mav.statustext_encode(severity, text.encode()[:50]))
        self.commander.messages.clear()

    def send_due_streams(self) -> None:
        """Send the telemetry that is due on each link."""
        snap = None
        for link in self.links:
            names = self.schedules[link.config.name].due(self.time_s)
            if not names:
                continue
            if snap is None:
                snap = self.snapshot()
            for name in names:
                msg = build(name, snap, link.mav)
                if msg is not None:
                    link.send(msg)

    # ---- incoming messages -----------------------------------------------------------------

    def _ack(self, link: MavlinkUdpLink, msg, command: int, result: int) -> None:
        src = msg.get_srcSystem(), msg.get_srcComponent()
        for out in self.links:
            out.send(out.mav.command_ack_encode(command, result, 0, 0, *src))

    def _for_us(self, target_system: int, target_component: int, allow_broadcast: bool = True) -> bool:
        sys_ok = target_system == self.sysid or (allow_broadcast and target_system == 0)
        comp_ok = target_component in (COMP_ID_AUTOPILOT, 0)
        return sys_ok and comp_ok

    def handle(self, msg, link: MavlinkUdpLink) -> None:
        """Dispatch one received message. Never raises for malformed content: it is counted."""
        kind = msg.get_type()
        handler = getattr(self, f"_on_{kind.lower()}", None)
        if handler is None:
            self.counters["ignored_" + kind] += 1
            return
        try:
            handler(msg, link)
        except (ValueError, TypeError, OverflowError, ZeroDivisionError) as exc:
            self.counters["rejected_malformed"] += 1
            self.commander.messages.append((cmdr.SEV_WARNING, f"{kind} rejected: {exc}"[:50]))
        except Exception:  # a twin bug must not take the vehicle down: count it, show it once
            self.counters["handler_errors"] += 1
            if self.counters["handler_errors"] == 1:
                traceback.print_exc()

    def _on_heartbeat(self, msg, link) -> None:
        self.counters["rx_heartbeat"] += 1

    def _on_command_long(self, msg, link) -> None:
        self._command(msg, link, (msg.param1, msg.param2, msg.param3, msg.param4, msg.param5, msg.param6, msg.param7))

    def _on_command_int(self, msg, link) -> None:
        self._command(msg, link, (msg.param1, msg.param2, msg.param3, msg.param4, msg.x / 1e7, msg.y / 1e7, msg.z))

    def _command(self, msg, link, params: tuple) -> None:
        command = int(msg.command)
        broadcast_ok = command in (CMD_REQUEST_AUTOPILOT_CAPABILITIES, CMD_REQUEST_PROTOCOL_VERSION)
        if broadcast_ok:
            target_ok = msg.target_system in (0, self.sysid)
        else:  # mavlink_receiver.cpp evaluate_target_ok
            target_ok = msg.target_system == self.sysid and msg.target_component in (COMP_ID_AUTOPILOT, 0)
        if not target_ok:
            self.counters["rx_wrong_target"] += 1
            self._ack(link, msg, command, cmdr.FAILED)
            return
        if msg.get_srcSystem() == self.sysid and msg.get_srcComponent() == COMP_ID_AUTOPILOT:
            self.counters["rx_own_id"] += 1  # "ignoring CMD with same SYS/COMP ID"
            return
        self.counters[f"cmd_{command}"] += 1
        result = self._mavlink_command(command, params, link)
        if result is None:
            result = self.commander.handle_command(command, params)
            if result == cmdr.UNSUPPORTED:
                self.counters["cmd_unsupported"] += 1
        self._ack(link, msg, command, result)
        self._send_statustexts()

    def _mavlink_command(self, command: int, params: tuple, link) -> int | None:
        """Commands mavlink_receiver answers itself; None passes it to the commander."""
        p1, p2 = params[0], params[1]
        if command == CMD_SET_MESSAGE_INTERVAL:
            if not (math.isfinite(p1) and math.isfinite(p2)):
                return cmdr.FAILED
            ok = self.schedules[link.config.name].set_interval(int(p1 + 0.5), p2)
            return cmdr.ACCEPTED if ok else cmdr.FAILED
        if command == CMD_GET_MESSAGE_INTERVAL:
            if not math.isfinite(p1):
                return cmdr.FAILED
            mid = int(p1)
            link.send(link.mav.message_interval_encode(mid, self.schedules[link.config.name].interval_us(mid)))
            return cmdr.ACCEPTED
        if command == CMD_REQUEST_MESSAGE:
            if not math.isfinite(p1):
                return cmdr.FAILED
            return cmdr.ACCEPTED if self._send_message_once(int(p1 + 0.5), link) else cmdr.FAILED
        if command == CMD_REQUEST_AUTOPILOT_CAPABILITIES:
            self._send_message_once(mavlink.MAVLINK_MSG_ID_AUTOPILOT_VERSION, link)
            return cmdr.ACCEPTED
        if command == CMD_REQUEST_PROTOCOL_VERSION:
            return cmdr.UNSUPPORTED  # PROTOCOL_VERSION (300) is not in this pymavlink dialect build
        if command == CMD_GET_HOME_POSITION:
            self._send_message_once(mavlink.MAVLINK_MSG_ID_HOME_POSITION, link)
            return cmdr.ACCEPTED
        return None

    def _send_message_once(self, message_id: int, link) -> bool:
        if message_id == mavlink.MAVLINK_MSG_ID_AUTOPILOT_VERSION:
            caps = 0
            for name in ("MISSION_FLOAT", "PARAM_FLOAT", "MISSION_INT", "COMMAND_INT", "PARAM_ENCODE_BYTEWISE",
                         "SET_ATTITUDE_TARGET", "SET_POSITION_TARGET_LOCAL_NED", "MAVLINK2"):
                caps |= getattr(mavlink, f"MAV_PROTOCOL_CAPABILITY_{name}", 0)
            link.send(link.mav.autopilot_version_encode(caps, PX4_VERSION, PX4_VERSION, 0, 0, [0] * 8, [0] * 8,
                                                        [0] * 8, 0, 0, 0x5154 << 16 | self.sysid))
            return True
        name = NAMES_BY_ID.get(message_id)
        if name is None:
            return False
        link.send(build(name, self.snapshot(), link.mav))
        return True

    def _on_set_mode(self, msg, link) -> None:
        if msg.target_system not in (0, self.sysid):
            self.counters["rx_wrong_target"] += 1
            return
        main, sub = decode_custom_mode(msg.custom_mode)
        result = self.commander.handle_command(cmdr.CMD_DO_SET_MODE, (float(msg.base_mode), float(main), float(sub)))
        self._ack(link, msg, cmdr.CMD_DO_SET_MODE, result)
        self._send_statustexts()

    def _on_set_attitude_target(self, msg, link) -> None:
        """mavlink_receiver.cpp handle_message_set_attitude_target, in ENU/FLU."""
        if not self._for_us(msg.target_system, msg.target_component):
            self.counters["rx_wrong_target"] += 1
            return
        mask = int(msg.type_mask)
        attitude = not mask & ATT_IGNORE_ATTITUDE
        body_rates = not mask & ATT_IGNORE_ROLL_RATE and not mask & ATT_IGNORE_PITCH_RATE
        if mask & ATT_THRUST_BODY_SET:
            thrust = -float(getattr(msg, "thrust_body", [0.0, 0.0, 0.0])[2])
        elif not mask & ATT_IGNORE_THROTTLE:
            thrust = float(msg.thrust)
        else:
            thrust = 0.0  # PX4 leaves thrust_body zero-initialized
        if not math.isfinite(thrust):
            self.counters["rx_nan_setpoint"] += 1
            return
        thrust = min(max(thrust, 0.0), 1.0)
        yaw_rate = math.nan if mask & ATT_IGNORE_YAW_RATE else float(msg.body_yaw_rate)
        if attitude:
            q = np.asarray(msg.q, dtype=np.float64)
            if not np.all(np.isfinite(q)) or not 0.5 < np.linalg.norm(q) < 1.5:
                self.counters["rx_nan_setpoint"] += 1
                return
            q_enu = quat_ned_frd_to_enu_flu(quat_normalize(q))
            yaw_rate_enu = -yaw_rate if math.isfinite(yaw_rate) else math.nan  # about down -> about up
            sp = Setpoint("attitude", quat_wb=q_enu, thrust_fraction=thrust, yawspeed_rad_s=yaw_rate_enu)
        elif body_rates:
            rates_frd = np.array([msg.body_roll_rate, msg.body_pitch_rate, 0.0 if math.isnan(yaw_rate) else yaw_rate])
            if not np.all(np.isfinite(rates_frd)):
                self.counters["rx_nan_setpoint"] += 1
                return
            sp = Setpoint("rates", rate_b=frd_to_flu(rates_frd), thrust_fraction=thrust)
        else:
            self.counters["rx_ignored_setpoint"] += 1
            return
        self.counters["rx_offboard_setpoints"] += 1
        self.commander.offboard_setpoint(sp)

    def _on_set_position_target_local_ned(self, msg, link) -> None:
        """mavlink_receiver.cpp handle_message_set_position_target_local_ned, in ENU."""
        if not self._for_us(msg.target_system, msg.target_component):
            self.counters["rx_wrong_target"] += 1
            return
        mask = int(msg.type_mask)

        def field3(names):
            return np.array([math.nan if mask & POS_IGNORE[n] else float(getattr(msg, n)) for n in names])

        pos_ned, vel_ned, acc_ned = field3(("x", "y", "z")), field3(("vx", "vy", "vz")), field3(("afx", "afy", "afz"))
        if msg.coordinate_frame == MAV_FRAME_LOCAL_NED:
            pos_w = ned_to_enu(pos_ned) + self.start_w
            vel_w, acc_w = ned_to_enu(vel_ned), ned_to_enu(acc_ned)
        elif msg.coordinate_frame == MAV_FRAME_BODY_NED:
            # PX4 rotates body velocity/acceleration only when none of the three is ignored
            # (ignore_velocity = type_mask & (VX|VY|VZ)); NaN values stay NaN after rotation
            rot = quat_to_rotmat(quat_enu_flu_to_ned_frd(self.estimate.quat_wb))
            ignore_vel = mask & (POS_IGNORE["vx"] | POS_IGNORE["vy"] | POS_IGNORE["vz"])
            ignore_acc = mask & (POS_IGNORE["afx"] | POS_IGNORE["afy"] | POS_IGNORE["afz"])
            vel_w = np.full(3, math.nan) if ignore_vel else ned_to_enu(rot @ vel_ned)
            acc_w = np.full(3, math.nan) if ignore_acc else ned_to_enu(rot @ acc_ned)
            pos_w = np.full(3, math.nan)
        else:
            self.counters["rx_unsupported_frame"] += 1
            self.commander.messages.append(
                (cmdr.SEV_CRITICAL, f"SET_POSITION_TARGET_LOCAL_NED coordinate frame {msg.coordinate_frame} unsupported"))
            return
        has_pos, has_vel, has_acc = (bool(np.any(np.isfinite(v))) for v in (pos_w, vel_w, acc_w))
        if has_acc and mask & POS_FORCE_SET:
            self.commander.messages.append((cmdr.SEV_CRITICAL, "SET_POSITION_TARGET_LOCAL_NED force not supported"))
            return
        if not (has_pos or has_vel or has_acc):
            self.counters["rx_nan_setpoint"] += 1
            self.commander.messages.append((cmdr.SEV_CRITICAL, "SET_POSITION_TARGET_LOCAL_NED invalid"))
            return
        yaw = math.nan if mask & POS_IGNORE_YAW else float(msg.yaw)
        yaw_enu = float(quat_to_euler(quat_ned_frd_to_enu_flu(quat_from_euler(0.0, 0.0, yaw)))[2]) \
            if math.isfinite(yaw) else math.nan
        yaw_rate = math.nan if mask & POS_IGNORE_YAW_RATE else float(msg.yaw_rate)
        yaw_rate_enu = float(ned_to_enu(np.array([0.0, 0.0, yaw_rate]))[2]) if math.isfinite(yaw_rate) else math.nan
        sp = Setpoint("trajectory", pos_w=pos_w, vel_w=vel_w, acc_w=acc_w, yaw_rad=yaw_enu, yawspeed_rad_s=yaw_rate_enu)
        self.counters["rx_offboard_setpoints"] += 1
        self.commander.offboard_setpoint(sp)

    def _on_set_actuator_control_target(self, msg, link) -> None:
        # PX4 v1.14 removed this handler (direct actuator control over MAVLink is gone; MAVSDK
        # issue 2578): the message is dropped without effect and without refreshing offboard.
        self.counters["rx_actuator_control_ignored"] += 1

    def _param_value(self, link, name: str) -> None:
        d = PARAM_DEFS[name]
        link.send(link.mav.param_value_encode(name.encode(), encode_value(self.params[name], d.type), d.type,
                                              len(self.params), self.params.index(name)))

    def _on_param_request_list(self, msg, link) -> None:
        if msg.target_system != self.sysid or msg.target_component not in (COMP_ID_AUTOPILOT, 0):
            self.counters["rx_wrong_target"] += 1
            return
        for name in self.params.names:
            self._param_value(link, name)

    @staticmethod
    def _param_name(raw) -> str:
        if isinstance(raw, bytes):
            raw = raw.decode("ascii", errors="replace")
        return str(raw).rstrip("\x00")

    def _on_param_request_read(self, msg, link) -> None:
        if msg.target_system != self.sysid or msg.target_component not in (COMP_ID_AUTOPILOT, 0):
            self.counters["rx_wrong_target"] += 1
            return
        if msg.param_index >= 0:
            if msg.param_index >= len(self.params):
                self.counters["rx_param_unknown"] += 1
                return
            name = self.params.names[msg.param_index]
        else:
            name = self._param_name(msg.param_id)
        if name not in PARAM_DEFS:
            self.counters["rx_param_unknown"] += 1
            self.commander.messages.append((cmdr.SEV_INFO, f"[pm] unknown param: {name}"[:50]))
            self._send_statustexts()
            return
        self._param_value(link, name)

    def _on_param_set(self, msg, link) -> None:
        if msg.target_system != self.sysid or msg.target_component not in (COMP_ID_AUTOPILOT, 0):
            self.counters["rx_wrong_target"] += 1
            return
        name = self._param_name(msg.param_id)
        d = PARAM_DEFS.get(name)
        if d is None:
            self.counters["rx_param_unknown"] += 1
            self.commander.messages.append((cmdr.SEV_INFO, f"[pm] unknown param: {name}"[:50]))
            self._send_statustexts()
            return
        wire_type = msg.param_type if msg.param_type in (6, 9) else d.type
        try:
            self.params.set(name, decode_value(msg.param_value, wire_type))
        except ParamError as exc:
            self.counters["rx_param_rejected"] += 1
            self.commander.messages.append((cmdr.SEV_WARNING, str(exc)[:50]))
        if name == "MAV_SYS_ID":
            self.counters["sysid_change_deferred"] += 1  # PX4 applies it after reboot too
        self._param_value(link, name)
        self._send_statustexts()

    def _on_mission_request_list(self, msg, link) -> None:
        if self._for_us(msg.target_system, msg.target_component, allow_broadcast=False):
            link.send(link.mav.mission_count_encode(msg.get_srcSystem(), msg.get_srcComponent(), 0,
                                                    getattr(msg, "mission_type", 0)))

    def _on_timesync(self, msg, link) -> None:
        if msg.tc1 == 0:  # a request: answer with our clock (mavlink_timesync.cpp)
            link.send(link.mav.timesync_encode(int(time.monotonic_ns()), msg.ts1))

    def _on_ping(self, msg, link) -> None:
        if msg.target_system == 0 and msg.target_component == 0:
            link.send(link.mav.ping_encode(msg.time_usec, msg.seq, msg.get_srcSystem(), msg.get_srcComponent()))

    # ---- loop -------------------------------------------------------------------------------

    def service_links(self) -> None:
        """Receive and handle everything waiting, then send what is due."""
        for link in self.links:
            for msg in link.receive():
                self.handle(msg, link)
        self._send_statustexts()
        self.send_due_streams()

    def advance(self, seconds: float) -> None:
        """Simulate ``seconds`` as fast as possible (tests; no links served)."""
        for _ in range(int(round(seconds / TICK_S))):
            self.tick()

    def run(self, duration_s: float | None = None, should_stop=lambda: False) -> None:
        """Run in real time until ``duration_s`` elapsed or ``should_stop()`` is true."""
        t0 = time.monotonic()
        done = 0
        while not should_stop():
            now = time.monotonic()
            if duration_s is not None and now - t0 >= duration_s:
                break
            target = int((now - t0) / TICK_S)
            behind = target - done
            if behind > MAX_CATCH_UP_TICKS:
                t0 += (behind - 1) * TICK_S
                done = target - (behind - 1)
                self.overruns += 1
                behind = 1
            for _ in range(max(behind, 0)):
                self.tick()
                done += 1
            self.service_links()
            wait = t0 + (done + 1) * TICK_S - time.monotonic()
            if wait > 0 and self.links:
                select.select(self.links, [], [], wait)
            elif wait > 0:
                time.sleep(wait)

    def status(self) -> dict:
        """Counters and state, for --json and logs."""
        links = {l.config.name: dict(l.counters) for l in self.links}
        return {
            "sim_time_s": round(self.time_s, 3), "ticks": self.ticks, "overruns": self.overruns,
            "armed": self.commander.armed, "mode": self.commander.nav_state.label,
            "position_enu_m": [round(float(x), 3) for x in self.sim.state.pos_w[0]],
            "crashed": bool(self.sim.state.crashed[0]), "links": links, "counters": dict(self.counters),
            "commander": dict(self.commander.counters),
        }
