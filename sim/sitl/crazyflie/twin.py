"""One simulated Crazyflie 2.1: physics (sim.dynamics.QuadSim) plus the firmware behaviour that a
CRTP client sees. Transport-free: feed datagrams with :meth:`CrazyflieTwin.handle_datagram`,
advance time with :meth:`CrazyflieTwin.tick` (1 ms each), take replies from ``outbox``.

Extension API (used by the motor-relay app in ``sim.sitl.crazyflie.app_relay``):

- ``twin.now_s() -> float``: twin time since boot, s (advances 1 ms per tick).
- ``twin.send_crtp(port, channel, payload: bytes)``: queue a packet to the client.
- ``twin.set_motor_override(thrust_n: np.ndarray (4,) | None)``: per-motor thrust commands in
  newtons, firmware order M1..M4, replacing the controller's output while the supervisor lets
  the motors run (a locked or disarmed twin still stops them); ``None`` hands control back.
- ``twin.tick_hooks``: list of callables ``hook(twin)`` run at the start of every 1 kHz tick.
- ``twin.supervisor``, ``twin.sim`` (QuadSim, N = 1), ``twin.params`` for inspection.

Port 13 channel 2 (app channel) datagrams go to ``app_relay.handle(twin, payload)`` when that
module exists; otherwise they are counted and dropped, as on firmware without an app. The app
(relay and onboard policy, ``TwinConfig.app_policy``) is attached when the twin boots.
"""

from __future__ import annotations

import collections
import importlib
import math
import struct
from dataclasses import dataclass
from typing import Callable

import numpy as np

from sim.dynamics import QuadSim
from sim.frames import quat_from_axis_angle, quat_multiply, quat_to_euler, quat_to_rotmat
from sim.randomization import RealismConfig, Wind, noisy_estimate
from sim.sitl.crazyflie import crtp
from sim.sitl.crazyflie.commander import NULL_SETPOINT, Commander, level_out
from sim.sitl.crazyflie.controller import PidController
from sim.sitl.crazyflie.logging import LogSubsystem, LogVar
from sim.sitl.crazyflie.params import ParamSpec, ParamStore
from sim.sitl.crazyflie.supervisor import State, Supervisor
from sim.vehicle import GRAVITY_MPS2, Vehicle, load_vehicle

PROTOCOL_VERSION = 12  # platformservice.c PROTOCOL_VERSION (supervisor port needs >= 12)
FIRMWARE_VERSION = "quadhil-sitl"
DEVICE_TYPE_NAME = "CF21"
LINK_SOURCE = b"Bitcraze Crazyflie"
PHYSICS_RATE_HZ = 1000
CONTROL_DIVIDER = 2  # controller at 500 Hz (ATTITUDE_RATE)
SUPERVISOR_DIVIDER = 10  # supervisor at 100 Hz
ELECTRONICS_CURRENT_A = 0.08  # MCU, radio, sensors; rough, Bitcraze power budget
# pm_stm32f4.c bat671723HS25C: voltage at 0, 10, ..., 90 % charge of the 1S LiPo
BATTERY_LEVEL_V = (3.00, 3.78, 3.83, 3.87, 3.89, 3.92, 3.96, 4.00, 4.04, 4.10)
PM_BATTERY, PM_LOW_POWER = 0, 3

SUPERVISOR_CMD_GET_STATE_BITFIELD = 0x0C
SUPERVISOR_CMD_ARM_SYSTEM = 0x01
SUPERVISOR_CMD_RECOVER_SYSTEM = 0x02
SUPERVISOR_CMD_EMERGENCY_STOP = 0x03
SUPERVISOR_CMD_EMERGENCY_STOP_WATCHDOG = 0x04
SUPERVISOR_RESPONSE = 0x80
LOCALIZATION_GENERIC_CH = 1
LOCALIZATION_EMERGENCY_STOP = 3
LOCALIZATION_EMERGENCY_STOP_WATCHDOG = 4
# crtp_localization_service.c genericLocHandle: type EXT_POSE (8) carries struct CrtpExtPose
# (float x, y, z, qx, qy, qz, qw: world frame, metres, the quaternion scalar-last) after the type
# byte; cflib's Localization.send_extpose packs it as '<Bfffffff'.
LOCALIZATION_EXT_POSE = 8
EXT_POSE = struct.Struct("<7f")
ESTIMATE_SOURCES = ("truth", "noisy", "mocap")


