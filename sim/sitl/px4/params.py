"""The PX4 parameters the twin honours, with PX4's names, types, defaults and ranges.

Defaults are PX4 v1.14+ defaults from the modules' parameter files (cited per group) except
where noted. The MAVLink parameter protocol (src/modules/mavlink/mavlink_parameters.cpp):
PARAM_VALUE carries param_index/param_count; INT32 parameters travel *bytewise* in the float
field (PX4 memcpy's the int32 into param_value), which is what MAVSDK and QGroundControl
expect; :func:`encode_value` / :func:`decode_value` do that here.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from sim.errors import QuadhilError

MAV_PARAM_TYPE_INT32 = 6
MAV_PARAM_TYPE_REAL32 = 9


class ParamError(QuadhilError, ValueError):
    """An unknown parameter name, or a value outside the parameter's range."""


@dataclass(frozen=True)
class ParamDef:
    """One PX4 parameter: name (<= 16 chars), MAV_PARAM_TYPE, default and [min, max]."""

    name: str
    type: int
    default: float
    min: float
    max: float
    description: str


def _f(name, default, lo, hi, text):
    return ParamDef(name, MAV_PARAM_TYPE_REAL32, float(default), float(lo), float(hi), text)


def _i(name, default, lo, hi, text):
    return ParamDef(name, MAV_PARAM_TYPE_INT32, int(default), int(lo), int(hi), text)


