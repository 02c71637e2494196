"""``quadhil eval RUN --suite robustness``: where a policy breaks, one out-of-distribution axis at a time.

Every cell flies the project's own throws and success test (:func:`train.evaluate.evaluate_policy`,
the task of ``quadhil eval``) on the **nominal** airframe of the vehicle file (no domain
randomization, the file's sensor noise, no latency, no wind) with exactly one thing changed: an
axis value. The joint corner set then changes four airframe axes at once, at both ends of a
moderate range each (2^4 = 16 corners). Every cell uses the same seed, so all cells fly the same
throws with the same sensor-noise draws: differences between cells come from the axis alone.

Axes (values in the units of their names; see :data:`AXES`):

    motor_tau_s            first-order motor time constant, spin-up = spin-down (the file's are
                           asymmetric; rotorpy's Crazyflie has 0.072 s, Eschmann et al. 2024)
    thrust_to_weight       the most collective thrust the firmware can ask for / weight (Crazyflie:
                           4 x THRUST_MAX with battery compensation), set through the mass (a payload,
                           a heavier battery); the inertia stays the file's
    yaw_torque_m           rotor reaction torque / thrust (kappa); rotorpy's Crazyflie has 0.034 m
    inertia_scale          all three principal moments x value
    rate_gain_scale        the firmware rate loop's P, I and D gains x value (users tune their loops;
                           BatchParams.rate_gain_scale, the simulator's own knob)
    p_only_gain_scale      the rate loop with I = D = 0 and P x value (a P-only loop, as rotorpy has;
                           BatchParams.rate_p_only)
    sensor_noise_scale     the vehicle file's state-estimate noise std x value
    latency_ticks          every action applied N control ticks late
    com_offset_arm         centre of mass moved forward (body +x) by value x the rotor arm length
    wind_mps               steady wind along world +x (east)

Axes that need the firmware's rate loop (rate_gain_scale, p_only_gain_scale, the corners' rate
axis) apply to ``ctbr`` policies only; a ``motors`` policy reports them as skipped.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from sim.contract import PolicySpec
from sim.env import HoverTask, HoverTaskConfig
from sim.randomization import RealismConfig
from sim.vehicle import GRAVITY_MPS2, load_vehicle
from train.evaluate import ActFn, eval_task_config, evaluate_policy

SUITE_NAME = "robustness"


@dataclass(frozen=True)
class Axis:
    """One out-of-distribution axis: its values and how a value is applied.

    ``realism(base, value)`` returns the :class:`RealismConfig` of the cell; ``airframe(task, value)``
    overrides the sampled airframe or the rate loop of a task whose episodes just started.
    """

    name: str
    unit: str
    values: tuple[float, ...]
    help: str
    needs_rate_loop: bool = False
    realism: Callable[[RealismConfig, float], RealismConfig] = lambda base, value: base
    airframe: Callable[[HoverTask, float], None] | None = None


def _set_motor_tau(task: HoverTask, tau_s: float) -> None:
    task.sim.params.tau_up_s[:] = tau_s
    task.sim.params.tau_down_s[:] = tau_s


def collective_ceiling_n(task: HoverTask) -> np.ndarray:
    """(N,) the most collective thrust each vehicle's firmware can ask its motors for, N: 4 x the
    full 16-bit command's thrust (THRUST_MAX with the Crazyflie's battery compensation, else the
    motor's full thrust) through each motor's thrust gain, within what the motor can give."""
    p, v = task.sim.params, task.vehicle
    per_motor = np.where(p.compensated[:, None], v.command_thrust_max_n * p.thrust_gain, p.max_thrust_n)
    return np.minimum(per_motor, p.max_thrust_n).sum(axis=1)


def _set_thrust_to_weight(task: HoverTask, ratio: float) -> None:
    p = task.sim.params
    p.mass_kg[:] = collective_ceiling_n(task) / (task.sim.gravity_mps2 * ratio)


def _set_yaw_torque(task: HoverTask, kappa_m: float) -> None:
    task.sim.params.torque_to_thrust_m[:] = kappa_m


def _scale_inertia(task: HoverTask, scale: float) -> None:
    task.sim.params.inertia_kgm2[:] *= scale


def _scale_rate_gains(task: HoverTask, scale: float, p_only: bool = False) -> None:
    if task.rate_ctrl is None:
        raise ValueError("this axis needs the firmware rate loop (a ctbr policy)")
    task.sim.params.rate_gain_scale[:] = scale
    task.sim.params.rate_p_only[:] = p_only
    task.rate_ctrl_gains_from_params()


def _shift_com(task: HoverTask, arm_fraction: float) -> None:
    arm_m = float(np.linalg.norm(task.vehicle.rotor_position_m[:, :2], axis=1).mean())
    # rotor positions are relative to the CoM: moving the CoM forward moves every rotor back
    task.sim.params.rotor_pos_m[:, :, 0] -= arm_fraction * arm_m


AXES: tuple[Axis, ...] = (
    Axis("motor_tau_s", "s", (0.02, 0.04, 0.06, 0.08, 0.10, 0.12),
         "motor time constant, spin-up = spin-down", airframe=_set_motor_tau),
    Axis("thrust_to_weight", "1", (1.4, 1.6, 1.8, 2.0, 2.4, 2.8, 3.2),
         "collective ceiling / weight, through the mass", airframe=_set_thrust_to_weight),
    Axis("yaw_torque_m", "m", (0.003, 0.006, 0.012, 0.02, 0.034),
         "rotor reaction torque / thrust", airframe=_set_yaw_torque),
    Axis("inertia_scale", "1", (0.5, 0.75, 1.0, 1.5, 2.0, 3.0), "principal moments x value",
         airframe=_scale_inertia),
    Axis("rate_gain_scale", "1", (0.25, 0.5, 1.0, 2.0, 4.0), "rate-loop P, I, D x value",
         needs_rate_loop=True, airframe=_scale_rate_gains),
    Axis("p_only_gain_scale", "1", (0.5, 1.0, 2.0, 4.0), "rate loop P only (I = D = 0), P x value",
         needs_rate_loop=True, airframe=lambda task, s: _scale_rate_gains(task, s, p_only=True)),
    Axis("sensor_noise_scale", "1", (0.0, 1.0, 2.0, 3.0, 5.0), "state-estimate noise std x value",
         realism=lambda base, s: replace(base, sensor_noise=s > 0, noise_scale=s)),
    Axis("latency_ticks", "ticks", (0, 1, 2, 3), "actions applied N control ticks late",
         realism=lambda base, n: replace(base, latency_ticks=int(n), latency_ticks_max=None)),
    Axis("com_offset_arm", "arm", (0.0, 0.05, 0.1, 0.2), "CoM forward by value x rotor arm",
         airframe=_shift_com),
    Axis("wind_mps", "m/s", (0.0, 1.0, 2.0, 3.0, 5.0), "steady wind along world +x",
         realism=lambda base, w: replace(base, wind_mean_mps=(float(w), 0.0, 0.0))),
)

# The joint corners: every combination of these axes at (low, high). Multiplicative for the
# airframe's own numbers (so they fit the x500 and the Crazyflie alike), absolute for the motor.
CORNER_AXES: tuple[tuple[str, tuple[float, float]], ...] = (
    ("motor_tau_s", (0.025, 0.08)),
    ("thrust_to_weight_scale", (0.8, 1.2)),
    ("inertia_scale", (0.7, 1.5)),
    ("rate_gain_scale", (0.5, 2.0)),
)


def _apply_corner(task: HoverTask, corner: dict[str, float]) -> None:
    for name, value in corner.items():
        if name == "motor_tau_s":
            _set_motor_tau(task, value)
        elif name == "thrust_to_weight_scale":
            _set_thrust_to_weight(task, value * nominal_thrust_to_weight(task.vehicle))
        elif name == "inertia_scale":
            _scale_inertia(task, value)
        elif name == "rate_gain_scale":
            _scale_rate_gains(task, value)
        else:  # pragma: no cover - CORNER_AXES holds only the names above
            raise ValueError(f"unknown corner axis {name!r}")


def nominal_thrust_to_weight(vehicle) -> float:
    """Thrust-to-weight of the vehicle file's nominal airframe as its firmware can use it: 4 x the
    full command's thrust (Crazyflie: THRUST_MAX, battery compensated) / weight (standard gravity)."""
    return 4.0 * min(vehicle.command_thrust_max_n, vehicle.max_thrust_n) / (vehicle.mass_kg * GRAVITY_MPS2)