@dataclass(frozen=True)
class TwinConfig:
    """How one twin is set up. Positions world ENU, m."""

    seed: int = 0
    noise: bool = False
    wind_mps: float = 0.0  # mean wind along +x; gusts with std 0.3 x this
    start_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    auto_arm: bool = True  # CF2.x brushed platforms arm automatically
    # "mocap": the estimate's position and attitude follow the external poses the client sends
    # (CRTP localization port, EXT_POSE); see CrazyflieTwin._estimate. Otherwise truth / noisy.
    estimate: str = "truth"
    # the onboard app's mode-2 network: a policy_weights.h (quadhil export --format c) that the twin
    # builds with the app's own C (sim.sitl.crazyflie.app_policy); None: the app's placeholder
    app_policy: str | None = None


class Battery:
    """1S LiPo: open-circuit voltage linear in charge, ohmic sag with current (vehicle.battery)."""

    def __init__(self, vehicle: Vehicle):
        self.p = vehicle.battery
        self.hover_thrust_n = vehicle.weight_n
        self.charge = 1.0
        self.current_a = ELECTRONICS_CURRENT_A
        self.vbat_v = self.p.voltage_full_v

    def update(self, total_thrust_n: float, dt_s: float) -> None:
        """Draw the current that ``total_thrust_n`` needs for ``dt_s`` (power ~ thrust^1.5)."""
        p = self.p
        ratio = max(total_thrust_n, 0.0) / self.hover_thrust_n
        self.current_a = ELECTRONICS_CURRENT_A + p.hover_current_a * ratio ** 1.5
        self.charge = max(self.charge - self.current_a * dt_s / (p.capacity_mah * 3.6), 0.0)
        ocv = p.voltage_empty_v + (p.voltage_full_v - p.voltage_empty_v) * self.charge
        self.vbat_v = ocv - p.internal_resistance_ohm * self.current_a

    @property
    def level_percent(self) -> int:
        """pmBatteryChargeFromVoltage: 10 % steps from the voltage table."""
        level = 0
        while level < len(BATTERY_LEVEL_V) and self.vbat_v > BATTERY_LEVEL_V[level]:
            level += 1
        return min(level * 10, 100)


def compress_quaternion(qx: float, qy: float, qz: float, qw: float) -> int:
    """quatcompress.h: the largest component dropped, the other three in 9 bits + sign each."""
    q = (qx, qy, qz, qw)
    i_largest = max(range(4), key=lambda i: abs(q[i]))
    negate = q[i_largest] < 0
    comp = i_largest
    for i in range(4):
        if i != i_largest:
            negbit = int((q[i] < 0) ^ negate)
            mag = int(((1 << 9) - 1) * (abs(q[i]) / math.sqrt(0.5)) + 0.5)
            comp = (comp << 10) | (negbit << 9) | mag
    return comp


