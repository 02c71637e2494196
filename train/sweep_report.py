"""The statistic a sweep reports: per configuration, success on fresh episodes over seeds (mean
and a bootstrap confidence interval), time to the bar (median, max) and the fraction of seeds
that reached it; paired differences per seed against a baseline; the table and the PNG.

Pure numpy (and matplotlib for the figure): it reads :class:`train.sweep.TrialOutcome` records,
so it is tested without Ray.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
CI_LEVEL = 0.95


def bootstrap_ci(values, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES,
                 level: float = CI_LEVEL) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of ``values`` (resampling the values with
    replacement, a seeded numpy Generator); None for fewer than two values."""
    x = np.asarray([v for v in values if v is not None], float)
    if x.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (resamples, x.size))].mean(axis=1)
    a = (1.0 - level) / 2.0
    return float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a))


@dataclass
class ConfigSummary:
    """One configuration over its seeds. Success rates in [0, 1] on fresh episodes; times in s of
    trial wall clock; ``reached``: seeds whose periodic evaluation reached the bar."""

    configuration: str
    seeds: list
    done: int
    stopped: int
    errors: int
    unfinished: int
    success_mean: float | None
    success_ci: tuple | None
    success_per_seed: list
    rmse_mean_m: float | None
    reached: int
    reached_fraction: float
    time_to_bar_median_s: float | None
    time_to_bar_max_s: float | None
    steps_to_bar_median: float | None


@dataclass
class PairedDiff:
    """``configuration`` minus ``baseline`` per seed both finished: fresh success difference
    (mean and bootstrap CI over seeds), and how many seeds each reached the bar."""

    configuration: str
    baseline: str
    seeds: list
    diff_per_seed: list
    diff_mean: float | None
    diff_ci: tuple | None
    reached: int
    baseline_reached: int


def summarize(outcomes, seed: int = 0) -> list[ConfigSummary]:
    """One :class:`ConfigSummary` per configuration, in the order they first appear."""
    out = []
    for name in dict.fromkeys(o.configuration for o in outcomes):
        rows = sorted((o for o in outcomes if o.configuration == name), key=lambda o: o.seed)
        done = [o for o in rows if o.status == "done" and o.fresh_success is not None]
        succ = [o.fresh_success for o in done]
        rmse = [o.fresh_rmse_m for o in done if o.fresh_rmse_m is not None]
        times = [o.time_to_target_s for o in rows if o.time_to_target_s is not None]
        steps = [o.steps_to_target for o in rows if o.steps_to_target is not None]
        out.append(ConfigSummary(
            configuration=name, seeds=[o.seed for o in rows], done=len(done),
            stopped=sum(o.status == "stopped" for o in rows), errors=sum(o.status == "error" for o in rows),
            unfinished=sum(o.status == "unfinished" for o in rows),
            success_mean=float(np.mean(succ)) if succ else None, success_ci=bootstrap_ci(succ, seed),
            success_per_seed=[(o.seed, o.fresh_success) for o in rows],
            rmse_mean_m=float(np.mean(rmse)) if rmse else None, reached=len(times),
            reached_fraction=len(times) / len(rows),
            time_to_bar_median_s=float(np.median(times)) if times else None,
            time_to_bar_max_s=float(np.max(times)) if times else None,
            steps_to_bar_median=float(np.median(steps)) if steps else None))
    return out


