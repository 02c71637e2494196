"""The policy contract: what a policy sees, what its actions mean, and at what rate it runs.

Defined once, here; the trainer, the exporter, the SITL twins and the bridge all import it.
The bridge builds its observation with :func:`observe`, the very function training used, and
turns actions into commands with :func:`act_to_command`.

Default observation (Molchanov et al. 2019, "Sim-to-(Multi)-Real"; Eschmann et al. 2023,
RLtools "Learning to Fly in Seconds")::

    position_error_w   3   m       p - p_target, world ENU, clipped to +-position_error_clip_m
    rotation_matrix_wb 9   -       body-to-world R, row-major
    velocity_w         3   m/s     world ENU
    omega_b            3   rad/s   body FLU
    last_actions       4*h -       the last h normalized actions, newest first

Layout ``integral`` adds, after the default fields::

    position_error_integral_w 3 m*s  sum of position_error_w * dt over the ticks the vehicle was
                                     within INTEGRAL_RADIUS_M of the target, clipped per axis to
                                     +-INTEGRAL_LIMIT_M_S (:func:`integrate_position_error`)

With ``state_history`` k > 0 the layout then adds the estimates of the k control ticks before
this one, newest first (:func:`push_state_history`)::

    velocity_history_w 3*k m/s     velocity_w of ticks t-1 .. t-k, world ENU
    omega_history_b    3*k rad/s   omega_b of ticks t-1 .. t-k, body FLU

With the action history they are meant to let a feed-forward policy read how this airframe
answers its commands (the rate loop, the motors' lag: quantities the randomization draws and the
policy cannot see). Measured on the x500, 320 ms of them hold about half of the rate loop's gain
and little else, and training with them did not lift success
(docs/experiments/2026-12-07-x500-state-history.md). The caller holds them and starts them, when
the policy takes over, with k copies of the first estimate (no motion before the first tick).

The position-error integral is the one piece of memory a trim error needs: nominal-constant
actions on an airframe that is heavier or weaker than nominal leave a steady offset that a
memoryless policy can only shrink by stiffness (docs/training.md). The caller holds the integral,
as it holds the action history, and zeroes it when the policy takes over; integrating only near
the target keeps a throw (or a takeoff) from winding it up.

Actions are four numbers in [-1, 1]:

* ``motors``: per-motor thrust fraction f = (a + 1) / 2 of the *nominal* vehicle's max thrust,
  firmware motor order. Nominal, never "0 = hover of this airframe": the policy must learn the
  trim error a real vehicle shows.
* ``ctbr``: a[0] -> collective thrust fraction (a0 + 1) / 2 of 4 x max motor thrust;
  a[1:4] * body_rate_max_rad_s -> body-rate setpoint (FLU), flown by the firmware's rate loop.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from sim.errors import QuadhilError
from sim.frames import quat_to_rotmat
from sim.vehicle import Vehicle

SPEC_VERSION = "1.0"
ACTION_MODES = ("motors", "ctbr")
ACTION_DIM = 4


class SpecError(QuadhilError, ValueError):
    """A policy spec is malformed, of an unknown version, or does not match what uses it."""


@dataclass(frozen=True)
class ObsField:
    """One named slice of the observation vector."""

    name: str
    size: int
    unit: str


# Builders for each observation field the contract knows. Inputs are batched, world ENU / body FLU.
_FIELD_UNITS = {
    "position_error_w": "m",
    "rotation_matrix_wb": "1",
    "rotation_matrix_rows01_wb": "1",
    "velocity_w": "m/s",
    "omega_b": "rad/s",
    "last_actions": "1",
    "position_error_integral_w": "m*s",
    "velocity_history_w": "m/s",
    "omega_history_b": "rad/s",
}
STATE_HISTORY_FIELDS = ("velocity_history_w", "omega_history_b")
STATE_HISTORY_MAX = 16

INTEGRAL_RADIUS_M = 0.3  # integrate only within this distance of the target
INTEGRAL_LIMIT_M_S = 0.5  # per-axis clip of the integral (anti-windup)


@dataclass(frozen=True)
class PolicySpec:
    """Versioned contract between a trained policy and everything that runs it."""

    vehicle: str
    action_mode: str
    control_rate_hz: float
    observation: tuple[ObsField, ...]
    action_history: int
    position_error_clip_m: float
    thrust_max_n: float  # nominal max thrust of one motor, N
    body_rate_max_rad_s: tuple[float, float, float]
    obs_mean: tuple[float, ...]
    obs_std: tuple[float, ...]
    layout: str = "default"
    version: str = SPEC_VERSION
    extra: dict = field(default_factory=dict)
    state_history: int = 0  # past ticks of velocity_w and omega_b the observation holds

    @property
    def obs_dim(self) -> int:
        """Length of the observation vector."""
        return sum(f.size for f in self.observation)

    @property
    def action_dim(self) -> int:
        """Length of the action vector (always 4)."""
        return ACTION_DIM

    def obs_slice(self, name: str) -> slice:
        """Where field ``name`` sits in the observation vector."""
        start = 0
        for f in self.observation:
            if f.name == name:
                return slice(start, start + f.size)
            start += f.size
        raise KeyError(f"observation has no field {name!r}")

    def to_dict(self) -> dict:
        """Plain-JSON dictionary of the spec."""
        d = asdict(self)
        d["observation"] = [asdict(f) for f in self.observation]
        return d

    def to_json(self) -> str:
        """Serialize to JSON; ``from_json(to_json(s)) == s`` exactly (floats repr round-trip)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "PolicySpec":
        """Validate and build from a dictionary (as read from JSON)."""
        if not isinstance(d, dict):
            raise SpecError(f"policy spec must be a JSON object, got {type(d).__name__}")
        version = str(d.get("version", ""))
        major = version.split(".")[0]
        if major != SPEC_VERSION.split(".")[0]:
            raise SpecError(
                f"policy spec version {version!r} is not supported (this quadhil reads {SPEC_VERSION.split('.')[0]}.x)"
            )
        required = [
            "vehicle", "action_mode", "control_rate_hz", "observation", "action_history",
            "position_error_clip_m", "thrust_max_n", "body_rate_max_rad_s", "obs_mean", "obs_std",
        ]
        missing = [k for k in required if k not in d]
        if missing:
            raise SpecError(f"policy spec is missing field(s): {', '.join(missing)}")
        try:
            obs = tuple(ObsField(str(f["name"]), int(f["size"]), str(f["unit"])) for f in d["observation"])
        except (TypeError, KeyError, ValueError) as exc:
            raise SpecError(f"policy spec field 'observation' is malformed: {exc}") from None
        spec = cls(
            vehicle=str(d["vehicle"]),
            action_mode=str(d["action_mode"]),
            control_rate_hz=float(d["control_rate_hz"]),
            observation=obs,
            action_history=int(d["action_history"]),
            position_error_clip_m=float(d["position_error_clip_m"]),
            thrust_max_n=float(d["thrust_max_n"]),
            body_rate_max_rad_s=tuple(float(x) for x in d["body_rate_max_rad_s"]),
            obs_mean=tuple(float(x) for x in d["obs_mean"]),
            obs_std=tuple(float(x) for x in d["obs_std"]),
            layout=str(d.get("layout", "default")),
            version=version,
            extra=dict(d.get("extra", {})),
            state_history=int(d.get("state_history", 0)),
        )
        spec.validate()
        return spec

    @classmethod
    def from_json(cls, text: str | bytes) -> "PolicySpec":
        """Parse and validate a JSON spec."""
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(f"policy spec is not valid JSON: {exc}") from None
        return cls.from_dict(d)

    def validate(self) -> None:
        """Raise :class:`SpecError` naming the first inconsistency."""
        if self.action_mode not in ACTION_MODES:
            raise SpecError(f"action_mode must be one of {ACTION_MODES}, got {self.action_mode!r}")
        if not self.control_rate_hz > 0:
            raise SpecError(f"control_rate_hz must be > 0, got {self.control_rate_hz}")
        for f in self.observation:
            if f.name not in _FIELD_UNITS:
                raise SpecError(f"observation field {f.name!r} is unknown to this quadhil")
        if self.obs_slice_sizes().get("last_actions", 0) != ACTION_DIM * self.action_history:
            raise SpecError("observation 'last_actions' size must be 4 x action_history")
        if not 0 <= self.state_history <= STATE_HISTORY_MAX:
            raise SpecError(f"state_history must be in 0..{STATE_HISTORY_MAX}, got {self.state_history}")
        for name in STATE_HISTORY_FIELDS:
            if self.obs_slice_sizes().get(name, 0) != 3 * self.state_history:
                raise SpecError(f"observation {name!r} size must be 3 x state_history ({self.state_history})")
        if len(self.obs_mean) != self.obs_dim or len(self.obs_std) != self.obs_dim:
            raise SpecError(f"obs_mean/obs_std must have length obs_dim={self.obs_dim}")
        if any(not s > 0 for s in self.obs_std):
            raise SpecError("obs_std entries must be > 0")
        if len(self.body_rate_max_rad_s) != 3:
            raise SpecError("body_rate_max_rad_s must have 3 entries")

    @property
    def uses_position_integral(self) -> bool:
        """True if the observation holds ``position_error_integral_w`` (the caller keeps it)."""
        return any(f.name == "position_error_integral_w" for f in self.observation)

    @property
    def uses_state_history(self) -> bool:
        """True if the observation holds past velocity and body-rate estimates (the caller keeps them)."""
        return self.state_history > 0

    def obs_slice_sizes(self) -> dict[str, int]:
        """Field name -> size."""
        return {f.name: f.size for f in self.observation}

    def check_vehicle(self, vehicle_id: str) -> None:
        """Raise :class:`SpecError` if this policy was not made for ``vehicle_id``."""
        if self.vehicle != vehicle_id:
            raise SpecError(f"policy was trained for vehicle {self.vehicle!r}, not {vehicle_id!r}")