def _restart_motors_at_hover(task: HoverTask) -> None:
    """What HoverTask.reset does for the airframe it sampled, for the overridden one: every
    episode starts with its motors at the thrust that holds its (new) weight."""
    task.sim.state.thrust_n[:] = np.tile(task.sim.hover_thrust_n().mean(axis=1, keepdims=True), (1, 4))


@dataclass
class Cell:
    """One evaluated setting: figures of :class:`train.evaluate.EvalResult` for it."""

    axis: str
    value: float | dict
    success_rate: float
    crash_rate: float
    out_of_bounds_rate: float
    rmse_m: float

    def as_dict(self) -> dict:
        """Plain dict for the JSON report (valid JSON: an RMSE with no episode to pool is None)."""
        rmse = float(self.rmse_m) if np.isfinite(self.rmse_m) else None
        return {"axis": self.axis, "value": self.value, "success_rate": float(self.success_rate),
                "crash_rate": float(self.crash_rate), "out_of_bounds_rate": float(self.out_of_bounds_rate),
                "rmse_m": rmse}


@dataclass
class SuiteResult:
    """Result of :func:`run_suite`: the nominal cell, one list of cells per axis, the corners."""

    vehicle: str
    action_mode: str
    episodes_per_cell: int
    seed: int
    nominal: Cell
    axes: dict[str, list[Cell]]
    corners: list[Cell]
    skipped: dict[str, str] = field(default_factory=dict)
    nominal_thrust_to_weight: float = float("nan")
    wall_s: float = 0.0

    def worst(self) -> Cell:
        """The cell (axis or corner) with the lowest success rate (the first one on ties)."""
        cells = [c for cells in self.axes.values() for c in cells] + self.corners
        return min(cells, key=lambda c: c.success_rate) if cells else self.nominal

    def as_dict(self) -> dict:
        """Everything, JSON-ready (the --json line and robustness.json)."""
        return {
            "suite": SUITE_NAME, "vehicle": self.vehicle, "action_mode": self.action_mode,
            "episodes_per_cell": self.episodes_per_cell, "seed": self.seed,
            "nominal": self.nominal.as_dict(),
            "nominal_thrust_to_weight": self.nominal_thrust_to_weight,
            "axes": {name: [c.as_dict() for c in cells] for name, cells in self.axes.items()},
            "corners": [c.as_dict() for c in self.corners],
            "skipped_axes": dict(self.skipped),
            "worst": self.worst().as_dict(),
            "min_axis_success": {name: min(c.success_rate for c in cells) for name, cells in self.axes.items()},
            "wall_s": self.wall_s,
        }