# Ordered as PX4 sends them: sorted by name (param_find order is alphabetical).
_DEFS = [
    # src/modules/commander/commander_params.c
    _f("COM_OF_LOSS_T", 1.0, 0.0, 60.0, "offboard loss timeout, s"),
    _i("COM_OBL_RC_ACT", 0, 0, 7, "offboard loss action: 0 Position, 1 Altitude, 2 Manual, 3 Return, "
       "4 Land, 5 Hold, 6 Terminate, 7 Disarm"),
    _f("COM_DISARM_LAND", 2.0, -1.0, 20.0, "auto-disarm this long after landing, s (<= 0 off)"),
    _f("COM_DISARM_PRFLT", 10.0, -1.0, 20.0, "auto-disarm if no takeoff this long after arming, s"),
    _f("COM_SPOOLUP_TIME", 1.0, 0.0, 5.0, "motor spool-up after arming before position control may take off, s"),
    _i("MAV_SYS_ID", 1, 1, 250, "MAVLink system id"),
    _i("MAV_TYPE", 2, 0, 22, "MAV_TYPE (2 = quadrotor)"),
    _i("SYS_AUTOSTART", 4001, 0, 9999999, "airframe (4001 = gz x500)"),
    # src/modules/navigator/geofence_params.c (0 = that check off). Reported to clients (the
    # bridge derives its default fence from them); the twin does not enforce PX4's geofence.
    _i("GF_ACTION", 2, 0, 5, "geofence violation action: 0 None, 1 Warning, 2 Hold, 3 Return, 4 Terminate, 5 Land"),
    _f("GF_MAX_HOR_DIST", 0.0, 0.0, 10000.0, "max horizontal distance from Home, m (0 off)"),
    _f("GF_MAX_VER_DIST", 0.0, 0.0, 10000.0, "max vertical distance from Home, m (0 off)"),
    # src/modules/battery_status / lib/battery
    _f("BAT_LOW_THR", 0.15, 0.12, 0.5, "low battery threshold, fraction"),
    _f("BAT_CRIT_THR", 0.07, 0.05, 0.25, "critical battery threshold, fraction (arming denied below)"),
    # src/modules/navigator/navigator_params.c, mc_pos_control params
    _f("MIS_TAKEOFF_ALT", 2.5, 0.0, 80.0, "default takeoff altitude above home, m"),
    _f("MPC_TKO_SPEED", 1.5, 1.0, 5.0, "takeoff climb rate, m/s"),
    _f("MPC_LAND_SPEED", 0.7, 0.6, 5.0, "landing descend rate, m/s"),
    _f("MPC_TKO_RAMP_T", 3.0, 0.0, 5.0, "takeoff ramp: climb-rate limit from zero thrust to climb speed in this time, s"),
    # src/modules/land_detector/land_detector_params_mc.yaml
    _f("LNDMC_Z_VEL_MAX", 0.25, 0.0, 2.0, "land detector: max vertical speed when landed, m/s"),
    _f("LNDMC_XY_VEL_MAX", 1.5, 0.0, 5.0, "land detector: max horizontal speed when landed, m/s"),
    _f("LNDMC_ROT_MAX", 20.0, 0.0, 180.0, "land detector: max roll/pitch rate when landed, deg/s"),
    # src/lib/mixer_module (PWM Outputs group): rel_thrust = f u^2 + (1 - f) u, PX4 default 0
    _f("THR_MDL_FAC", 0.0, 0.0, 1.0, "thrust model factor: thrust = f u^2 + (1 - f) u of the motor command u"),
    # src/modules/mc_hover_thrust_estimator (HTE_THR_RANGE bounds the estimate around MPC_THR_HOVER)
    _i("MPC_USE_HTE", 1, 0, 1, "use the hover thrust estimate in position control and land detection"),
    _f("HTE_THR_RANGE", 0.2, 0.0, 0.4, "hover thrust estimate range around MPC_THR_HOVER"),
    # src/modules/mc_pos_control/multicopter_position_control_params.c (+ _gain_params.c)
    _f("MPC_XY_P", 0.95, 0.0, 2.0, "horizontal position P, 1/s"),
    _f("MPC_Z_P", 1.0, 0.1, 1.5, "vertical position P, 1/s"),
    _f("MPC_XY_VEL_P_ACC", 1.8, 1.2, 5.0, "horizontal velocity P, (m/s^2)/(m/s)"),
    _f("MPC_XY_VEL_I_ACC", 0.4, 0.0, 60.0, "horizontal velocity I, (m/s^2)/m"),
    _f("MPC_XY_VEL_D_ACC", 0.2, 0.1, 2.0, "horizontal velocity D, m/s^2/(m/s^2)"),
    _f("MPC_Z_VEL_P_ACC", 4.0, 2.0, 15.0, "vertical velocity P"),
    _f("MPC_Z_VEL_I_ACC", 2.0, 0.2, 3.0, "vertical velocity I"),
    _f("MPC_Z_VEL_D_ACC", 0.0, 0.0, 2.0, "vertical velocity D"),
    _f("MPC_XY_VEL_MAX", 12.0, 0.0, 20.0, "max horizontal velocity, m/s"),
    _f("MPC_Z_VEL_MAX_UP", 3.0, 0.5, 8.0, "max climb rate, m/s"),
    _f("MPC_Z_VEL_MAX_DN", 1.5, 0.5, 4.0, "max descend rate, m/s"),
    _f("MPC_TILTMAX_AIR", 45.0, 20.0, 89.0, "max tilt in air, deg"),
    _f("MPC_TILTMAX_LND", 12.0, 0.0, 89.0, "max tilt during takeoff and landing, deg"),
    # PX4's generic default is 0.5; the airframe the twin reports (SYS_AUTOSTART 4001, gz x500:
    # ROMFS/px4fmu_common/init.d-posix/airframes/4001_gz_x500) sets 0.60. The hover-thrust
    # estimator (hover_thrust.py) adapts it in flight within HTE_THR_RANGE.
    _f("MPC_THR_HOVER", 0.60, 0.1, 0.8, "hover thrust fraction"),
    _f("MPC_THR_MIN", 0.12, 0.05, 0.5, "min collective thrust in position control"),
    _f("MPC_MANTHR_MIN", 0.08, 0.0, 1.0, "min collective thrust in manual/rate modes"),
    _f("MPC_THR_MAX", 1.0, 0.0, 1.0, "max collective thrust in position control"),
    # src/modules/mc_att_control/mc_att_control_params.c
    _f("MC_ROLL_P", 6.5, 0.0, 12.0, "roll angle P, 1/s"),
    _f("MC_PITCH_P", 6.5, 0.0, 12.0, "pitch angle P, 1/s"),
    _f("MC_YAW_P", 2.8, 0.0, 5.0, "yaw angle P, 1/s"),
    _f("MC_YAW_WEIGHT", 0.4, 0.0, 1.0, "yaw weight in the attitude error"),
    _f("MC_ROLLRATE_MAX", 220.0, 0.0, 1800.0, "max roll rate, deg/s"),
    _f("MC_PITCHRATE_MAX", 220.0, 0.0, 1800.0, "max pitch rate, deg/s"),
    _f("MC_YAWRATE_MAX", 200.0, 0.0, 1800.0, "max yaw rate, deg/s"),
    # src/modules/mc_rate_control/mc_rate_control_params.c (the vehicle file holds the same)
    _f("MC_ROLLRATE_P", 0.15, 0.01, 0.5, "roll rate P"),
    _f("MC_ROLLRATE_I", 0.2, 0.0, 10.0, "roll rate I"),
    _f("MC_ROLLRATE_D", 0.003, 0.0, 0.01, "roll rate D"),
    _f("MC_PITCHRATE_P", 0.15, 0.01, 0.6, "pitch rate P"),
    _f("MC_PITCHRATE_I", 0.2, 0.0, 10.0, "pitch rate I"),
    _f("MC_PITCHRATE_D", 0.003, 0.0, 0.01, "pitch rate D"),
    _f("MC_YAWRATE_P", 0.2, 0.0, 0.6, "yaw rate P"),
    _f("MC_YAWRATE_I", 0.1, 0.0, 10.0, "yaw rate I"),
    _f("MC_YAWRATE_D", 0.0, 0.0, 0.01, "yaw rate D"),
    _f("MC_RR_INT_LIM", 0.3, 0.0, 1.0, "roll rate integrator limit"),
    _f("MC_PR_INT_LIM", 0.3, 0.0, 1.0, "pitch rate integrator limit"),
    _f("MC_YR_INT_LIM", 0.3, 0.0, 1.0, "yaw rate integrator limit"),
]
PARAM_DEFS: dict[str, ParamDef] = {d.name: d for d in sorted(_DEFS, key=lambda d: d.name)}