def default_observation(action_history: int = 1) -> tuple[ObsField, ...]:
    """The default observation layout (see module docstring)."""
    return (
        ObsField("position_error_w", 3, "m"),
        ObsField("rotation_matrix_wb", 9, "1"),
        ObsField("velocity_w", 3, "m/s"),
        ObsField("omega_b", 3, "rad/s"),
        ObsField("last_actions", ACTION_DIM * action_history, "1"),
    )


def state_history_observation(state_history: int) -> tuple[ObsField, ...]:
    """The fields of ``state_history`` past ticks of velocity and body rates (none for 0)."""
    if state_history == 0:
        return ()
    return (ObsField("velocity_history_w", 3 * state_history, "m/s"),
            ObsField("omega_history_b", 3 * state_history, "rad/s"))


def default_spec(vehicle: Vehicle, action_mode: str = "ctbr", control_rate_hz: float = 100.0,
                 action_history: int = 1, position_error_clip_m: float = 1.0,
                 state_history: int = 0) -> PolicySpec:
    """A spec for ``vehicle`` with the default layout and identity normalization."""
    obs = default_observation(action_history) + state_history_observation(state_history)
    return _spec_for(vehicle, obs, action_mode, control_rate_hz, action_history, position_error_clip_m,
                     layout="default", state_history=state_history)