def suite_realism() -> RealismConfig:
    """The suite's nominal conditions: the file's airframe, its sensor noise, no latency, no wind."""
    return RealismConfig(randomize=False, sensor_noise=True, noise_scale=1.0)


def run_suite(act_fn: ActFn, spec: PolicySpec, task: HoverTaskConfig | None = None, episodes: int = 200,
              seed: int = 0, axes: tuple[str, ...] | None = None, corners: bool = True,
              progress: Callable[[str], None] | None = None) -> SuiteResult:
    """Evaluate ``act_fn`` (raw observations (N, obs_dim) -> actions (N, 4)) over the suite.

    ``task``: the run's task (its throws and success test; realism is replaced by the suite's);
    ``episodes`` per cell; ``axes``: names from :data:`AXES` to run (all if None); ``corners``:
    also fly the joint corner set. Deterministic for a given seed.
    """
    if episodes < 1:
        raise ValueError("episodes must be >= 1")
    known = {a.name: a for a in AXES}
    chosen = list(known) if axes is None else list(axes)
    unknown = [a for a in chosen if a not in known]
    if unknown:
        raise ValueError(f"unknown robustness axis {', '.join(unknown)}; known: {', '.join(known)}")
    vehicle = load_vehicle(spec.vehicle)
    task = eval_task_config(task)
    base = suite_realism()
    has_rate_loop = spec.action_mode == "ctbr"
    say = progress or (lambda text: None)
    t0 = time.perf_counter()

    def fly(axis: str, value, realism: RealismConfig, airframe: Callable[[HoverTask], None] | None) -> Cell:
        def after_reset(t: HoverTask) -> None:
            if airframe is not None:
                airframe(t)
                _restart_motors_at_hover(t)

        r = evaluate_policy(act_fn, spec, spec.vehicle, episodes=episodes, seed=seed, realism=realism, task=task,
                            keep_trajectories=0, after_reset=after_reset)
        say(f"{axis} = {value}: {r.success_rate:.0%}")
        return Cell(axis, value, r.success_rate, r.crash_rate, r.out_of_bounds_rate, r.rmse_m)

    nominal = fly("nominal", 0.0, base, None)
    cells: dict[str, list[Cell]] = {}
    skipped: dict[str, str] = {}
    for name in chosen:
        axis = known[name]
        if axis.needs_rate_loop and not has_rate_loop:
            skipped[name] = f"needs the firmware rate loop; this is a {spec.action_mode} policy"
            continue
        cells[name] = [
            fly(name, value, axis.realism(base, value),
                None if axis.airframe is None else (lambda t, v=value, f=axis.airframe: f(t, v)))
            for value in axis.values
        ]
    corner_cells: list[Cell] = []
    if corners:
        corner_axes = [(n, ends) for n, ends in CORNER_AXES if has_rate_loop or n != "rate_gain_scale"]
        if len(corner_axes) < len(CORNER_AXES):
            skipped["corners.rate_gain_scale"] = f"needs the firmware rate loop; this is a {spec.action_mode} policy"
        for combo in itertools.product(*(ends for _, ends in corner_axes)):
            corner = {n: v for (n, _), v in zip(corner_axes, combo)}
            corner_cells.append(fly("corner", corner, base, lambda t, c=corner: _apply_corner(t, c)))
    return SuiteResult(vehicle=spec.vehicle, action_mode=spec.action_mode, episodes_per_cell=episodes, seed=seed,
                       nominal=nominal, axes=cells, corners=corner_cells, skipped=skipped,
                       nominal_thrust_to_weight=nominal_thrust_to_weight(vehicle),
                       wall_s=time.perf_counter() - t0)


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def print_suite(result: SuiteResult, title: str) -> None:
    """A rich table: one row per axis, each cell 'value: success %'; then the corners."""
    from rich.console import Console
    from rich.table import Table

    width = max([len(c) for c in result.axes.values()] + [1])
    table = Table(title=f"{title}: success per axis value ({result.episodes_per_cell} throws per cell, "
                        f"nominal {result.nominal.success_rate:.0%})")
    table.add_column("axis")
    for i in range(width):
        table.add_column(str(i + 1), justify="right")
    for name, cells in result.axes.items():
        table.add_row(name, *[f"{_fmt(c.value)}: {c.success_rate:.0%}" for c in cells] + [""] * (width - len(cells)))
    console = Console()
    console.print(table)
    if result.corners:
        corners = Table(title="joint corners")
        names = list(result.corners[0].value)
        for n in names:
            corners.add_column(n, justify="right")
        corners.add_column("success", justify="right")
        for c in result.corners:
            corners.add_row(*[_fmt(c.value[n]) for n in names], f"{c.success_rate:.0%}")
        console.print(corners)
    for name, why in result.skipped.items():
        console.print(f"skipped {name}: {why}")