class CrazyflieTwin:
    """Physics + firmware of one Crazyflie; see the module docstring for the extension API."""

    def __init__(self, config: TwinConfig = TwinConfig(), vehicle: Vehicle | None = None):
        self.config = config
        self.vehicle = vehicle or load_vehicle("crazyflie")
        self.rng = np.random.default_rng(config.seed)
        self.sim = QuadSim.create(self.vehicle, 1, physics_rate_hz=PHYSICS_RATE_HZ)
        # load the compiled kernel now, not on the first real-time tick
        QuadSim.create(self.vehicle, 1, physics_rate_hz=PHYSICS_RATE_HZ).step(np.zeros((1, 4)), 1)
        self.sim.state.pos_w[0] = config.start_m
        self.sim.state.on_ground[0] = config.start_m[2] <= 0.0
        self.wind = None
        if config.wind_mps > 0:
            self.wind = Wind(1, RealismConfig(wind_mean_mps=(config.wind_mps, 0.0, 0.0),
                                              wind_gust_std_mps=0.3 * config.wind_mps), self.rng)
        self.ticks = 0
        self.outbox: list[bytes] = []
        self.counters: collections.Counter[str] = collections.Counter()
        self.tick_hooks: list[Callable[["CrazyflieTwin"], None]] = []
        self.late_ticks = 0  # set by the real-time server

        self.commander = Commander()
        self.supervisor = Supervisor(auto_arm=config.auto_arm)
        self.controller = PidController(self.vehicle)
        self.battery = Battery(self.vehicle)
        self.motor_cmd_n = np.zeros((1, 4))
        self._controller_cmd_n = np.zeros((1, 4))
        self._override_n: np.ndarray | None = None
        self.thrust_sp = 0.0
        self._prev_vel = self.sim.state.vel_w.copy()
        if config.estimate not in ESTIMATE_SOURCES:
            raise ValueError(f"estimate must be one of {', '.join(ESTIMATE_SOURCES)}, got {config.estimate!r}")
        self.ext_pose: tuple[float, list, list] | None = None  # (twin s, pos m, quat x,y,z,w) last received
        self.ext_pose_count = 0
        self._estimate()
        try:
            self._app_relay = importlib.import_module("sim.sitl.crazyflie.app_relay")
        except ModuleNotFoundError as exc:
            if exc.name != "sim.sitl.crazyflie.app_relay":
                raise
            self._app_relay = None
        self.params = ParamStore(self._param_specs())
        self.log = LogSubsystem(self._log_vars())
        if self._app_relay is not None:  # the app's controller runs from boot, as on the vehicle
            self._app_relay.relay_state(self)

    # ----------------------------------------------------------------- extension API
    def now_s(self) -> float:
        """Twin time since boot, s."""
        return self.ticks / PHYSICS_RATE_HZ

    def now_ms(self) -> int:
        """Twin time since boot, ms (the firmware's tick count)."""
        return self.ticks

    def send_crtp(self, port: int, channel: int, payload: bytes) -> None:
        """Queue one packet for the client."""
        self.outbox.append(crtp.encode(port, channel, payload))

    def set_motor_override(self, thrust_n: np.ndarray | None) -> None:
        """Per-motor thrust commands (N, M1..M4) replacing the controller; None to release."""
        if thrust_n is None:
            self._override_n = None
            return
        t = np.asarray(thrust_n, dtype=np.float64).reshape(1, 4)
        if not np.all(np.isfinite(t)):
            raise ValueError("motor override must be finite")
        self._override_n = np.clip(t, 0.0, self.vehicle.max_thrust_n)

    # ----------------------------------------------------------------- tables
    def _param_specs(self) -> list[ParamSpec]:
        sup = self.supervisor

        def stop(v: float) -> None:
            sup.param_emergency_stop = bool(v)

        def reset_estimation(v: float) -> None:
            # The estimate here is the simulated truth: nothing to reset. The firmware clears
            # the flag once the Kalman filter has been reset.
            self.params.set("kalman.resetEstimation", 0)

        return [
            ParamSpec("stabilizer", "estimator", "uint8_t", 2),
            ParamSpec("stabilizer", "controller", "uint8_t", 1),
            ParamSpec("stabilizer", "stop", "uint8_t", 0, on_write=stop),
            ParamSpec("flightmode", "althold", "uint8_t", 0),
            ParamSpec("flightmode", "poshold", "uint8_t", 0),
            ParamSpec("flightmode", "posSet", "uint8_t", 0),
            ParamSpec("flightmode", "yawMode", "uint8_t", 2),
            ParamSpec("flightmode", "stabModeRoll", "uint8_t", 1),
            ParamSpec("flightmode", "stabModePitch", "uint8_t", 1),
            ParamSpec("flightmode", "stabModeYaw", "uint8_t", 0),
            ParamSpec("motorPowerSet", "enable", "uint8_t", 0),
            ParamSpec("motorPowerSet", "m1", "uint16_t", 0),
            ParamSpec("motorPowerSet", "m2", "uint16_t", 0),
            ParamSpec("motorPowerSet", "m3", "uint16_t", 0),
            ParamSpec("motorPowerSet", "m4", "uint16_t", 0),
            ParamSpec("commander", "enHighLevel", "uint8_t", 0),
            ParamSpec("powerDist", "idleThrust", "uint32_t", 0),
            ParamSpec("kalman", "resetEstimation", "uint8_t", 0, on_write=reset_estimation),
            ParamSpec("pid_attitude", "roll_kp", "float", 6.0, readonly=True),
            ParamSpec("pid_attitude", "pitch_kp", "float", 6.0, readonly=True),
            ParamSpec("pid_attitude", "yaw_kp", "float", 6.0, readonly=True),
            ParamSpec("pid_rate", "roll_kp", "float", float(self.vehicle.rate_controller.firmware_kp[0]), readonly=True),
            ParamSpec("pid_rate", "pitch_kp", "float", float(self.vehicle.rate_controller.firmware_kp[1]), readonly=True),
            ParamSpec("pid_rate", "yaw_kp", "float", float(self.vehicle.rate_controller.firmware_kp[2]), readonly=True),
            ParamSpec("cpu", "flash", "uint16_t", 1024, readonly=True),
            ParamSpec("firmware", "modified", "uint8_t", 0, readonly=True),
            ParamSpec("sitl", "seed", "uint32_t", self.config.seed & 0xFFFFFFFF, readonly=True),
        ] + (self._app_relay.param_specs(self) if self._app_relay is not None else [])  # quadhil.* of the app

    def _log_vars(self) -> list[LogVar]:
        t = self
        v: list[LogVar] = []
        add = lambda g, n, c, f: v.append(LogVar(g, n, c, f))  # noqa: E731
        for i, ax in enumerate("xyz"):
            add("stateEstimate", ax, "float", lambda i=i: t.est_pos[i])
        for i, ax in enumerate("xyz"):
            add("stateEstimate", "v" + ax, "float", lambda i=i: t.est_vel[i])
        for i, ax in enumerate("xyz"):
            add("stateEstimate", "a" + ax, "float", lambda i=i: t.est_acc_w_g[i])
        for i, ax in enumerate(("roll", "pitch", "yaw")):
            add("stateEstimate", ax, "float", lambda i=i: t.est_rpy_deg[i])
        for i, ax in enumerate(("qx", "qy", "qz", "qw")):
            add("stateEstimate", ax, "float", lambda i=i: t.est_quat_xyzw[i])
        # stateEstimateZ (estimator.c stateCompressed): mm, mm/s, mm/s^2, mrad/s, legacy pitch
        for i, ax in enumerate("xyz"):
            add("stateEstimateZ", ax, "int16_t", lambda i=i: t.est_pos[i] * 1000.0)
        for i, ax in enumerate("xyz"):
            add("stateEstimateZ", "v" + ax, "int16_t", lambda i=i: t.est_vel[i] * 1000.0)
        # the firmware scales by 9.81 and adds 1 g to z (estimator.c)
        add("stateEstimateZ", "ax", "int16_t", lambda: t.est_acc_w_g[0] * 9.81 * 1000.0)
        add("stateEstimateZ", "ay", "int16_t", lambda: t.est_acc_w_g[1] * 9.81 * 1000.0)
        add("stateEstimateZ", "az", "int16_t", lambda: (t.est_acc_w_g[2] + 1.0) * 9.81 * 1000.0)
        add("stateEstimateZ", "quat", "uint32_t", lambda: compress_quaternion(*t.est_quat_xyzw))
        add("stateEstimateZ", "rateRoll", "int16_t", lambda: t.gyro_dps[0] * (math.pi / 180.0) * 1000.0)
        add("stateEstimateZ", "ratePitch", "int16_t", lambda: -t.gyro_dps[1] * (math.pi / 180.0) * 1000.0)
        add("stateEstimateZ", "rateYaw", "int16_t", lambda: t.gyro_dps[2] * (math.pi / 180.0) * 1000.0)
        add("stabilizer", "roll", "float", lambda: t.est_rpy_deg[0])
        add("stabilizer", "pitch", "float", lambda: t.est_rpy_deg[1])
        add("stabilizer", "yaw", "float", lambda: t.est_rpy_deg[2])
        add("stabilizer", "thrust", "float", lambda: t.thrust_sp)
        for i, ax in enumerate("xyz"):
            add("gyro", ax, "float", lambda i=i: t.gyro_dps[i])
        for i, ax in enumerate("xyz"):
            add("acc", ax, "float", lambda i=i: t.acc_body_g[i])
        add("pm", "vbat", "float", lambda: t.battery.vbat_v)
        add("pm", "vbatMV", "uint16_t", lambda: t.battery.vbat_v * 1000.0)
        add("pm", "state", "int8_t", lambda: PM_LOW_POWER if t.battery.vbat_v < t.vehicle.battery.low_voltage_v else PM_BATTERY)
        add("pm", "batteryLevel", "uint8_t", lambda: t.battery.level_percent)
        for i in range(4):
            add("motor", f"m{i + 1}", "uint32_t", lambda i=i: t.motor_pwm[i])
        add("supervisor", "info", "uint16_t", lambda: t.supervisor.info_bitfield())
        add("sys", "canfly", "uint8_t", lambda: t.supervisor.can_fly)
        add("sys", "isFlying", "uint8_t", lambda: t.supervisor.is_flying)
        add("sys", "isTumbled", "uint8_t", lambda: t.supervisor.is_tumbled)
        add("sitl", "badPackets", "uint32_t", lambda: t.bad_packets)
        add("sitl", "lateTicks", "uint32_t", lambda: t.late_ticks)
        add("sitl", "setpointAgeMs", "uint32_t", lambda: 1000.0 * t.commander.inactivity_s(t.now_s()))
        # crtp_localization_service.c: the last external pose (ext_pos group) and its tick (locSrvZ)
        for i, ax in enumerate("XYZ"):
            add("ext_pos", ax, "float", lambda i=i: t.ext_pose[1][i] if t.ext_pose else 0.0)
        add("locSrvZ", "tick", "uint16_t", lambda: int(1000.0 * t.ext_pose[0]) & 0xFFFF if t.ext_pose else 0)
        add("sitl", "extPoseCount", "uint32_t", lambda: t.ext_pose_count)
        if self._app_relay is not None:  # the onboard app's quadhil.* log group
            v += self._app_relay.log_vars(self)
        return v

    @property
    def bad_packets(self) -> int:
        """Datagrams ignored or refused as malformed, unknown or unsupported."""
        return (sum(self.counters.values()) + self.params.rejected + self.log.rejected
                + self.commander.rejected + self.commander.unsupported)

    # ----------------------------------------------------------------- estimate
    def _estimate(self) -> None:
        """Refresh the state estimate (truth, or truth + sensor noise) and IMU readings."""
        s = self.sim.state
        pos, vel, quat, omega = s.pos_w, s.vel_w, s.quat_wb, s.omega_b
        if self.config.noise:
            pos, vel, quat, omega = noisy_estimate(pos, vel, quat, omega, self.vehicle, self.rng)
        if self.config.estimate == "mocap":
            pos, quat = self._mocap_fed(pos, vel, quat, omega)
        dt = CONTROL_DIVIDER / PHYSICS_RATE_HZ
        acc_w = (s.vel_w[0] - self._prev_vel[0]) / dt
        self._prev_vel[:] = s.vel_w
        rot = quat_to_rotmat(quat[0])
        specific_force_b = rot.T @ (acc_w + np.array([0.0, 0.0, GRAVITY_MPS2]))
        roll, pitch, yaw = quat_to_euler(quat[0])
        self.est_pos = pos[0].tolist()
        self.est_vel = vel[0].tolist()
        self.est_acc_w_g = (acc_w / GRAVITY_MPS2).tolist()
        # kalman_core.c (kalmanCoreExternalizeState) stores -pitch, adjusting to the legacy CF2
        # body frame: stateEstimate.pitch is nose-up positive
        self.est_rpy_deg = [math.degrees(roll), -math.degrees(pitch), math.degrees(yaw)]
        q = quat[0]
        self.est_quat_xyzw = [float(q[1]), float(q[2]), float(q[3]), float(q[0])]
        self.est_omega_b = omega.copy()
        self.gyro_dps = np.degrees(omega[0]).tolist()
        self.acc_body_g = (specific_force_b / GRAVITY_MPS2).tolist()

    def _mocap_fed(self, pos, vel, quat, omega):
        """Position and attitude of a Kalman filter fed external poses (crtp_localization_service.c
        extPoseHandler -> estimatorEnqueuePose with locSrv.extPosStdDev 0.01 m, extQuatStdDev
        4.5e-3): with such small measurement noise the filter sits on the last pose, predicted
        forward by its IMU for the pose's age (position by the velocity, here the twin's; attitude
        by the gyro, here the twin's body rate). Before the first pose: the filter's initial
        state (kalman.initialX/Y/Z = 0) with the IMU's attitude."""
        if self.ext_pose is None:
            return np.zeros((1, 3)), quat
        t_s, p, q_xyzw = self.ext_pose
        age_s = max(self.now_s() - t_s, 0.0)
        pos = (np.asarray(p) + age_s * np.asarray(vel[0]))[None]
        q = np.array([q_xyzw[3], q_xyzw[0], q_xyzw[1], q_xyzw[2]])
        n = float(np.linalg.norm(q))
        if n < 0.5:
            return pos, quat
        q = quat_multiply(q / n, quat_from_axis_angle(np.asarray(omega[0]) * age_s))  # gyro prediction, body frame
        return pos, (q / np.linalg.norm(q))[None]

    def _on_ext_pose(self, data: bytes) -> None:
        if len(data) < 1 + EXT_POSE.size:
            self.counters["ext_pose_short"] += 1
            return
        x, y, z, qx, qy, qz, qw = EXT_POSE.unpack_from(data, 1)
        if not all(math.isfinite(v) for v in (x, y, z, qx, qy, qz, qw)):
            self.counters["ext_pose_nonfinite"] += 1
            return
        self.ext_pose = (self.now_s(), [x, y, z], [qx, qy, qz, qw])
        self.ext_pose_count += 1

    def est_omega_now(self) -> np.ndarray:
        """(1, 3) gyro sample of this 1 ms tick, rad/s FLU (truth, plus noise when configured)."""
        omega = self.sim.state.omega_b
        if self.config.noise:
            omega = omega + self.rng.normal(0.0, self.vehicle.sensor_noise.gyro_rad_s, size=omega.shape)
        return omega

    # ----------------------------------------------------------------- time
    def tick(self) -> None:
        """Advance the twin by one 1 ms physics step, running control, supervisor and logs."""
        for hook in self.tick_hooks:
            hook(self)
        k = self.ticks
        now_s = k / PHYSICS_RATE_HZ
        # the firmware low-passes every 1 kHz gyro sample before the controller sees it
        self.filtered_omega_b = self.controller.rate.filter_gyro(self.est_omega_now())
        if k % CONTROL_DIVIDER == 0:
            self._estimate()
            if k % SUPERVISOR_DIVIDER == 0:
                self.supervisor.update(now_s, self.commander.inactivity_s(now_s),
                                       bool(np.any(self.motor_pwm > self.params.get("powerDist.idleThrust"))),
                                       self.acc_body_g[2])
            self._control(now_s)
            if self.wind is not None:
                self.sim.disturbance.wind_w[:] = self.wind.step(CONTROL_DIVIDER / PHYSICS_RATE_HZ)
        cmd = self._controller_cmd_n
        if not self.supervisor.motors_allowed:
            cmd = np.zeros((1, 4))
        elif self._override_n is not None:
            cmd = self._override_n
        self.motor_cmd_n = cmd
        self.sim.step(cmd * self._pwm_battery_factor(), 1)
        self.battery.update(float(self.sim.state.thrust_n.sum()), 1.0 / PHYSICS_RATE_HZ)
        self.ticks = k + 1
        for payload in self.log.due(self.ticks):
            self.send_crtp(crtp.PORT_LOG, 2, payload)

    def _pwm_battery_factor(self) -> float:
        """Thrust of a motor driven by raw PWM relative to the thrust curve (measured on a full cell):
        (pm.vbat / full)^2, the sim's model of a sagging battery (sim/vehicles/crazyflie.toml
        uncompensated_thrust_scale). Raw PWM reaches the motors on a build without battery
        compensation and through motorPowerSet in every build (motors.c motorsSetRatio); with
        compensation the firmware holds the thrust: 1."""
        if self.vehicle.compensated and not self.params.get("motorPowerSet.enable"):
            return 1.0
        full_v = self.vehicle.battery.voltage_full_v
        return min(self.battery.vbat_v / full_v, 1.0) ** 2

    @property
    def motor_pwm(self) -> np.ndarray:
        """(4,) motor outputs in PWM counts 0..65535 (motor.m1..m4: the ratio motorsSetRatio
        applies, after battery compensation): the PWM that gives the commanded thrust on the
        vehicle's thrust curve."""
        return np.rint(self.vehicle.pwm_for_thrust(self.motor_cmd_n[0]) * 65535.0 * (self.motor_cmd_n[0] > 0))

    def _control(self, now_s: float) -> None:
        sp = self.commander.current(now_s)
        if self.supervisor.state == State.WARNING_LEVEL_OUT:  # supervisorOverrideSetpoint
            sp = level_out(sp)
        if not self.supervisor.motors_allowed:
            sp = NULL_SETPOINT
        self.thrust_sp = sp.thrust
        cmd = self.controller.update(sp, tuple(self.est_rpy_deg), self.filtered_omega_b)
        p = self.params
        if p.get("motorPowerSet.enable"):
            pwm = np.array([[p.get(f"motorPowerSet.m{i}") for i in range(1, 5)]])
            # motors.c motorsSetRatio: the override replaces the PWM after battery compensation
            cmd = self.vehicle.pwm_to_thrust(pwm / 65535.0) * (pwm > 0)
        idle = p.get("powerDist.idleThrust")
        if idle > 0:  # powerDistributionCap floors the PWM, after compensation
            cmd = np.maximum(cmd, self.vehicle.pwm_to_thrust(min(idle, 65535) / 65535.0))
        self._controller_cmd_n = cmd

    # ----------------------------------------------------------------- packets
    def handle_datagram(self, datagram: bytes) -> None:
        """Process one received datagram; replies go to ``outbox``. Never raises on bad input."""
        try:
            pk = crtp.decode(datagram)
        except crtp.CrtpDecodeError:
            self.counters["empty" if not datagram else "oversize"] += 1
            return
        try:
            self._dispatch(pk)
        except (struct.error, IndexError, ValueError, OverflowError) as exc:  # defensive: count, survive
            self.counters[f"error:{type(exc).__name__}"] += 1

    def _dispatch(self, pk: crtp.CrtpPacket) -> None:
        port, ch, data = pk.port, pk.channel, pk.data
        now_s = self.now_s()
        if port == crtp.PORT_LINK:
            if ch == 0:
                self.send_crtp(port, 0, data)  # echo
            elif ch == 1:
                self.send_crtp(port, 1, LINK_SOURCE.ljust(crtp.MAX_DATA_SIZE, b"\0"))
            elif ch == 3 and not data:
                self.outbox.append(bytes((crtp.NULL_HEADER,)))  # answer the udp scan probe
            else:
                self.counters["link_ignored"] += 1
        elif port == crtp.PORT_PLATFORM:
            self._platform(ch, data)
        elif port == crtp.PORT_LOG:
            for rch, payload in self.log.handle(ch, data, self.now_ms()):
                self.send_crtp(port, rch, payload)
        elif port == crtp.PORT_PARAM:
            for rch, payload in self.params.handle(ch, data):
                self.send_crtp(port, rch, payload)
        elif port == crtp.PORT_MEM:
            if ch == 0 and data[:1] == b"\x01":
                self.send_crtp(port, 0, b"\x01\x00")  # CMD_INFO_NBR: no memories
            else:
                self.counters["mem_unsupported"] += 1
        elif port == crtp.PORT_COMMANDER:
            p = self.params
            self.commander.handle_rpyt(ch, data, now_s, p.get("flightmode.stabModeRoll") == 1,
                                       p.get("flightmode.stabModePitch") == 1)
        elif port == crtp.PORT_COMMANDER_GENERIC:
            self.commander.handle_generic(ch, data, now_s)
        elif port == crtp.PORT_SUPERVISOR:
            self._supervisor_port(ch, data, now_s)
        elif port == crtp.PORT_LOCALIZATION and ch == LOCALIZATION_GENERIC_CH and data:
            if data[0] == LOCALIZATION_EMERGENCY_STOP:
                self.supervisor.emergency_stop()
            elif data[0] == LOCALIZATION_EMERGENCY_STOP_WATCHDOG:
                self.supervisor.feed_emergency_stop_watchdog(now_s)
            elif data[0] == LOCALIZATION_EXT_POSE:
                self._on_ext_pose(data)
            else:
                self.counters["localization_unsupported"] += 1
        else:
            self.counters[f"port{port}_unsupported"] += 1

    def _platform(self, ch: int, data: bytes) -> None:
        if ch == 1:  # version commands
            if not data:
                self.counters["platform_short"] += 1
            elif data[0] == 0:
                self.send_crtp(crtp.PORT_PLATFORM, 1, struct.pack("<Bi", 0, PROTOCOL_VERSION))
            elif data[0] == 1:
                self.send_crtp(crtp.PORT_PLATFORM, 1, b"\x01" + FIRMWARE_VERSION.encode())
            elif data[0] == 2:
                self.send_crtp(crtp.PORT_PLATFORM, 1, b"\x02" + DEVICE_TYPE_NAME.encode())
            else:
                self.counters["platform_unsupported"] += 1
        elif ch == 0:  # platform commands are echoed after processing
            if not data:
                self.counters["platform_short"] += 1
                return
            if data[0] == 1 and len(data) >= 2:  # legacy arming request
                self.supervisor.request_arming(bool(data[1]))
            elif data[0] == 2:  # legacy crash recovery
                self.supervisor.request_crash_recovery()
            self.send_crtp(crtp.PORT_PLATFORM, 0, data)
        elif ch == 2:
            if self._app_relay is not None:
                self._app_relay.handle(self, data)
            else:
                self.counters["app_channel_no_app"] += 1
        else:
            self.counters["platform_unsupported"] += 1

    def _supervisor_port(self, ch: int, data: bytes, now_s: float) -> None:
        if not data:
            self.counters["supervisor_short"] += 1
            return
        cmd = data[0]
        sup = self.supervisor
        if ch == 0 and cmd == SUPERVISOR_CMD_GET_STATE_BITFIELD:
            self.send_crtp(crtp.PORT_SUPERVISOR, 0, struct.pack("<BH", SUPERVISOR_RESPONSE | cmd, sup.info_bitfield()))
        elif ch == 1 and cmd == SUPERVISOR_CMD_ARM_SYSTEM and len(data) >= 2:
            ok = sup.request_arming(bool(data[1]))
            self.send_crtp(crtp.PORT_SUPERVISOR, 1, bytes((SUPERVISOR_RESPONSE | cmd, ok, sup.armed)))
        elif ch == 1 and cmd == SUPERVISOR_CMD_RECOVER_SYSTEM:
            ok = sup.request_crash_recovery()
            self.send_crtp(crtp.PORT_SUPERVISOR, 1, bytes((SUPERVISOR_RESPONSE | cmd, ok, not sup.crashed)))
        elif ch == 1 and cmd == SUPERVISOR_CMD_EMERGENCY_STOP:
            sup.emergency_stop()
        elif ch == 1 and cmd == SUPERVISOR_CMD_EMERGENCY_STOP_WATCHDOG:
            sup.feed_emergency_stop_watchdog(now_s)
        else:
            self.counters["supervisor_unsupported"] += 1