def _spec_for(vehicle: Vehicle, obs: tuple[ObsField, ...], action_mode: str, control_rate_hz: float,
              action_history: int, position_error_clip_m: float, layout: str,
              state_history: int = 0) -> PolicySpec:
    """A validated spec of ``layout`` for the nominal ``vehicle``, identity normalization."""
    dim = sum(f.size for f in obs)
    spec = PolicySpec(
        vehicle=vehicle.id,
        action_mode=action_mode,
        control_rate_hz=float(control_rate_hz),
        observation=obs,
        action_history=action_history,
        position_error_clip_m=float(position_error_clip_m),
        # what the firmware's full 16-bit command asks of a motor (THRUST_MAX when the Crazyflie
        # compensates for its battery, sim.command_path), so a -1..1 action spans what it delivers
        thrust_max_n=vehicle.command_thrust_max_n,
        body_rate_max_rad_s=tuple(float(x) for x in vehicle.rate_controller.body_rate_max_rad_s),
        obs_mean=(0.0,) * dim,
        obs_std=(1.0,) * dim,
        layout=layout,
        state_history=state_history,
    )
    spec.validate()
    return spec


def integral_observation(action_history: int = 1) -> tuple[ObsField, ...]:
    """The default layout plus ``position_error_integral_w`` (module docstring)."""
    return default_observation(action_history) + (ObsField("position_error_integral_w", 3, "m*s"),)


