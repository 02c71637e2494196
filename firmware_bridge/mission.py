"""Preflight mission rules: what a pilot typed, judged before anything can spin.

Pure logic, no I/O. The bridge plans the mission from where the vehicle is (:func:`plan_mission`),
picks the geofence (:func:`default_geofence` unless one was given), and :func:`check_mission`
returns every rule the mission breaks, each with its numbers; the supervisor refuses to arm on
any of them, in a dry run exactly as armed. In flight the same plan sets two time limits
(:func:`transit_limit_s`, :attr:`MissionLimits.flight_time_max_s`) that end the flight in its
failsafe. World frame ENU, metres, seconds.

Rules (docs/bridge.md lists each with its default and the flag that changes it):

* ``start-in-fence``: the vehicle starts inside the geofence.
* ``target-in-fence``: the target lies inside the fence by at least the margin on every face.
* ``target-above-ground``: the target is at least ``min_height_m`` above the ground (the start).
* ``takeoff-in-fence``: the takeoff height is above ``min_height_m`` and below zmax less the margin.
* ``reach``: the planned climb-and-transit, at the reference's speed, takes at most
  ``transit_max_s`` (a target 30 m up is 60 s of climb at 0.5 m/s: refused).
* ``flight-time``: transit + hover + descent, plus ``transit_slack_s`` (takeoff and touch-down on the
  vehicle's own stabilization take a little longer than planned), fit in ``flight_time_max_s``.
* ``rate``: the control rate is the policy's trained rate (its action history and the dynamics it
  learned hold at that rate only), unless explicitly allowed; then it is a warning.
* ``telemetry-rate``: the link delivers the state at least as often as the policy acts. A cflib log
  block runs at 100 Hz at most (10 ms period unit); a 250 Hz motor-level policy relayed on it sees
  each state 2-3 times, a tick or more of delay it was not trained for. Fly it onboard
  (``--onboard``), or explicitly allowed (``--allow-rate-mismatch``) as a warning.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from firmware_bridge.reference import Reference
from firmware_bridge.supervisor import Geofence
from sim.errors import QuadhilError

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

# The policy's reference moves at this speed along its path (and descends at land_speed_mps).
REFERENCE_SPEED_MPS = Reference.climb_speed_mps
# PX4 geofence parameters (src/modules/navigator/geofence_params.c): horizontal and vertical
# distance from Home in m, 0 = that check is off; GF_ACTION 0 None, 1 Warning, 2 Hold mode
# (default), 3 Return mode, 4 Terminate, 5 Land mode.
PX4_FENCE_PARAMS = ("GF_MAX_HOR_DIST", "GF_MAX_VER_DIST", "GF_ACTION")
PX4_GF_ACTIONS = {0: "None", 1: "Warning", 2: "Hold mode", 3: "Return mode", 4: "Terminate", 5: "Land mode"}
RATE_REL_TOL = 1e-6


class MissionError(QuadhilError, ValueError):
    """A vehicle file's [limits] table is missing or malformed, or an override is invalid."""


