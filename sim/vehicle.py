"""Vehicle models loaded from TOML data files (``sim/vehicles/*.toml``).

Every physical constant lives in the TOML file with its source; this module only reads,
validates and derives. A missing or malformed field raises :class:`VehicleFileError`
naming the file and the field: there are no silent defaults for physics.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from sim.errors import QuadhilError

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

VEHICLE_DIR = Path(__file__).resolve().parent / "vehicles"
GRAVITY_MPS2 = 9.80665  # standard gravity (ISO 80000-3)


class VehicleFileError(QuadhilError, ValueError):
    """A vehicle file is missing, unreadable, or has a missing or malformed field."""


@dataclass(frozen=True)
class RateControllerParams:
    """Firmware rate-loop gains, already converted to SI torque gains (N*m per rad/s)."""

    rate_hz: float
    kp_nm_per_rad_s: np.ndarray  # (3,) roll, pitch, yaw in FLU
    ki_nm_per_rad: np.ndarray  # (3,)
    kd_nm_s_per_rad: np.ndarray  # (3,)
    integral_limit_rad: np.ndarray  # (3,) |integral of rate error| bound
    body_rate_max_rad_s: np.ndarray  # (3,) scaling of ctbr actions
    firmware_kp: np.ndarray  # (3,) gains in the firmware's own units, for reference
    firmware_ki: np.ndarray
    firmware_kd: np.ndarray
    gain_unit: str
    # (3,) |torque| the firmware's rate loop can output per axis, N*m (inf: not limited there)
    output_limit_nm: np.ndarray = field(default_factory=lambda: np.full(3, np.inf))
    # (3,) N*m of body torque per unit of the firmware's controller output, per axis
    torque_per_unit_nm: np.ndarray = field(default_factory=lambda: np.ones(3))


@dataclass(frozen=True)
class SensorNoise:
    """Standard deviations of the state estimate a policy sees."""

    position_m: float
    velocity_mps: float
    attitude_rad: float
    gyro_rad_s: float


@dataclass(frozen=True)
class BatteryParams:
    """Lumped battery model: open-circuit voltage linear in charge, ohmic sag with current."""

    cells: int
    voltage_full_v: float
    voltage_empty_v: float
    capacity_mah: float
    internal_resistance_ohm: float
    hover_current_a: float
    low_voltage_v: float


@dataclass(frozen=True)
class RandomizationRanges:
    """Domain-randomization ranges of one vehicle (multiplicative unless named in metres or s).

    Fields after ``com_offset_m`` are optional in a vehicle file (None / 0: that axis is not
    randomized). ``tau_*_range_s`` replace ``tau_scale`` where present.
    """

    mass_scale: tuple[float, float]
    inertia_scale: tuple[float, float]
    thrust_scale: tuple[float, float]
    motor_imbalance: float
    tau_scale: tuple[float, float]
    com_offset_m: float
    tau_up_range_s: tuple[float, float] | None = None
    tau_down_range_s: tuple[float, float] | None = None
    torque_to_thrust_range_m: tuple[float, float] | None = None
    rate_gain_scale: tuple[float, float] | None = None
    rate_p_only_fraction: float = 0.0
    noise_scale: tuple[float, float] | None = None
    uncompensated_fraction: float = 0.0
    uncompensated_thrust_scale: tuple[float, float] = (1.0, 1.0)
    battery_sense_error: float = 0.0

    def __setstate__(self, state: dict) -> None:
        """Unpickle objects saved before the optional fields existed (frozen dataclass)."""
        for f in fields(self):
            if f.name not in state and f.default is not MISSING:
                state[f.name] = f.default
        self.__dict__.update(state)


@dataclass(frozen=True)
class FirmwareCommandPath:
    """What the Crazyflie's stock firmware does with a manual-rate setpoint (vehicle file
    ``[firmware]``; sources in sim/vehicles/crazyflie.toml and docs/crazyflie.md)."""

    battery_compensation: bool
    thrust_max_n: float  # THRUST_MAX: per-motor thrust of a 16-bit command of 65535 (compensated)
    thrust_min_n: float  # THRUST_MIN: a compensated motor command below this stops the motor
    gyro_lpf_cutoff_hz: float
    gyro_lpf_sample_hz: float
    yaw_attitude_pid: tuple[float, float, float]  # kp, ki, kd: deg of yaw error -> deg/s
    yaw_attitude_integral_limit_deg: float


@dataclass(frozen=True)
class Vehicle:
    """Nominal parameters of one quadrotor, SI units, body frame FLU.

    Motor arrays are in the firmware's own numbering (index 0 = M1 / MOTOR1).
    """

    id: str
    name: str
    firmware: str
    source_path: str
    mass_kg: float
    inertia_kgm2: np.ndarray  # (3,) diagonal
    drag_n_per_mps: np.ndarray  # (3,) body-frame linear drag
    crash_speed_mps: float
    motor_names: tuple[str, ...]
    rotor_position_m: np.ndarray  # (4, 3) FLU, relative to the CoM
    spin_sign: np.ndarray  # (4,) +1 clockwise seen from above (reaction torque +z), -1 ccw
    thrust_curve_n: np.ndarray  # (3,) c0, c1, c2 of T(u) = c2 u^2 + c1 u + c0, u in [0, 1]
    torque_to_thrust_m: float
    tau_up_s: float
    tau_down_s: float
    command_unit: str
    command_max: float
    battery: BatteryParams
    rate_controller: RateControllerParams
    sensor_noise: SensorNoise
    randomization: RandomizationRanges
    command_path: FirmwareCommandPath | None = None  # None: PX4 (commands are motor outputs)

    def __setstate__(self, state: dict) -> None:
        """Unpickle vehicles saved before ``command_path`` existed."""
        state.setdefault("command_path", None)
        self.__dict__.update(state)

    @property
    def max_thrust_n(self) -> float:
        """Thrust of one motor at full PWM (the thrust curve at u = 1), N: the physical maximum."""
        return float(np.sum(self.thrust_curve_n))

    @property
    def compensated(self) -> bool:
        """True where the firmware reads a 16-bit motor command as thrust (battery compensation)."""
        return self.command_path is not None and self.command_path.battery_compensation

    @property
    def command_thrust_max_n(self) -> float:
        """Per-motor thrust, N, that the firmware's full 16-bit command (65535) asks for: THRUST_MAX
        with battery compensation (motors.c), else the thrust curve at full PWM. Collective-thrust
        actions (ctbr) are scaled to 4 x this."""
        return self.command_path.thrust_max_n if self.compensated else self.max_thrust_n

    def with_battery_compensation(self, on: bool) -> "Vehicle":
        """This vehicle with the firmware's battery compensation on or off (the build option
        CONFIG_ENABLE_THRUST_BAT_COMPENSATED); rate-loop torque gains follow (one command count is
        THRUST_MAX / 65535 N compensated, the thrust curve's slope at hover otherwise)."""
        if self.command_path is None:
            raise ValueError(f"vehicle {self.id!r} has no firmware command path to change")
        if on == self.compensated:
            return self
        v = replace(self, command_path=replace(self.command_path, battery_compensation=on))
        return replace(v, rate_controller=_rate_controller_for(v))

    @property
    def weight_n(self) -> float:
        """Weight at standard gravity, N."""
        return self.mass_kg * GRAVITY_MPS2

    @property
    def hover_thrust_fraction(self) -> float:
        """Per-motor fraction of the full command's thrust (:attr:`command_thrust_max_n`) that
        holds the nominal vehicle in hover."""
        return self.weight_n / (4.0 * self.command_thrust_max_n)

    def allocation_matrix(self) -> np.ndarray:
        """(4, 4) matrix A with [T_total, tau_x, tau_y, tau_z] = A @ motor_thrust_n (FLU, N and N*m)."""
        r = self.rotor_position_m
        return np.stack(
            [
                np.ones(4),
                r[:, 1],  # tau_x = y * T
                -r[:, 0],  # tau_y = -x * T
                self.spin_sign * self.torque_to_thrust_m,
            ]
        )

    def thrust_to_command(self, thrust_n: np.ndarray) -> np.ndarray:
        """Motor thrust (N) -> normalized 16-bit firmware command u in [0, 1] (command / 65535) as
        the stabilizer's motor path reads it: linear up to THRUST_MAX with battery compensation
        (motors.c motorsCompensateBatteryVoltage), else the inverse of the thrust curve (PWM)."""
        if self.compensated:
            return np.clip(np.asarray(thrust_n, dtype=np.float64) / self.command_path.thrust_max_n, 0.0, 1.0)
        return self.pwm_for_thrust(thrust_n)

    def command_to_thrust(self, u: np.ndarray) -> np.ndarray:
        """Normalized 16-bit command u in [0, 1] -> motor thrust (N) asked for: u x THRUST_MAX
        with battery compensation, 0 below THRUST_MIN (motors.c); else the thrust curve (PWM)."""
        if self.compensated:
            t = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0) * self.command_path.thrust_max_n
            return np.where(t < self.command_path.thrust_min_n, 0.0, t)
        return self.pwm_to_thrust(u)

    def pwm_for_thrust(self, thrust_n: np.ndarray) -> np.ndarray:
        """Invert the thrust curve: motor thrust (N) -> raw PWM fraction u in [0, 1] (no battery
        compensation: motorPowerSet overrides, the uncompensated build)."""
        c0, c1, c2 = self.thrust_curve_n
        t = np.clip(np.asarray(thrust_n, dtype=np.float64), c0, self.max_thrust_n)
        if c2 == 0.0:
            return (t - c0) / c1
        return (-c1 + np.sqrt(c1 * c1 + 4.0 * c2 * (t - c0))) / (2.0 * c2)

    def pwm_to_thrust(self, u: np.ndarray) -> np.ndarray:
        """Thrust curve: raw PWM fraction u in [0, 1] -> motor thrust (N)."""
        c0, c1, c2 = self.thrust_curve_n
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        return c2 * u * u + c1 * u + c0