def integral_spec(vehicle: Vehicle, action_mode: str = "ctbr", control_rate_hz: float = 100.0,
                  action_history: int = 1, position_error_clip_m: float = 1.0,
                  state_history: int = 0) -> PolicySpec:
    """A spec with layout "integral": the default observation plus the position-error integral
    (and, with ``state_history`` > 0, the past velocity and body-rate estimates after it)."""
    obs = integral_observation(action_history) + state_history_observation(state_history)
    return _spec_for(vehicle, obs, action_mode, control_rate_hz, action_history, position_error_clip_m,
                     layout="integral", state_history=state_history)


def integrate_position_error(integral: np.ndarray, pos_w: np.ndarray, target_w: np.ndarray,
                             spec: PolicySpec) -> np.ndarray:
    """One control tick of the position-error integral: (N, 3) m*s -> (N, 3) m*s.

    pos_w (N, 3) world ENU m (the estimate the observation uses), target_w (3,) or (N, 3) m. Adds
    (pos - target) / control_rate_hz where the vehicle is within INTEGRAL_RADIUS_M of the target,
    then clips each axis to +-INTEGRAL_LIMIT_M_S. Returns a new array.
    """
    pos_w = np.atleast_2d(pos_w)
    err = pos_w - np.broadcast_to(target_w, pos_w.shape)
    near = np.linalg.norm(err, axis=1, keepdims=True) < INTEGRAL_RADIUS_M
    step = np.where(near, err, 0.0) / spec.control_rate_hz
    return np.clip(np.asarray(integral, dtype=np.float64) + step, -INTEGRAL_LIMIT_M_S, INTEGRAL_LIMIT_M_S)


def px4_nn_observation() -> tuple[ObsField, ...]:
    """The 15 inputs of PX4's ``mc_nn_control`` in its order (PX4-Autopilot
    src/modules/mc_nn_control/mc_nn_control.cpp, PopulateInputTensor): position error, the first
    two rows of the body-to-world rotation matrix, linear velocity, body rates; world ENU, body FLU
    (the module rotates PX4's NED/FRD estimate into these frames). No action history."""
    return (
        ObsField("position_error_w", 3, "m"),
        ObsField("rotation_matrix_rows01_wb", 6, "1"),
        ObsField("velocity_w", 3, "m/s"),
        ObsField("omega_b", 3, "rad/s"),
    )


def px4_nn_spec(vehicle: Vehicle, action_mode: str = "motors", control_rate_hz: float = 200.0,
                position_error_clip_m: float = 3.0, action_history: int = 0, state_history: int = 0) -> PolicySpec:
    """A spec whose network ``mc_nn_control`` can run (layout "px4-nn"; see docs/onboard.md).

    Differences from PX4 that the px4-nn exporter removes: mc_nn_control feeds ``setpoint -
    position`` (this contract: position - setpoint; the exporter negates those input weights) and
    does not clip it (the clip here is the hover task's 3 m box, which training never exceeds).
    Actions are per-motor thrust fractions (``motors``); the network's hidden layers are ReLU and
    its output linear (train.networks.build_actor), since the module's op resolver holds only
    FullyConnected, Relu and Add. mc_nn_control runs at the gyro rate; 200 Hz is a rate the
    1 kHz simulator divides. The module's inputs hold no action or state history:
    ``action_history`` and ``state_history`` must stay 0.
    """
    if action_mode != "motors":
        raise SpecError("layout 'px4-nn' drives PX4's actuator_motors: action_mode must be 'motors'")
    if action_history != 0:
        raise SpecError("layout 'px4-nn' has no action history (PX4's mc_nn_control inputs are fixed)")
    if state_history != 0:
        raise SpecError("layout 'px4-nn' has no state history (PX4's mc_nn_control inputs are fixed)")
    return _spec_for(vehicle, px4_nn_observation(), action_mode, control_rate_hz, 0, position_error_clip_m,
                     layout="px4-nn")


