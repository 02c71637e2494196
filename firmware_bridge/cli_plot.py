"""``quadhil plot FLIGHT``: PNGs of a flight log (matplotlib, Agg backend: no display needed).

Writes, next to the log (or into ``--out``): ``<stem>_position.png`` (position vs reference per
axis, with supervisor transitions marked), ``<stem>_attitude.png`` (roll/pitch/yaw and body
rates), ``<stem>_commands.png`` (the wire values the link sent: thrust and rates, or the four
motor commands) and ``<stem>_latency.png`` (histograms of telemetry-to-command latency, state
age and inference time, with the deadline).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sim.report import emit_json


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil plot``."""
    parser.add_argument("flight", help="flight log written by quadhil fly: .jsonl, or its .mcap twin")
    parser.add_argument("--out", default=None, help="directory for the PNGs (default: next to the log)")
    parser.add_argument("--json", action="store_true", help="print the written paths as one JSON line")


def _mark_transitions(ax, log) -> None:
    for tr in log.transitions:
        if tr["to"] in ("LANDING", "FAILSAFE", "DONE"):
            ax.axvline(_to_flight_time(log, tr["t"]), color="red" if tr["to"] == "FAILSAFE" else "grey",
                       linestyle="--", linewidth=0.8)


def _to_flight_time(log, t_log: float) -> float:
    """Transitions carry time since the bridge started; ticks carry time since takeoff."""
    return t_log - log.t_takeoff


def plot_flight(path: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write the four PNGs for the log at ``path``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from firmware_bridge.flightlog import FlightLog, FlightLogError
    from sim.frames import quat_to_euler

    log = FlightLog.read(path)
    if not log.ticks:
        raise FlightLogError(f"{path} has no control ticks to plot (refused or aborted before takeoff)")
    out = Path(out_dir) if out_dir else Path(path).parent
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(path).stem
    t = log.column("t")
    pos, ref = log.column("pos"), log.column("target")
    written = []

    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(9, 7))
    for i, name in enumerate("xyz"):
        axes[i].plot(t, pos[:, i], label=f"{name} (estimate)")
        axes[i].plot(t, ref[:, i], "--", label=f"{name} (reference)")
        axes[i].set_ylabel(f"{name} [m]")
        axes[i].legend(loc="upper right", fontsize=8)
        _mark_transitions(axes[i], log)
    axes[-1].set_xlabel("time since takeoff [s]")
    summ = log.summary or {}
    fig.suptitle(position_title(stem, summ), fontsize=9)
    written.append(_save(fig, out / f"{stem}_position.png"))

    quat, omega = log.column("quat"), log.column("omega")
    rpy = np.degrees(quat_to_euler(quat))
    fig, axes = plt.subplots(2, 1, sharex=True, figsize=(9, 6))
    for i, name in enumerate(("roll", "pitch", "yaw")):
        axes[0].plot(t, rpy[:, i], label=name)
        axes[1].plot(t, omega[:, i], label=f"omega_{'xyz'[i]}")
    axes[0].set_ylabel("attitude [deg]")
    axes[1].set_ylabel("body rate (FLU) [rad/s]")
    axes[1].set_xlabel("time since takeoff [s]")
    for ax in axes:
        ax.legend(loc="upper right", fontsize=8)
        _mark_transitions(ax, log)
    written.append(_save(fig, out / f"{stem}_attitude.png"))

    cmds = [tk.get("cmd") or {} for tk in log.ticks]
    keys = sorted({k for c in cmds for k in c})
    fig, axes = plt.subplots(2, 1, sharex=True, figsize=(9, 6))
    thrust_keys = [k for k in keys if "thrust" in k or k.endswith("_pwm")]
    rate_keys = [k for k in keys if k not in thrust_keys]
    for k in thrust_keys:
        axes[0].plot(t, [c.get(k, np.nan) for c in cmds], label=k)
    for k in rate_keys:
        axes[1].plot(t, [c.get(k, np.nan) for c in cmds], label=k)
    axes[0].set_ylabel("thrust / motor command (wire units)")
    axes[1].set_ylabel("body-rate command (wire units)")
    axes[1].set_xlabel("time since takeoff [s]")
    for ax in axes:
        if ax.lines:
            ax.legend(loc="upper right", fontsize=8)
    written.append(_save(fig, out / f"{stem}_commands.png"))

    lat = log.column("latency_ms")
    lat = lat[np.isfinite(lat)]
    age, inf = log.column("state_age_ms"), log.column("infer_ms")
    period_ms = 1e3 / float(log.header.get("rate_hz", 100.0))
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, vals, name in ((axes[0], lat, "telemetry arrival -> command sent"), (axes[1], age, "state age at send"),
                           (axes[2], inf, "policy inference")):
        vals = vals[np.isfinite(vals)]
        if vals.size:
            ax.hist(vals, bins=50)
            ax.axvline(np.percentile(vals, 99), color="orange", label=f"p99 {np.percentile(vals, 99):.3f} ms")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("ms")
        if ax is not axes[2]:
            ax.axvline(period_ms, color="red", linestyle="--", label=f"period {period_ms:.1f} ms")
        ax.legend(fontsize=8)
    written.append(_save(fig, out / f"{stem}_latency.png"))
    return written


def position_title(stem: str, summary: dict) -> str:
    """Title of the position plot: the log's name, hover RMSE in cm (2 decimals), how it ended."""
    rmse_m = summary.get("rmse_m")
    rmse = "n/a" if rmse_m is None else f"{100.0 * float(rmse_m):.2f} cm"
    parts = [f"RMSE {rmse}"]
    if summary.get("final_state"):
        parts.append(f"ended {summary['final_state']}")
    parts.append(f"failsafe {summary.get('failsafe') or 'none'}")
    return f"{stem}: position vs reference ({', '.join(parts)})"


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def run(args: argparse.Namespace) -> int:
    """Plot one flight log."""
    paths = plot_flight(args.flight, args.out)
    for p in paths:
        print(p)
    if args.json:
        emit_json({"pngs": [str(p) for p in paths]})
    return 0