def _get(table: dict, key: str, path: Path, section: str):
    if key not in table:
        raise VehicleFileError(f"{path}: missing field '{section}.{key}'")
    return table[key]


def _number(table: dict, key: str, path: Path, section: str, positive: bool = True) -> float:
    value = _get(table, key, path, section)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise VehicleFileError(f"{path}: field '{section}.{key}' must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise VehicleFileError(f"{path}: field '{section}.{key}' must be > 0, got {value!r}")
    return float(value)


def _vector(table: dict, key: str, path: Path, section: str, shape: tuple[int, ...], nonneg=True) -> np.ndarray:
    value = _get(table, key, path, section)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise VehicleFileError(f"{path}: field '{section}.{key}' must be numbers of shape {shape}") from None
    if arr.shape != shape or not np.all(np.isfinite(arr)):
        raise VehicleFileError(
            f"{path}: field '{section}.{key}' must be finite numbers of shape {shape}, got {value!r}"
        )
    if nonneg and np.any(arr < 0):
        raise VehicleFileError(f"{path}: field '{section}.{key}' must be >= 0, got {value!r}")
    return arr


def _range(table: dict, key: str, path: Path, section: str) -> tuple[float, float]:
    arr = _vector(table, key, path, section, (2,))
    if not 0 < arr[0] <= arr[1]:
        raise VehicleFileError(f"{path}: field '{section}.{key}' must be [low, high] with 0 < low <= high")
    return float(arr[0]), float(arr[1])


def _section(data: dict, name: str, path: Path) -> dict:
    table = data.get(name)
    if not isinstance(table, dict):
        raise VehicleFileError(f"{path}: missing section '[{name}]'")
    return table


def px4_torque_per_unit_nm(rotor_position_m: np.ndarray, spin_sign: np.ndarray, kappa_m: float,
                           max_thrust_n: float) -> np.ndarray:
    """(3,) N*m of body torque (FLU roll, pitch, yaw) that one unit of PX4's normalized torque
    setpoint produces, for rotors at ``rotor_position_m`` (4, 3) m with thrust linear in the motor
    output (0..1 = 0..``max_thrust_n`` N).

    PX4's allocator (src/modules/control_allocator/ControlAllocation/ControlAllocationPseudoInverse.cpp,
    ``updateControlAllocationMatrixScale``) inverts the rotor effectiveness matrix and rescales its
    columns: roll and pitch both by max over the two axes of sqrt(|column|^2 / (non-zero rows / 2)),
    yaw by the column's largest entry. A normalized torque of 1 is therefore 1 / scale N*m. On a
    symmetric quad-x that is each motor +-1/sqrt(2) of its range for roll or pitch (2 sqrt(2) x
    max thrust x arm) and +-1 for yaw (4 x max thrust x kappa).
    """
    r = np.asarray(rotor_position_m, dtype=np.float64)
    torque_rows = [r[:, 1], -r[:, 0], np.asarray(spin_sign) * kappa_m]
    effectiveness = np.stack(torque_rows + [np.ones(len(r))]) * max_thrust_n
    mix = np.linalg.pinv(effectiveness)  # (motors, [roll, pitch, yaw, thrust])
    nonzero = (np.abs(mix[:, :2]) > 1e-3 * np.abs(mix[:, :2]).max()).sum(axis=0)
    roll_pitch_scale = np.sqrt((mix[:, :2] ** 2).sum(axis=0) / (nonzero / 2.0)).max()
    # PX4 takes the column's largest (signed) entry; for a quad-x the +-yaw entries are symmetric
    yaw_scale = mix[:, 2].max()
    return 1.0 / np.array([roll_pitch_scale, roll_pitch_scale, yaw_scale])


def _crazyflie_torque_per_count(geometry: dict) -> np.ndarray:
    """(3,) N*m of body torque per count of the Crazyflie rate loop's output (roll, pitch, yaw).

    The legacy power distribution (power_distribution_quadrotor.c powerDistributionLegacy) gives
    each motor +-roll/2, +-pitch/2, +-yaw counts of its 16-bit command. One count is THRUST_MAX /
    65535 N with battery compensation (motors.c: linear in thrust), else dT/dPWM at hover.
    """
    if geometry.get("count_thrust_n") is not None:
        dthrust = geometry["count_thrust_n"]
    else:
        dthrust = geometry["dthrust_du_hover_n"] / geometry["command_max"]
    arm = geometry["arm_xy_m"]
    return np.array([4 * 0.5 * dthrust * arm[1], 4 * 0.5 * dthrust * arm[0], 4 * dthrust * geometry["kappa_m"]])


def _rate_controller_for(v: "Vehicle") -> RateControllerParams:
    """The vehicle's Crazyflie rate-loop parameters recomputed for its current command path."""
    rc = v.rate_controller
    c0, c1, c2 = v.thrust_curve_n
    u_hover = v.pwm_for_thrust(np.array([v.weight_n / 4.0]))[0]
    geometry = {"dthrust_du_hover_n": 2 * c2 * u_hover + c1, "command_max": v.command_max,
                "count_thrust_n": v.command_path.thrust_max_n / v.command_max if v.compensated else None,
                "arm_xy_m": np.abs(v.rotor_position_m[:, :2]).mean(axis=0), "kappa_m": v.torque_to_thrust_m}
    ratio = _crazyflie_torque_per_count(geometry) / rc.torque_per_unit_nm
    return replace(rc, kp_nm_per_rad_s=rc.kp_nm_per_rad_s * ratio, ki_nm_per_rad=rc.ki_nm_per_rad * ratio,
                   kd_nm_s_per_rad=rc.kd_nm_s_per_rad * ratio, output_limit_nm=rc.output_limit_nm * ratio,
                   torque_per_unit_nm=rc.torque_per_unit_nm * ratio)


def _range_opt(table: dict, key: str, path: Path, section: str) -> tuple[float, float] | None:
    if key not in table:
        return None
    arr = _vector(table, key, path, section, (2,))
    if not 0 <= arr[0] <= arr[1]:
        raise VehicleFileError(f"{path}: field '{section}.{key}' must be [low, high] with 0 <= low <= high")
    return float(arr[0]), float(arr[1])


def _fraction_opt(table: dict, key: str, path: Path, section: str) -> float:
    if key not in table:
        return 0.0
    value = _number(table, key, path, section, positive=False)
    if not 0.0 <= value <= 1.0:
        raise VehicleFileError(f"{path}: field '{section}.{key}' must be in [0, 1], got {value!r}")
    return value


def _command_path(data: dict, path: Path) -> FirmwareCommandPath | None:
    t = data.get("firmware")
    if t is None:
        return None
    s = "firmware"
    comp = _get(t, "battery_compensation", path, s)
    if not isinstance(comp, bool):
        raise VehicleFileError(f"{path}: field 'firmware.battery_compensation' must be true or false")
    pid = _vector(t, "yaw_attitude_pid", path, s, (3,))
    return FirmwareCommandPath(
        battery_compensation=comp,
        thrust_max_n=_number(t, "thrust_max_n", path, s),
        thrust_min_n=_number(t, "thrust_min_n", path, s, positive=False),
        gyro_lpf_cutoff_hz=_number(t, "gyro_lpf_cutoff_hz", path, s),
        gyro_lpf_sample_hz=_number(t, "gyro_lpf_sample_hz", path, s),
        yaw_attitude_pid=(float(pid[0]), float(pid[1]), float(pid[2])),
        yaw_attitude_integral_limit_deg=_number(t, "yaw_attitude_integral_limit_deg", path, s),
    )


def _rate_controller(table: dict, path: Path, geometry: dict) -> RateControllerParams:
    s = "rate_controller"
    kp = _vector(table, "kp", path, s, (3,))
    ki = _vector(table, "ki", path, s, (3,))
    kd = _vector(table, "kd", path, s, (3,))
    ilim = _vector(table, "integral_limit", path, s, (3,))
    unit = _get(table, "gain_unit", path, s)
    # N*m of body torque produced by one unit of the firmware's controller output, per axis.
    if unit == "firmware_cmd_per_deg_s":
        torque_per_unit = _crazyflie_torque_per_count(geometry)
        per_rad = torque_per_unit * (180.0 / math.pi)  # gains are per deg/s
        ilim_rad = ilim * (math.pi / 180.0)
    elif unit == "normalized_torque_per_rad_s":
        torque_per_unit = px4_torque_per_unit_nm(geometry["rotor_position_m"], geometry["spin_sign"],
                                                 geometry["kappa_m"], geometry["max_thrust_n"])
        per_rad = torque_per_unit
        # MC_*_INT_LIM bounds the integrator's contribution (normalized torque); as an integral of
        # rate error it is limit / ki.
        ilim_rad = np.divide(ilim, ki, out=np.full(3, np.inf), where=ki > 0)
    else:
        raise VehicleFileError(
            f"{path}: field '{s}.gain_unit' must be 'firmware_cmd_per_deg_s' or "
            f"'normalized_torque_per_rad_s', got {unit!r}"
        )
    return RateControllerParams(
        rate_hz=_number(table, "rate_hz", path, s),
        kp_nm_per_rad_s=kp * per_rad,
        ki_nm_per_rad=ki * per_rad,
        kd_nm_s_per_rad=kd * per_rad,
        integral_limit_rad=ilim_rad,
        body_rate_max_rad_s=_vector(table, "body_rate_max_rad_s", path, s, (3,)),
        firmware_kp=kp,
        firmware_ki=ki,
        firmware_kd=kd,
        gain_unit=unit,
        output_limit_nm=(_vector(table, "output_limit", path, s, (3,)) * torque_per_unit
                         if "output_limit" in table else np.full(3, np.inf)),
        torque_per_unit_nm=torque_per_unit,
    )


def load_vehicle(name_or_path: str | Path) -> Vehicle:
    """Load and validate a vehicle file: a bare id (``"crazyflie"``) or a path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = VEHICLE_DIR / f"{name_or_path}.toml"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in VEHICLE_DIR.glob("*.toml")))
            raise VehicleFileError(f"unknown vehicle {name_or_path!r}; known vehicles: {known}")
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise VehicleFileError(f"{path}: no such vehicle file") from None
    except tomllib.TOMLDecodeError as exc:
        raise VehicleFileError(f"{path}: not valid TOML: {exc}") from None

    v = _section(data, "vehicle", path)
    body = _section(data, "body", path)
    motors = _section(data, "motors", path)
    battery = _section(data, "battery", path)
    noise = _section(data, "sensor_noise", path)
    rnd = _section(data, "randomization", path)

    names = _get(motors, "names", path, "motors")
    if not (isinstance(names, list) and len(names) == 4 and all(isinstance(n, str) for n in names)):
        raise VehicleFileError(f"{path}: field 'motors.names' must be 4 strings")
    spin = _get(motors, "spin", path, "motors")
    if not (isinstance(spin, list) and len(spin) == 4 and all(s in ("cw", "ccw") for s in spin)):
        raise VehicleFileError(f"{path}: field 'motors.spin' must be 4 of 'cw'/'ccw', got {spin!r}")
    spin_sign = np.array([1.0 if s == "cw" else -1.0 for s in spin])
    if spin_sign.sum() != 0:
        raise VehicleFileError(f"{path}: field 'motors.spin' must have two cw and two ccw rotors")
    rotor_pos = _vector(motors, "position_m", path, "motors", (4, 3), nonneg=False)
    curve = _vector(motors, "thrust_curve_n", path, "motors", (3,))
    if curve.sum() <= 0 or (curve[1] == 0 and curve[2] == 0):
        raise VehicleFileError(f"{path}: field 'motors.thrust_curve_n' must give positive thrust")
    kappa = _number(motors, "torque_to_thrust_m", path, "motors")
    command_unit = _get(motors, "command_unit", path, "motors")
    command_max = _number(motors, "command_max", path, "motors")
    mass = _number(body, "mass_kg", path, "body")

    max_thrust = float(curve.sum())
    if 4 * max_thrust <= mass * GRAVITY_MPS2:
        raise VehicleFileError(f"{path}: 4 x max motor thrust {4 * max_thrust:.3f} N cannot lift {mass} kg")
    # slope of the thrust curve at the hover command, N per unit of u
    u_hover_thrust = mass * GRAVITY_MPS2 / 4.0
    c0, c1, c2 = curve
    u_hover = (-c1 + math.sqrt(c1 * c1 + 4 * c2 * (u_hover_thrust - c0))) / (2 * c2) if c2 else (u_hover_thrust - c0) / c1
    command_path = _command_path(data, path)
    compensated = command_path is not None and command_path.battery_compensation
    geometry = {
        "dthrust_du_hover_n": 2 * c2 * u_hover + c1,
        "count_thrust_n": command_path.thrust_max_n / command_max if compensated else None,
        "command_max": command_max if command_unit == "pwm" else 1.0,
        "arm_xy_m": np.abs(rotor_pos[:, :2]).mean(axis=0),
        "rotor_position_m": rotor_pos,
        "spin_sign": spin_sign,
        "kappa_m": kappa,
        "max_thrust_n": max_thrust,
    }

    return Vehicle(
        id=str(_get(v, "id", path, "vehicle")),
        name=str(_get(v, "name", path, "vehicle")),
        firmware=str(_get(v, "firmware", path, "vehicle")),
        source_path=str(path),
        mass_kg=mass,
        inertia_kgm2=_vector(body, "inertia_kgm2", path, "body", (3,)),
        drag_n_per_mps=_vector(body, "drag_n_per_mps", path, "body", (3,)),
        crash_speed_mps=_number(body, "crash_speed_mps", path, "body"),
        motor_names=tuple(names),
        rotor_position_m=rotor_pos,
        spin_sign=spin_sign,
        thrust_curve_n=curve,
        torque_to_thrust_m=kappa,
        tau_up_s=_number(motors, "tau_up_s", path, "motors"),
        tau_down_s=_number(motors, "tau_down_s", path, "motors"),
        command_unit=str(command_unit),
        command_max=command_max,
        battery=BatteryParams(
            cells=int(_number(battery, "cells", path, "battery")),
            voltage_full_v=_number(battery, "voltage_full_v", path, "battery"),
            voltage_empty_v=_number(battery, "voltage_empty_v", path, "battery"),
            capacity_mah=_number(battery, "capacity_mah", path, "battery"),
            internal_resistance_ohm=_number(battery, "internal_resistance_ohm", path, "battery"),
            hover_current_a=_number(battery, "hover_current_a", path, "battery"),
            low_voltage_v=_number(battery, "low_voltage_v", path, "battery"),
        ),
        rate_controller=_rate_controller(_section(data, "rate_controller", path), path, geometry),
        sensor_noise=SensorNoise(
            position_m=_number(noise, "position_m", path, "sensor_noise", positive=False),
            velocity_mps=_number(noise, "velocity_mps", path, "sensor_noise", positive=False),
            attitude_rad=_number(noise, "attitude_rad", path, "sensor_noise", positive=False),
            gyro_rad_s=_number(noise, "gyro_rad_s", path, "sensor_noise", positive=False),
        ),
        randomization=RandomizationRanges(
            mass_scale=_range(rnd, "mass_scale", path, "randomization"),
            inertia_scale=_range(rnd, "inertia_scale", path, "randomization"),
            thrust_scale=_range(rnd, "thrust_scale", path, "randomization"),
            motor_imbalance=_number(rnd, "motor_imbalance", path, "randomization", positive=False),
            tau_scale=_range(rnd, "tau_scale", path, "randomization"),
            com_offset_m=_number(rnd, "com_offset_m", path, "randomization", positive=False),
            tau_up_range_s=_range_opt(rnd, "tau_up_range_s", path, "randomization"),
            tau_down_range_s=_range_opt(rnd, "tau_down_range_s", path, "randomization"),
            torque_to_thrust_range_m=_range_opt(rnd, "torque_to_thrust_range_m", path, "randomization"),
            rate_gain_scale=_range_opt(rnd, "rate_gain_scale", path, "randomization"),
            rate_p_only_fraction=_fraction_opt(rnd, "rate_p_only_fraction", path, "randomization"),
            noise_scale=_range_opt(rnd, "noise_scale", path, "randomization"),
            uncompensated_fraction=_fraction_opt(rnd, "uncompensated_fraction", path, "randomization"),
            uncompensated_thrust_scale=(_range_opt(rnd, "uncompensated_thrust_scale", path, "randomization")
                                        or (1.0, 1.0)),
            battery_sense_error=(_number(rnd, "battery_sense_error", path, "randomization", positive=False)
                                 if "battery_sense_error" in rnd else 0.0),
        ),
        command_path=command_path,
    )


def known_vehicles() -> list[str]:
    """Ids of the vehicle files shipped in ``sim/vehicles``."""
    return sorted(p.stem for p in VEHICLE_DIR.glob("*.toml"))