# Named spec factories: ``quadhil train --layout NAME`` builds its spec with SPEC_LAYOUTS[NAME].
# Each takes (vehicle, action_mode, control_rate_hz, action_history, state_history) and returns a
# PolicySpec with identity normalization; the trainer fills in obs_mean/obs_std.
SPEC_LAYOUTS = {
    "default": lambda vehicle, action_mode="ctbr", control_rate_hz=100.0, action_history=1, state_history=0:
        default_spec(vehicle, action_mode=action_mode, control_rate_hz=control_rate_hz,
                     action_history=action_history, state_history=state_history),
    "integral": lambda vehicle, action_mode="ctbr", control_rate_hz=100.0, action_history=1, state_history=0:
        integral_spec(vehicle, action_mode=action_mode, control_rate_hz=control_rate_hz,
                      action_history=action_history, state_history=state_history),
    "px4-nn": lambda vehicle, action_mode="motors", control_rate_hz=200.0, action_history=0, state_history=0:
        px4_nn_spec(vehicle, action_mode=action_mode, control_rate_hz=control_rate_hz,
                    action_history=action_history, state_history=state_history),
}


def observe(pos_w: np.ndarray, vel_w: np.ndarray, quat_wb: np.ndarray, omega_b: np.ndarray,
            target_w: np.ndarray, last_actions: np.ndarray, spec: PolicySpec,
            position_error_integral: np.ndarray | None = None,
            state_history: np.ndarray | None = None) -> np.ndarray:
    """Build the (N, obs_dim) float32 observation for a batch of state estimates.

    pos_w, vel_w: (N, 3) world ENU, m and m/s; quat_wb: (N, 4) body-to-world (w, x, y, z);
    omega_b: (N, 3) body FLU rad/s; target_w: (3,) or (N, 3) m; last_actions: (N, 4*h), newest
    first; position_error_integral: (N, 3) m*s, already advanced for this tick by
    :func:`integrate_position_error` (needed only by layouts that hold it); state_history: (N, 6k)
    the past ticks' estimates as :func:`push_state_history` keeps them (needed only by specs with
    ``state_history`` > 0). Raw values: normalization lives inside the model.
    """
    pos_w = np.atleast_2d(pos_w)
    n = pos_w.shape[0]
    parts = []
    rot = None
    for f in spec.observation:
        if f.name == "position_error_w":
            clip = spec.position_error_clip_m
            parts.append(np.clip(pos_w - np.broadcast_to(target_w, (n, 3)), -clip, clip))
        elif f.name in ("rotation_matrix_wb", "rotation_matrix_rows01_wb"):
            if rot is None:
                rot = quat_to_rotmat(np.atleast_2d(quat_wb)).reshape(n, 9)
            parts.append(rot if f.size == 9 else rot[:, :6])
        elif f.name == "velocity_w":
            parts.append(np.atleast_2d(vel_w))
        elif f.name == "omega_b":
            parts.append(np.atleast_2d(omega_b))
        elif f.name == "last_actions":
            parts.append(np.atleast_2d(last_actions)[:, : f.size])
        elif f.name == "position_error_integral_w":
            if position_error_integral is None:
                raise SpecError("this policy's observation holds the position-error integral: pass "
                                "position_error_integral (sim.contract.integrate_position_error)")
            parts.append(np.broadcast_to(np.atleast_2d(position_error_integral), (n, 3)))
        elif f.name in STATE_HISTORY_FIELDS:
            if state_history is None:
                raise SpecError("this policy's observation holds past velocity and body-rate estimates: "
                                "pass state_history (sim.contract.start_state_history, push_state_history)")
            ticks = np.broadcast_to(np.atleast_2d(state_history), (n, 6 * spec.state_history)).reshape(n, -1, 6)
            parts.append((ticks[:, :, :3] if f.name == "velocity_history_w" else ticks[:, :, 3:]).reshape(n, f.size))
        else:  # pragma: no cover - validate() refuses unknown fields
            raise SpecError(f"unknown observation field {f.name!r}")
    return np.concatenate(parts, axis=1).astype(np.float32)


@dataclass
class MotorCommand:
    """Per-motor thrust, firmware motor order. thrust_n (N, 4) in N; fraction of nominal max."""

    thrust_n: np.ndarray
    thrust_fraction: np.ndarray