def plot_suite(result: SuiteResult, path, title: str) -> None:
    """Heat-map PNG: success per axis value (left), success of each joint corner (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.axes)
    width = max([len(c) for c in result.axes.values()] + [1])
    grid = np.full((len(names), width), np.nan)
    for i, n in enumerate(names):
        for j, c in enumerate(result.axes[n]):
            grid[i, j] = c.success_rate
    ncols = 2 if result.corners else 1
    fig, axs = plt.subplots(1, ncols, figsize=(7 + 5 * (ncols - 1), 0.55 * len(names) + 2.2),
                            gridspec_kw={"width_ratios": [width, 4] if ncols == 2 else [1]})
    axs = np.atleast_1d(axs)
    ax = axs[0]
    im = ax.imshow(grid, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    for i, n in enumerate(names):
        for j, c in enumerate(result.axes[n]):
            ax.text(j, i, f"{_fmt(c.value)}\n{c.success_rate:.0%}", ha="center", va="center", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xticks([])
    ax.set_title(f"{title}\nnominal {result.nominal.success_rate:.0%}, {result.episodes_per_cell} throws/cell",
                 fontsize=9)
    if result.corners:
        keys = list(result.corners[0].value)
        rows_key, cols_keys = keys[:2], keys[2:]
        row_vals = sorted({tuple(c.value[k] for k in rows_key) for c in result.corners})
        col_vals = sorted({tuple(c.value[k] for k in cols_keys) for c in result.corners})
        cg = np.full((len(row_vals), len(col_vals)), np.nan)
        for c in result.corners:
            cg[row_vals.index(tuple(c.value[k] for k in rows_key)), col_vals.index(tuple(c.value[k] for k in cols_keys))] = c.success_rate
        axc = axs[1]
        axc.imshow(cg, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
        for i in range(cg.shape[0]):
            for j in range(cg.shape[1]):
                axc.text(j, i, f"{cg[i, j]:.0%}", ha="center", va="center", fontsize=8)
        axc.set_yticks(range(len(row_vals)), [", ".join(_fmt(v) for v in r) for r in row_vals], fontsize=7)
        axc.set_xticks(range(len(col_vals)), [", ".join(_fmt(v) for v in c) for c in col_vals], fontsize=7,
                       rotation=30)
        axc.set_ylabel(", ".join(rows_key), fontsize=8)
        axc.set_xlabel(", ".join(cols_keys), fontsize=8)
        axc.set_title("joint corners", fontsize=9)
    fig.colorbar(im, ax=list(axs), fraction=0.03, label="success rate")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
