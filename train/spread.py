"""Which randomized quantity costs a policy its failures? Success with each put back to nominal.

The policy flies the same throws (same seed) once as drawn and once per group of randomized
airframe quantities (:data:`SPREAD_GROUPS`), that group set to the vehicle file's nominal values for
every throw and everything else as drawn. A group whose return lifts success a lot is where the
failures live: its hard cases, and the policy's not knowing which value it flies. It bounds what
identifying that quantity could buy (knowing it cannot do better than not having its spread).
Used by ``quadhil eval RUN --suite spread``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sim.contract import PolicySpec
from sim.dynamics import BatchParams
from sim.env import HoverTask, HoverTaskConfig
from train.evaluate import ActFn, evaluate_policy

SUITE_NAME = "spread"

# group -> the BatchParams fields it puts back (sim/randomization.py draws them)
_THRUST = ("thrust_gain", "max_thrust_n", "compensated", "battery_thrust_scale", "battery_sense_ratio")
SPREAD_GROUPS: dict[str, tuple[str, ...]] = {
    "none": (),
    "rate_loop": ("rate_gain_scale", "rate_p_only"),  # firmware rate-loop gain scale, P-only builds
    "mass": ("mass_kg",),
    "motor_lag": ("tau_up_s", "tau_down_s"),
    "thrust": _THRUST,  # per-motor gain and imbalance, builds without battery compensation
    "centre_of_mass": ("rotor_pos_m",),
    "inertia": ("inertia_kgm2",),
    "sensor_noise": ("noise_scale",),
    "yaw_torque": ("torque_to_thrust_m",),
    "drag": ("drag_n_per_mps",),
    "thrust_to_weight": ("mass_kg", *_THRUST),
}
SPREAD_GROUPS["all"] = tuple(dict.fromkeys(f for fields in SPREAD_GROUPS.values() for f in fields))


def put_back_nominal(task: HoverTask, fields: tuple[str, ...]) -> None:
    """Set ``fields`` of every env's airframe to the vehicle file's nominal values (the rate loop
    takes its gains from them again); the other fields and the throws stay as drawn."""
    nominal = BatchParams.nominal(task.vehicle, task.n)
    for name in fields:
        getattr(task.sim.params, name)[...] = getattr(nominal, name)
    task.rate_ctrl_gains_from_params()


@dataclass(frozen=True)
class SpreadRow:
    """Success with one group put back to nominal."""

    group: str
    fields: tuple[str, ...]
    success_rate: float
    crash_rate: float


@dataclass
class SpreadResult:
    """Result of :func:`run_spread`: one row per group, ``none`` first (the policy as evaluated)."""

    vehicle: str
    action_mode: str
    episodes: int
    seed: int
    rows: list[SpreadRow] = field(default_factory=list)
    wall_s: float = 0.0

    def as_dict(self) -> dict:
        """Everything, JSON-ready (the --json line and spread.json)."""
        base = self.rows[0].success_rate if self.rows else float("nan")
        return {"suite": SUITE_NAME, "vehicle": self.vehicle, "action_mode": self.action_mode,
                "episodes": self.episodes, "seed": self.seed, "success_rate": base, "wall_s": self.wall_s,
                "groups": {r.group: {"fields": list(r.fields), "success_rate": r.success_rate,
                                     "crash_rate": r.crash_rate, "gain": r.success_rate - base} for r in self.rows}}


def run_spread(act_fn: ActFn, spec: PolicySpec, task: HoverTaskConfig, episodes: int = 1000, seed: int = 0,
               groups: dict[str, tuple[str, ...]] = SPREAD_GROUPS) -> SpreadResult:
    """Evaluate ``act_fn`` on the same ``episodes`` throws of ``task`` once per group of ``groups``
    (module docstring)."""
    t0 = time.perf_counter()
    out = SpreadResult(spec.vehicle, spec.action_mode, episodes, seed)
    for name, fields in groups.items():
        r = evaluate_policy(act_fn, spec, spec.vehicle, episodes=episodes, seed=seed, task=task, keep_trajectories=1,
                            after_reset=lambda t, f=fields: put_back_nominal(t, f))
        out.rows.append(SpreadRow(name, fields, float(r.success_rate), float(r.crash_rate)))
    out.wall_s = time.perf_counter() - t0
    return out