@dataclass
class CtbrCommand:
    """Collective thrust (N,) in N and as a fraction of 4 x max motor thrust; body rates (N, 3)
    rad/s FLU."""

    collective_thrust_n: np.ndarray
    collective_fraction: np.ndarray
    body_rate_b: np.ndarray


def act_to_command(action: np.ndarray, spec: PolicySpec, vehicle: Vehicle) -> MotorCommand | CtbrCommand:
    """Map normalized actions (N, 4) in [-1, 1] to a physical command for the nominal vehicle.

    Raises ValueError for non-finite actions: callers turn that into a failsafe, never a command.
    """
    spec.check_vehicle(vehicle.id)
    a = np.atleast_2d(np.asarray(action, dtype=np.float64))
    if a.shape[1] != ACTION_DIM:
        raise ValueError(f"action must have {ACTION_DIM} entries, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("action contains non-finite values")
    a = np.clip(a, -1.0, 1.0)
    if spec.action_mode == "motors":
        frac = 0.5 * (a + 1.0)
        return MotorCommand(thrust_n=frac * spec.thrust_max_n, thrust_fraction=frac)
    frac = 0.5 * (a[:, 0] + 1.0)
    return CtbrCommand(
        collective_thrust_n=frac * 4.0 * spec.thrust_max_n,
        collective_fraction=frac,
        body_rate_b=a[:, 1:4] * np.asarray(spec.body_rate_max_rad_s),
    )


def thrust_to_firmware_units(thrust_n: np.ndarray, vehicle: Vehicle) -> np.ndarray:
    """Motor thrust (N) -> the firmware's 16-bit motor command units (Crazyflie: 0..65535, linear
    to THRUST_MAX with battery compensation, PWM through the thrust curve without; PX4: 0..1)."""
    return vehicle.thrust_to_command(thrust_n) * vehicle.command_max


def push_action_history(history: np.ndarray, action: np.ndarray) -> np.ndarray:
    """Return (N, 4*h) history with ``action`` (N, 4) inserted first (newest first)."""
    if history.shape[1] == 0:
        return history
    return np.concatenate([np.atleast_2d(action), history[:, :-ACTION_DIM]], axis=1)


def start_state_history(vel_w: np.ndarray, omega_b: np.ndarray, spec: PolicySpec) -> np.ndarray:
    """The state history when a policy takes over: (N, 6k), k copies of this tick's estimate.

    vel_w (N, 3) world ENU m/s, omega_b (N, 3) body FLU rad/s. Each tick holds (velocity_w,
    omega_b), newest first; (N, 0) for a spec without state history."""
    now = np.concatenate([np.atleast_2d(vel_w), np.atleast_2d(omega_b)], axis=1).astype(np.float64)
    return np.tile(now, (1, spec.state_history))


def push_state_history(history: np.ndarray, vel_w: np.ndarray, omega_b: np.ndarray) -> np.ndarray:
    """Return the (N, 6k) state history with this tick's estimate (vel_w (N, 3) m/s world ENU,
    omega_b (N, 3) rad/s body FLU) inserted first and the oldest tick dropped. Call it after
    :func:`observe` of the tick, so the observation holds the ticks before it."""
    if history.shape[1] == 0:
        return history
    now = np.concatenate([np.atleast_2d(vel_w), np.atleast_2d(omega_b)], axis=1)
    return np.concatenate([now, history[:, :-6]], axis=1)


def hover_action(spec: PolicySpec, vehicle: Vehicle) -> np.ndarray:
    """(4,) action that commands the nominal vehicle's hover thrust with zero rates."""
    frac = vehicle.weight_n / (4.0 * spec.thrust_max_n)
    a = 2.0 * frac - 1.0
    if spec.action_mode == "motors":
        return np.full(ACTION_DIM, a)
    return np.array([a, 0.0, 0.0, 0.0])


def spec_for_names(names: Sequence[str]) -> tuple[ObsField, ...]:
    """Observation fields for a list of field names with the contract's sizes (h = 1)."""
    sizes = {"position_error_w": 3, "rotation_matrix_wb": 9, "rotation_matrix_rows01_wb": 6,
             "velocity_w": 3, "omega_b": 3, "last_actions": ACTION_DIM}
    return tuple(ObsField(n, sizes[n], _FIELD_UNITS[n]) for n in names)
