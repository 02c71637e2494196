"""The sweep file of ``quadhil sweep``: what to train, over which seeds and configurations.

A TOML file (docs/training.md, "Sweeps")::

    name = "crazyflie-bar"          # the sweep's name (its default output folder)
    seeds = [0, 1, 2]

    [train]                          # base `quadhil train` arguments, flag names without "--"
    vehicle = "crazyflie"
    budget-minutes = 5
    set = ["train.eval_every_steps=100000"]

    [configs.v4]                     # optional named configurations, each over every seed;
    [configs.v3]                     # their keys are merged over [train], their `set` appended
    set = ["train.yaw_symmetry=false"]

    [grid]                           # optional: a --set key -> values (tune.grid_search each)
    "train.batch_size" = [128, 256]

    [search]                         # optional, instead of [grid]: sampled by a Ray Tune searcher
    algorithm = "optuna"             # (Optuna through Ray's integration) or "random"
    num_samples = 8
    [search.space]
    "agent.actor_lr" = { loguniform = [1e-4, 1e-3] }

    [scheduler]                      # optional early stopping of hopeless trials
    type = "asha"

    [compare]                        # optional: paired differences per seed against a baseline
    baseline = "v3"

Nothing here imports Ray: the file is checked before any cluster is touched, and the same
parsing serves the trial (train.sweep) and the report (train.sweep_report).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sim.errors import QuadhilError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# `quadhil train` flags a sweep sets per trial itself
_RESERVED = {"out", "seed", "resume", "json", "no-progress", "help"}
SEARCH_ALGORITHMS = ("optuna", "random")
# tune sampling functions a search space may name, with how many arguments each takes
DISTRIBUTIONS = {"uniform": 2, "loguniform": 2, "quniform": 3, "randint": 2, "lograndint": 2,
                 "qrandint": 3, "choice": 1}
SCHEDULERS = ("asha",)
# what a periodic evaluation reports to Tune (train.sweep.run_trial); searchers and schedulers
# compare trials on one of these
METRICS = ("eval_success", "best_eval_success", "neg_eval_rmse_m")


@dataclass(frozen=True)
class SchedulerSpec:
    """ASHA (Ray Tune's ASHAScheduler) over ``time_attr`` (``env_steps`` or ``wall_s``): at
    ``grace_period`` x ``reduction_factor``^k it stops the trials below the top 1/reduction_factor.
    No max_t: the trial's own budget ends it, so every trial ASHA lets run is evaluated on fresh
    episodes (ASHA's max_t would stop a trial before that evaluation)."""

    type: str = "asha"
    time_attr: str = "env_steps"
    grace_period: float = 200_000
    reduction_factor: float = 2.0


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file. ``base`` and ``configs`` hold `quadhil train` argument dicts (flag
    name without dashes -> value); ``grid`` and ``space`` map a ``--set`` key to values or to a
    ``{distribution: args}`` table."""

    name: str
    seeds: tuple[int, ...]
    base: dict
    configs: dict[str, dict]
    grid: dict[str, list] = field(default_factory=dict)
    search_algorithm: str | None = None
    num_samples: int = 1
    space: dict[str, dict] = field(default_factory=dict)
    metric: str = "best_eval_success"
    scheduler: SchedulerSpec | None = None
    baseline: str | None = None
    search_seed: int = 0
    source: str = ""

    def train_argv(self, config: str) -> list[str]:
        """`quadhil train` arguments of named configuration ``config`` (without --out/--seed)."""
        return to_argv(merge_args(self.base, self.configs[config]))


def merge_args(base: dict, over: dict) -> dict:
    """``over``'s keys replace ``base``'s, except ``set``, whose items are appended."""
    out = {**base, **over}
    out["set"] = list(base.get("set", [])) + list(over.get("set", []))
    return out


def to_argv(args: dict) -> list[str]:
    """A `quadhil train` argument dict as argv: True -> the flag, False/None -> left out, a list
    -> the flag repeated (``set``), anything else -> ``--flag value``."""
    argv: list[str] = []
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    return argv


def set_item(key: str, value) -> str:
    """``KEY=VALUE`` for ``quadhil train --set``, the value as JSON so types survive."""
    return f"{key}={json.dumps(value)}"


def _train_parser() -> argparse.ArgumentParser:
    from sim.report import ArgumentParser
    from train import cli_train

    parser = ArgumentParser(prog="quadhil train (from the sweep file)", add_help=False)
    cli_train.configure(parser)
    return parser


def check_train_args(where: str, args: dict, parser: argparse.ArgumentParser) -> None:
    """QuadhilError unless ``args`` is a dict of `quadhil train` flags that parse."""
    known = {a.dest.replace("_", "-") for a in parser._actions} - _RESERVED
    for key in args:
        if key.replace("_", "-") in _RESERVED:
            raise QuadhilError(f"{where}: {key!r} is set by quadhil sweep per trial; remove it")
        if key.replace("_", "-") not in known:
            raise QuadhilError(f"{where}: unknown quadhil train argument {key!r}; known: {', '.join(sorted(known))}")
    if "set" in args and not (isinstance(args["set"], list) and all(isinstance(i, str) for i in args["set"])):
        raise QuadhilError(f"{where}: 'set' must be a list of \"SECTION.KEY=VALUE\" strings")
    try:
        parser.parse_args(to_argv(args) + ["--out", "unused"])
    except SystemExit:
        raise QuadhilError(f"{where}: these quadhil train arguments do not parse (see above)") from None
    from train.cli_train import _parse_overrides

    try:
        _parse_overrides(list(args.get("set", [])))
    except QuadhilError as exc:
        raise QuadhilError(f"{where}: {exc}") from None


def _check_set_key(where: str, key: str) -> None:
    from train.cli_train import _parse_overrides

    try:
        _parse_overrides([f"{key}=0"])  # the same sections as quadhil train --set
    except QuadhilError as exc:
        raise QuadhilError(f"{where}: {exc}") from None
    if not re.fullmatch(r"[a-z_]+\.[a-z_0-9]+", key):
        raise QuadhilError(f"{where}: {key!r} is not a SECTION.KEY setting")


def _table(data: dict, key: str, where: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise QuadhilError(f"{where}: [{key}] must be a table")
    return value


def parse_sweep(data: dict, source: str = "<sweep>") -> SweepSpec:
    """Check a sweep file's contents (a dict from TOML) and return its :class:`SweepSpec`;
    QuadhilError naming the file and the problem otherwise."""
    allowed = {"name", "seeds", "train", "configs", "grid", "search", "scheduler", "compare"}
    unknown = set(data) - allowed
    if unknown:
        raise QuadhilError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(allowed))}")
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise QuadhilError(f"{source}: name must be letters, digits, '.', '_' or '-', got {name!r}")
    seeds = data.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
            or len(set(seeds)) != len(seeds)):
        raise QuadhilError(f"{source}: seeds must be a non-empty list of distinct integers, got {seeds!r}")
    parser = _train_parser()
    base = _table(data, "train", source)
    check_train_args(f"{source} [train]", base, parser)
    configs_raw = _table(data, "configs", source)
    configs: dict[str, dict] = {}
    for cname, cargs in configs_raw.items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", cname):
            raise QuadhilError(f"{source}: configuration name must be letters, digits, '.', '_' or '-', got {cname!r}")
        if not isinstance(cargs, dict):
            raise QuadhilError(f"{source}: [configs.{cname}] must be a table")
        check_train_args(f"{source} [configs.{cname}]", cargs, parser)
        check_train_args(f"{source} [train] + [configs.{cname}]", merge_args(base, cargs), parser)
        configs[cname] = dict(cargs)
    if not configs:
        configs = {"base": {}}
    grid = _table(data, "grid", source)
    for key, values in grid.items():
        _check_set_key(f"{source} [grid]", key)
        if not isinstance(values, list) or not values:
            raise QuadhilError(f"{source} [grid]: {key!r} must be a non-empty list of values")
    search = _table(data, "search", source)
    algorithm, num_samples, space, search_seed = None, 1, {}, 0
    metric = "best_eval_success"
    if search:
        if grid:
            raise QuadhilError(f"{source}: give [grid] or [search], not both")
        unknown = set(search) - {"algorithm", "num_samples", "space", "metric", "seed"}
        if unknown:
            raise QuadhilError(f"{source} [search]: unknown key(s) {', '.join(sorted(unknown))}")
        algorithm = search.get("algorithm", "optuna")
        if algorithm not in SEARCH_ALGORITHMS:
            raise QuadhilError(f"{source} [search]: algorithm must be one of {', '.join(SEARCH_ALGORITHMS)}, got {algorithm!r}")
        num_samples = search.get("num_samples", 8)
        if not isinstance(num_samples, int) or num_samples < 1:
            raise QuadhilError(f"{source} [search]: num_samples must be an integer >= 1, got {num_samples!r}")
        search_seed = int(search.get("seed", 0))
        metric = search.get("metric", metric)
        space = search.get("space", {})
        if not isinstance(space, dict) or not space:
            raise QuadhilError(f"{source} [search]: [search.space] must name at least one --set key")
        for key, dist in space.items():
            _check_set_key(f"{source} [search.space]", key)
            if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
                raise QuadhilError(f"{source} [search.space]: {key!r} must be one {{distribution = [args]}} with a "
                                   f"distribution among {', '.join(DISTRIBUTIONS)}, got {dist!r}")
            kind, args = next(iter(dist.items()))
            if not isinstance(args, list) or len(args) != DISTRIBUTIONS[kind] and kind != "choice":
                raise QuadhilError(f"{source} [search.space]: {key!r}: {kind} takes a list of {DISTRIBUTIONS[kind]} "
                                   f"numbers, got {args!r}")
            if kind == "choice" and not args:
                raise QuadhilError(f"{source} [search.space]: {key!r}: choice needs a non-empty list")
        if len(seeds) != 1:
            raise QuadhilError(f"{source}: a [search] trains each sampled configuration once, so give one seed "
                               "(seeds = [0]); then re-run the configurations worth keeping as [configs] over "
                               "several seeds")
        if len(configs) != 1:
            raise QuadhilError(f"{source}: a [search] samples around one configuration; give at most one [configs.NAME]")
    if metric not in METRICS:
        raise QuadhilError(f"{source}: metric must be one of {', '.join(METRICS)}, got {metric!r}")
    sched_raw = _table(data, "scheduler", source)
    scheduler = None
    if sched_raw:
        try:
            scheduler = SchedulerSpec(**sched_raw)
        except TypeError as exc:
            raise QuadhilError(f"{source} [scheduler]: {exc}") from None
        if scheduler.type not in SCHEDULERS:
            raise QuadhilError(f"{source} [scheduler]: type must be one of {', '.join(SCHEDULERS)}, got {scheduler.type!r}")
        if scheduler.time_attr not in ("env_steps", "wall_s"):
            raise QuadhilError(f"{source} [scheduler]: time_attr must be env_steps or wall_s, got {scheduler.time_attr!r}")
        if not scheduler.grace_period > 0 or not scheduler.reduction_factor > 1:
            raise QuadhilError(f"{source} [scheduler]: need grace_period > 0 and reduction_factor > 1")
    compare = _table(data, "compare", source)
    baseline = compare.get("baseline")
    if set(compare) - {"baseline"}:
        raise QuadhilError(f"{source} [compare]: only 'baseline' is known")
    if baseline is not None and baseline not in configs:
        raise QuadhilError(f"{source} [compare]: baseline {baseline!r} is not one of the [configs]: {', '.join(configs)}")
    if baseline is None and len(configs) == 2 and not grid and not search:
        baseline = next(iter(configs))  # two presets over the same seeds: the paired design
    return SweepSpec(name=name, seeds=tuple(seeds), base=dict(base), configs=configs, grid=dict(grid),
                     search_algorithm=algorithm, num_samples=num_samples, space=dict(space), metric=metric,
                     scheduler=scheduler, baseline=baseline, search_seed=search_seed, source=source)


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file (TOML); QuadhilError if missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise QuadhilError(f"sweep file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise QuadhilError(f"{path} is not valid TOML: {exc}") from None
    return parse_sweep(data, str(path))


def configuration_name(config: str, overrides: dict) -> str:
    """The name a trial's configuration is reported under: the named configuration, then each
    grid or sampled ``--set`` value (``v4 train.batch_size=128``)."""
    parts = [config] + [f"{k}={_short(v)}" for k, v in sorted(overrides.items())]
    return " ".join(parts)


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if not isinstance(value, str) else value


def slug(text: str) -> str:
    """A file-system-safe form of a configuration name."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")[:100] or "config"
