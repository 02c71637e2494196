"""The PX4 parameters a ctbr policy depends on: the values it was trained for, the ranges it
can still fly, the check the bridge runs before arming, and QGroundControl's ``.params`` file.

What the policy depends on, and why (PX4-Autopilot files cited):

* the rate-loop gains MC_{ROLL,PITCH,YAW}RATE_{P,I,D} (src/modules/mc_rate_control): the policy
  was trained with PX4's rate loop inside the simulator, with the vehicle file's gains; other
  gains are another closed-loop plant. Accepted within 1 % (float32 round trips).
* THR_MDL_FAC (src/lib/mixer_module/functions/FunctionMotors.hpp): the policy's collective is a
  fraction of maximum thrust, linear in thrust; PX4 makes it so only with THR_MDL_FAC matched to
  the motor's curve (the value in the .params file). Any other value moves the collective the
  policy needs to hover: accepted while that collective stays inside the hover collectives the
  policy met in training (the vehicle file's mass and thrust randomization).
* MPC_THR_HOVER (mc_pos_control; mc_hover_thrust_estimator): not used by the policy, but by
  PX4's own takeoff and landing phases and its land detector. Accepted while the collective the
  vehicle really hovers at (under the vehicle's THR_MDL_FAC) is within what PX4's hover-thrust
  estimator can reach from it: MPC_THR_HOVER +- HTE_THR_RANGE, ends constrained to [0, 0.8] and
  [0.2, 0.9] (MulticopterHoverThrustEstimator.cpp); +-0.05 without the estimator (MPC_USE_HTE 0).

The .params file is QGroundControl's parameter file format: comment lines starting with ``#``,
then one tab-separated line per parameter: Vehicle-Id, Component-Id, Name, Value, Type
(MAV_PARAM_TYPE: 6 INT32, 9 REAL32), as QGroundControl writes and loads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.errors import QuadhilError

RATE_AXES = (("ROLL", 0), ("PITCH", 1), ("YAW", 2))
RATE_REL_TOL = 0.01
HOVER_TOL_WITHOUT_HTE = 0.05
MAV_PARAM_TYPE_INT32, MAV_PARAM_TYPE_REAL32 = 6, 9
HTE_NAMES = ("HTE_THR_RANGE", "MPC_USE_HTE")


class Px4ParamError(QuadhilError):
    """The policy's vehicle cannot be described by PX4 parameters (not a PX4 vehicle)."""


@dataclass(frozen=True)
class PolicyParams:
    """The PX4 parameter values a policy was trained for (world units: normalized thrust)."""

    vehicle: str
    values: dict  # name -> value, in PX4's units; what the .params file holds
    hover_fraction: float  # trained hover collective (fraction of max thrust)
    hover_range: tuple[float, float]  # hover collectives met in training (randomization)
    motor_hover_command: float  # motor command u at which the real motor gives the hover thrust


def _thr_mdl_fac_of(vehicle) -> float:
    """The THR_MDL_FAC that makes PX4's collective linear in thrust for this motor curve:
    rel_thrust(u) = T(u) / T(1) ~= f u^2 + (1 - f) u, least squares over u in [0, 1]."""
    u = np.linspace(0.0, 1.0, 101)
    rel = np.asarray(vehicle.command_to_thrust(u), dtype=np.float64) / float(vehicle.command_to_thrust(np.ones(1))[0])
    basis = u * u - u
    f = float(np.dot(basis, rel - u) / np.dot(basis, basis))
    return min(max(f, 0.0), 1.0)


def policy_params(spec, vehicle) -> PolicyParams:
    """The PX4 parameters ``spec`` (a ctbr policy for ``vehicle``) was trained for."""
    if vehicle.firmware != "px4":
        raise Px4ParamError(f"vehicle {vehicle.id!r} does not run PX4: it has no PX4 parameters")
    rc = vehicle.rate_controller
    values = {}
    for axis, i in RATE_AXES:
        values[f"MC_{axis}RATE_P"] = float(rc.firmware_kp[i])
        values[f"MC_{axis}RATE_I"] = float(rc.firmware_ki[i])
        values[f"MC_{axis}RATE_D"] = float(rc.firmware_kd[i])
    hover = float(vehicle.hover_thrust_fraction)
    fac = _thr_mdl_fac_of(vehicle)
    values["THR_MDL_FAC"] = round(fac, 3)
    values["MPC_THR_HOVER"] = round(thrust_setpoint_for(hover, fac, vehicle), 3)
    r = vehicle.randomization
    hover_range = (hover * r.mass_scale[0] / r.thrust_scale[1], hover * r.mass_scale[1] / r.thrust_scale[0])
    u_hover = float(vehicle.thrust_to_command(np.array([hover * vehicle.max_thrust_n]))[0])
    return PolicyParams(vehicle.id, values, hover, hover_range, u_hover)