def encode_value(value: float, param_type: int) -> float:
    """The float that goes into PARAM_VALUE.param_value (INT32: the int's bytes, as PX4 does)."""
    if param_type == MAV_PARAM_TYPE_INT32:
        return struct.unpack("<f", struct.pack("<i", int(value)))[0]
    return float(value)


def decode_value(wire_value: float, param_type: int) -> float:
    """Inverse of :func:`encode_value`: the parameter's value from PARAM_SET/PARAM_VALUE."""
    if param_type == MAV_PARAM_TYPE_INT32:
        return float(struct.unpack("<i", struct.pack("<f", wire_value))[0])
    return float(wire_value)


class ParamStore:
    """Current values of the twin's parameters; listeners hear every accepted change."""

    def __init__(self, overrides: dict[str, float] | None = None):
        self.values: dict[str, float] = {n: d.default for n, d in PARAM_DEFS.items()}
        self.names: list[str] = list(PARAM_DEFS)
        self._listeners = []
        for name, value in (overrides or {}).items():
            self.set(name, value)

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    def __len__(self) -> int:
        return len(self.names)

    def on_change(self, callback) -> None:
        """Call ``callback(name, value)`` after every accepted change."""
        self._listeners.append(callback)

    def index(self, name: str) -> int:
        """PX4's param_index of ``name``."""
        return self.names.index(name)

    def set(self, name: str, value: float) -> float:
        """Set ``name`` to ``value`` (rounded for INT32). Raises ParamError naming the problem.

        PX4's firmware itself does not range-check PARAM_SET (QGroundControl does, from the
        metadata); the twin refuses non-finite and out-of-range values so that a fuzzed or
        mistyped PARAM_SET cannot make it unflyable, and says so in a STATUSTEXT.
        """
        d = PARAM_DEFS.get(name)
        if d is None:
            raise ParamError(f"unknown parameter {name!r}")
        if not math.isfinite(value):
            raise ParamError(f"parameter {name}: value {value!r} is not finite")
        if d.type == MAV_PARAM_TYPE_INT32:
            value = float(int(round(value)))
        if not d.min <= value <= d.max:
            raise ParamError(f"parameter {name}: {value:g} outside [{d.min:g}, {d.max:g}]")
        self.values[name] = value
        for cb in self._listeners:
            cb(name, value)
        return value