def paired(outcomes, baseline: str, seed: int = 0) -> list[PairedDiff]:
    """Each configuration of another named configuration than ``baseline``, minus the baseline
    with the same grid values, seed by seed (the same seeds: same airframes, same initial nets)."""
    def split(name: str) -> tuple[str, str]:
        named, _, rest = name.partition(" ")
        return named, rest

    result = []
    for name in dict.fromkeys(o.configuration for o in outcomes if split(o.configuration)[0] != baseline):
        base_name = " ".join(p for p in (baseline, split(name)[1]) if p)
        base_all = [o for o in outcomes if o.configuration == base_name]
        base = {o.seed: o for o in base_all if o.status == "done"}
        rows = {o.seed: o for o in outcomes if o.configuration == name}
        seeds = sorted(s for s, o in rows.items() if o.status == "done" and s in base)
        diffs = [rows[s].fresh_success - base[s].fresh_success for s in seeds]
        result.append(PairedDiff(
            configuration=name, baseline=base_name, seeds=seeds, diff_per_seed=diffs,
            diff_mean=float(np.mean(diffs)) if diffs else None, diff_ci=bootstrap_ci(diffs, seed),
            reached=sum(o.time_to_target_s is not None for o in rows.values()),
            baseline_reached=sum(o.time_to_target_s is not None for o in base_all)))
    return result


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _ci(ci) -> str:
    return "-" if ci is None else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _s(x) -> str:
    return "-" if x is None else f"{x:.0f} s"


def print_report(title: str, summaries: list[ConfigSummary], diffs: list[PairedDiff], target_success: float) -> None:
    """The rich tables: one row per configuration, then the paired differences."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=title)
    for col in ("configuration", "seeds", f"fresh success ({CI_LEVEL:.0%} CI)", "per seed %",
                "rmse m", f"at {target_success:.0%}", "to bar med/max", "stop/err/unf"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    for s in summaries:
        per_seed = " ".join("-" if v is None else f"{100 * v:.0f}" for _, v in s.success_per_seed)
        table.add_row(s.configuration, ",".join(map(str, s.seeds)),
                      f"{_pct(s.success_mean)} {_ci(s.success_ci)}", per_seed,
                      "-" if s.rmse_mean_m is None else f"{s.rmse_mean_m:.3f}",
                      f"{s.reached}/{len(s.seeds)}", f"{_s(s.time_to_bar_median_s)}/{_s(s.time_to_bar_max_s)}",
                      f"{s.stopped}/{s.errors}/{s.unfinished}")
    console.print(table)
    if diffs:
        t2 = Table(title="paired by seed: configuration - baseline, fresh success")
        for col in ("configuration", "baseline", "seeds", "difference (mean, CI)", "per seed", "at bar vs baseline"):
            t2.add_column(col, justify="left" if col in ("configuration", "baseline") else "right")
        for d in diffs:
            t2.add_row(d.configuration, d.baseline, ",".join(map(str, d.seeds)),
                       f"{'-' if d.diff_mean is None else f'{100 * d.diff_mean:+.1f} pts'} {_ci(d.diff_ci)}",
                       " ".join(f"{100 * v:+.0f}" for v in d.diff_per_seed), f"{d.reached} vs {d.baseline_reached}")
        console.print(t2)


def plot_success_vs_time(outcomes, path: Path, target_success: float, title: str) -> Path:
    """PNG: periodic evaluation success vs trial wall time, one colour per configuration, each
    seed a thin line; the bar dashed. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    names = list(dict.fromkeys(o.configuration for o in outcomes))
    colours = plt.get_cmap("tab10")
    for i, name in enumerate(names):
        for j, o in enumerate(o for o in outcomes if o.configuration == name):
            if not o.history:
                continue
            t, _, succ = zip(*o.history)
            ax.plot(t, 100 * np.asarray(succ), color=colours(i % 10), lw=0.9, alpha=0.85,
                    label=name if j == 0 else None)
    ax.axhline(100 * target_success, color="k", ls="--", lw=0.8, label=f"bar {target_success:.0%}")
    ax.set_xlabel("trial wall time, s (TensorFlow import included)")
    ax.set_ylabel("periodic evaluation success, %")
    ax.set_ylim(-2, 102)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def report_dict(summaries: list[ConfigSummary], diffs: list[PairedDiff], outcomes) -> dict:
    """Plain-JSON form of the report (the --json line and summary.json)."""
    return {"configurations": [asdict(s) for s in summaries], "paired": [asdict(d) for d in diffs],
            "trials": [asdict(o) for o in outcomes]}