def thrust_setpoint_for(thrust_fraction: float, fac: float, vehicle) -> float:
    """PX4's normalized thrust setpoint that makes the motors give ``thrust_fraction`` of their
    maximum thrust when THR_MDL_FAC is ``fac``: the motor command u for that thrust on the
    vehicle's curve, then rel_thrust = fac u^2 + (1 - fac) u."""
    u = float(vehicle.thrust_to_command(np.array([thrust_fraction * vehicle.max_thrust_n]))[0])
    return fac * u * u + (1.0 - fac) * u


def names_to_read(pp: PolicyParams) -> list[str]:
    """The parameters the preflight check reads from the vehicle."""
    return list(pp.values) + list(HTE_NAMES)


def check(pp: PolicyParams, actual: dict, vehicle) -> list[str]:
    """Each way ``actual`` (the vehicle's parameters) differs from what the policy can fly, as a
    message naming the parameter and both values; [] when it can fly."""
    problems = []
    missing = [n for n in pp.values if n not in actual]
    if missing:
        problems.append("the vehicle did not report " + ", ".join(missing) + " (PARAM_REQUEST_READ unanswered)")
    for name, trained in pp.values.items():
        if name.startswith("MC_") and name in actual:
            got = float(actual[name])
            if not math.isclose(got, trained, rel_tol=RATE_REL_TOL, abs_tol=1e-6):
                problems.append(f"{name} is {got:g} on the vehicle; the policy was trained with {trained:g} "
                                "(PX4's rate loop is inside its training simulator)")
    fac = actual.get("THR_MDL_FAC")
    if fac is not None:
        needed = thrust_setpoint_for(pp.hover_fraction, float(fac), vehicle)
        lo, hi = pp.hover_range
        if not lo <= needed <= hi:
            problems.append(f"THR_MDL_FAC is {fac:g} on the vehicle (the policy's file: {pp.values['THR_MDL_FAC']:g}): "
                            f"the policy would have to hover at a collective of {needed:.3f}, outside the "
                            f"{lo:.3f}..{hi:.3f} it met in training")
        hover = actual.get("MPC_THR_HOVER")
        if hover is not None:
            if actual.get("MPC_USE_HTE", 1) >= 1:
                rng = float(actual.get("HTE_THR_RANGE", 0.2))
                reach = (min(max(hover - rng, 0.0), 0.8), min(max(hover + rng, 0.2), 0.9))
            else:
                reach = (hover - HOVER_TOL_WITHOUT_HTE, hover + HOVER_TOL_WITHOUT_HTE)
            if not reach[0] <= needed <= reach[1]:
                problems.append(
                    f"MPC_THR_HOVER is {hover:g} on the vehicle (the policy's file: {pp.values['MPC_THR_HOVER']:g}): "
                    f"with THR_MDL_FAC {fac:g} this vehicle hovers at {needed:.3f}, outside the {reach[0]:.2f}.."
                    f"{reach[1]:.2f} PX4's hover-thrust estimator can reach; PX4's own takeoff and landing "
                    "would fly on a wrong hover thrust")
    return problems


def format_qgc_params(values: dict, sysid: int = 1, compid: int = 1, comment: str = "",
                      int_names: tuple[str, ...] = ()) -> str:
    """QGroundControl .params text for {name: value} (INT32 where the value is PX4 INT32:
    MPC_USE_HTE and ``int_names``)."""
    lines = [f"# Onboard parameters for Vehicle {sysid}", "#"]
    lines += [f"# {c}" for c in comment.splitlines() if c.strip()]
    lines += ["#", "# Vehicle-Id Component-Id Name Value Type"]
    for name in sorted(values):
        v = float(values[name])
        ptype = MAV_PARAM_TYPE_INT32 if name in ("MPC_USE_HTE", *int_names) else MAV_PARAM_TYPE_REAL32
        text = str(int(v)) if ptype == MAV_PARAM_TYPE_INT32 else repr(float(np.float32(v)))
        lines.append("\t".join((str(sysid), str(compid), name, text, str(ptype))))
    return "\n".join(lines) + "\n"


def parse_qgc_params(text: str) -> dict:
    """{name: value} from a QGroundControl .params text (comments and blank lines skipped)."""
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 5:
            raise QuadhilError(f".params line {n}: expected 5 tab-separated columns, got {len(cols)}")
        out[cols[2]] = float(cols[3])
    return out


def write_params_file(path: str | Path, spec, vehicle) -> Path:
    """Write the policy's PX4 parameters next to its .tflite (``policy.params``); returns the path."""
    pp = policy_params(spec, vehicle)
    path = Path(path)
    comment = (f"quadhil: the PX4 parameters the {vehicle.id} policy was trained for (rate loop, thrust model,\n"
               "hover thrust). Load in QGroundControl (Parameters > Tools > Load from file) or let\n"
               "`quadhil fly --set-params` set them; `quadhil fly` refuses a vehicle that differs.")
    path.write_text(format_qgc_params(pp.values, comment=comment), encoding="utf-8")
    return path