@dataclass(frozen=True)
class MissionLimits:
    """The mission rules' thresholds for one vehicle (its TOML's ``[limits]``, then overrides)."""

    geofence_half_width_m: float  # default fence: start +- this in x and y
    geofence_height_m: float  # default fence: zmax = start z + this
    fence_margin_m: float
    min_height_m: float
    speed_max_mps: float  # the vehicle's own velocity limit (firmware position controller)
    transit_max_s: float
    transit_slack_s: float
    reach_radius_m: float
    flight_time_max_s: float

    @classmethod
    def from_vehicle_file(cls, path: str | Path) -> "MissionLimits":
        """Read ``[limits]`` of a vehicle TOML; raise :class:`MissionError` naming a bad field."""
        data = tomllib.loads(Path(path).read_text())
        table = data.get("limits")
        if not isinstance(table, dict):
            raise MissionError(f"{path}: no [limits] table (the preflight mission rules need it)")
        values = {}
        for name in cls.__dataclass_fields__:
            v = table.get(name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise MissionError(f"{path}: field 'limits.{name}' must be a finite number >= 0, got {v!r}")
            values[name] = float(v)
        return cls(**values)

    def with_overrides(self, **overrides: float | None) -> "MissionLimits":
        """A copy with every non-None override applied (flags of ``quadhil fly``)."""
        given = {k: float(v) for k, v in overrides.items() if v is not None}
        unknown = set(given) - set(self.__dataclass_fields__)
        if unknown:
            raise MissionError(f"unknown mission limits: {', '.join(sorted(unknown))}")
        return replace(self, **given)


@dataclass(frozen=True)
class FenceChoice:
    """The geofence a flight uses and where it came from (shown in the preflight summary)."""

    fence: Geofence
    source: str

    def as_dict(self) -> dict:
        """Plain dictionary for JSON and the flight log."""
        return {**asdict(self.fence), "source": self.source}


def default_geofence(link_kind: str, start_w: np.ndarray, limits: MissionLimits,
                     px4_params: dict[str, float] | None = None) -> FenceChoice:
    """The fence to fly in when none was given (ENU, m), around the start position ``start_w``.

    Crazyflie (``cflib``): a box of +-``geofence_half_width_m`` around the start, zmax
    ``geofence_height_m`` above it. PX4 (``mavlink``): PX4's own GF_MAX_HOR_DIST (a circle around
    Home: the box inscribed in it, half-width r/sqrt(2)) and GF_MAX_VER_DIST (above Home) where
    the vehicle reports them non-zero, each else the vehicle file's conservative box.
    """
    x, y, z = (float(v) for v in np.asarray(start_w, dtype=np.float64).reshape(3))
    half, height = limits.geofence_half_width_m, limits.geofence_height_m
    sources = []
    if link_kind == "mavlink":
        params = px4_params or {}
        hor, ver, action = (params.get(n) for n in PX4_FENCE_PARAMS)
        if hor is not None and hor > 0:
            half = hor / math.sqrt(2.0)
            sources.append(f"x/y from PX4 GF_MAX_HOR_DIST={hor:g} m (inscribed box)")
        else:
            sources.append("x/y: vehicle file [limits] (PX4 GF_MAX_HOR_DIST "
                           f"{'off (0)' if hor is not None else 'not readable'})")
        if ver is not None and ver > 0:
            height = ver
            sources.append(f"zmax from PX4 GF_MAX_VER_DIST={ver:g} m")
        else:
            sources.append("zmax: vehicle file [limits] (PX4 GF_MAX_VER_DIST "
                           f"{'off (0)' if ver is not None else 'not readable'})")
        if action is not None:
            sources.append(f"PX4 GF_ACTION={action:g} ({PX4_GF_ACTIONS.get(int(action), 'unknown')})")
    else:
        sources.append("vehicle file [limits] around the start")
    fence = Geofence(x - half, x + half, y - half, y + half, z + height)
    return FenceChoice(fence, "default: " + "; ".join(sources))


@dataclass(frozen=True)
class Mission:
    """What the flight will do (world ENU, m, s), planned from where the vehicle is."""

    start_w: np.ndarray
    target_w: np.ndarray
    takeoff_h: float  # absolute z of the straight climb before moving to the target
    ground_z: float
    hover_s: float
    handover: bool
    rate_hz: float
    trained_rate_hz: float
    telemetry_rate_hz: float | None = None  # how often the link delivers a state estimate (None: at the control rate)

    @property
    def path_w(self) -> np.ndarray:
        """(K, 3) waypoints: start, the top of the climb (if any), the target."""
        pts = [np.asarray(self.start_w, dtype=np.float64)]
        if not self.handover and self.takeoff_h > self.start_w[2]:
            pts.append(np.array([self.start_w[0], self.start_w[1], self.takeoff_h]))
        pts.append(np.asarray(self.target_w, dtype=np.float64))
        return np.stack(pts)

    @property
    def path_m(self) -> float:
        """Length of the climb-and-transit path, m."""
        return float(np.linalg.norm(np.diff(self.path_w, axis=0), axis=1).sum())


def plan_mission(start_w, target_w, takeoff_height_m: float | None, hover_s: float, handover: bool,
                 rate_hz: float, trained_rate_hz: float, telemetry_rate_hz: float | None = None) -> Mission:
    """Plan from the start (ENU, m): no target -> above the start at the takeoff height (default
    1 m; handing over: that much above where the vehicle is); the climb goes to the takeoff
    height (default the target's z); the ground is the start's z (0 when handing over).
    ``telemetry_rate_hz``: how often the link delivers the state (Hz; None: as often as asked)."""
    start = np.asarray(start_w, dtype=np.float64).reshape(3).copy()
    if target_w is not None:
        target = np.asarray(target_w, dtype=np.float64).reshape(3).copy()
    else:
        h = takeoff_height_m if takeoff_height_m is not None else 1.0
        target = np.array([start[0], start[1], start[2] + h if handover else h])
    takeoff_h = float(takeoff_height_m) if takeoff_height_m is not None else float(target[2])
    ground_z = 0.0 if handover else float(start[2])
    return Mission(start, target, takeoff_h, ground_z, float(hover_s), bool(handover), float(rate_hz),
                   float(trained_rate_hz), None if telemetry_rate_hz is None else float(telemetry_rate_hz))


@dataclass(frozen=True)
class Refusal:
    """One broken rule: its name, a sentence with the numbers, and the numbers themselves."""

    rule: str
    message: str
    values: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"

    def as_dict(self) -> dict:
        """Plain dictionary for JSON."""
        return {"rule": self.rule, "message": self.message, **self.values}


def transit_s(mission: Mission, limits: MissionLimits) -> float:
    """Planned time (s) to climb and move to the target at the reference's speed."""
    return mission.path_m / min(REFERENCE_SPEED_MPS, limits.speed_max_mps)


def transit_limit_s(mission: Mission, limits: MissionLimits) -> float:
    """Time after takeoff (s) by which the vehicle must have come within ``reach_radius_m`` of
    the target, else the flight ends in failsafe: the planned transit plus the slack."""
    return transit_s(mission, limits) + limits.transit_slack_s


def flight_s(mission: Mission, limits: MissionLimits) -> float:
    """Planned flight time (s): transit, hover, descent to the ground at the landing speed."""
    descent = max(0.0, float(mission.target_w[2]) - mission.ground_z) / Reference.land_speed_mps
    return transit_s(mission, limits) + mission.hover_s + descent


def check_mission(mission: Mission, fence: Geofence, limits: MissionLimits,
                  allow_rate_mismatch: bool = False) -> tuple[list[Refusal], list[str]]:
    """Every rule ``mission`` breaks in ``fence`` (refusals), and warnings; see the module doc."""
    refusals: list[Refusal] = []
    warnings: list[str] = []
    m = limits.fence_margin_m
    sx, sy, sz = (float(v) for v in mission.start_w)
    tx, ty, tz = (float(v) for v in mission.target_w)
    fence_d = asdict(fence)

    where = fence.breach(mission.start_w)
    if where is not None:
        refusals.append(Refusal("start-in-fence", f"the vehicle starts outside the geofence: {where}",
                                {"start_w": [sx, sy, sz], "geofence": fence_d}))

    faces = [("x", tx, fence.x_min_m, fence.x_max_m), ("y", ty, fence.y_min_m, fence.y_max_m)]
    outside = [f"{ax}={v:.2f} m not in [{lo:.2f} + {m:g}, {hi:.2f} - {m:g}]" for ax, v, lo, hi in faces
               if not (lo + m <= v <= hi - m)]
    if tz > fence.z_max_m - m:
        outside.append(f"z={tz:.2f} m > zmax {fence.z_max_m:g} - margin {m:g} = {fence.z_max_m - m:.2f} m")
    if outside:
        refusals.append(Refusal("target-in-fence", "target outside the geofence less its margin: "
                                + "; ".join(outside),
                                {"target_w": [tx, ty, tz], "geofence": fence_d, "margin_m": m}))

    floor = mission.ground_z + limits.min_height_m
    if tz < floor:
        refusals.append(Refusal("target-above-ground",
                                f"target z={tz:.2f} m < ground {mission.ground_z:.2f} m + minimum height "
                                f"{limits.min_height_m:g} m = {floor:.2f} m",
                                {"target_z_m": tz, "ground_z_m": mission.ground_z, "min_height_m": limits.min_height_m}))

    if not mission.handover and mission.takeoff_h > sz:
        ceiling = fence.z_max_m - m
        if not (floor <= mission.takeoff_h <= ceiling):
            refusals.append(Refusal("takeoff-in-fence",
                                    f"takeoff height {mission.takeoff_h:.2f} m not in [{floor:.2f}, {ceiling:.2f}] m "
                                    f"(ground + minimum height, zmax - margin)",
                                    {"takeoff_height_m": mission.takeoff_h, "min_z_m": floor, "max_z_m": ceiling}))

    speed = min(REFERENCE_SPEED_MPS, limits.speed_max_mps)
    t_transit = transit_s(mission, limits)
    if t_transit > limits.transit_max_s:
        refusals.append(Refusal("reach", f"{mission.path_m:.2f} m of climb and transit at {speed:.2f} m/s takes "
                                         f"{t_transit:.1f} s > {limits.transit_max_s:g} s",
                                {"path_m": mission.path_m, "speed_mps": speed, "transit_s": t_transit,
                                 "transit_max_s": limits.transit_max_s}))

    t_flight = flight_s(mission, limits)
    if t_flight + limits.transit_slack_s > limits.flight_time_max_s:
        refusals.append(Refusal("flight-time", f"planned flight {t_flight:.1f} s (transit, hover "
                                               f"{mission.hover_s:g} s, descent) + slack {limits.transit_slack_s:g} s "
                                               f"> {limits.flight_time_max_s:g} s",
                                {"flight_s": t_flight, "slack_s": limits.transit_slack_s,
                                 "flight_time_max_s": limits.flight_time_max_s}))

    def rate_rule(rule: str, text: str, numbers: dict) -> None:
        """A rate rule is a refusal unless --allow-rate-mismatch makes it a warning."""
        if allow_rate_mismatch:
            warnings.append(f"{rule}: {text}; flown anyway (--allow-rate-mismatch)")
        else:
            refusals.append(Refusal(rule, text + "; pass --allow-rate-mismatch to fly it anyway", numbers))

    if not math.isclose(mission.rate_hz, mission.trained_rate_hz, rel_tol=RATE_REL_TOL):
        rate_rule("rate", f"control rate {mission.rate_hz:g} Hz != the policy's trained rate "
                          f"{mission.trained_rate_hz:g} Hz (its action history and learned dynamics hold at that rate only)",
                  {"rate_hz": mission.rate_hz, "trained_rate_hz": mission.trained_rate_hz})

    tel_hz = mission.telemetry_rate_hz
    if tel_hz is not None and mission.rate_hz > tel_hz * (1.0 + RATE_REL_TOL):
        rate_rule("telemetry-rate", f"the policy acts at {mission.rate_hz:g} Hz but this link delivers the state at "
                                    f"{tel_hz:g} Hz: it would act {mission.rate_hz / tel_hz:.1f} times on each state, "
                                    "a delay it was not trained for; fly it onboard (--onboard) or a policy at <= the "
                                    "link's rate",
                  {"rate_hz": mission.rate_hz, "telemetry_rate_hz": tel_hz})
    return refusals, warnings


def mission_summary(mission: Mission, fence: FenceChoice, limits: MissionLimits) -> dict:
    """The preflight summary (JSON, flight log): fence, plan, limits."""
    return {
        "geofence": fence.as_dict(),
        "start_w": mission.start_w, "target_w": mission.target_w, "takeoff_height_m": mission.takeoff_h,
        "ground_z_m": mission.ground_z, "path_m": mission.path_m, "transit_s": transit_s(mission, limits),
        "transit_limit_s": transit_limit_s(mission, limits), "flight_s": flight_s(mission, limits),
        "rate_hz": mission.rate_hz, "trained_rate_hz": mission.trained_rate_hz, "limits": asdict(limits),
    }
