"""``quadhil sweep`` on Ray Tune: every (configuration, seed) a Tune trial, every trial a normal
quadhil run directory.

The driver builds a ``tune.Tuner`` over :func:`run_trial` (``tune.with_resources``, a
``tune.grid_search`` over configurations and seeds, or a searcher such as Optuna through
``ray.tune.search.optuna.OptunaSearch``, ASHA when the sweep file asks) and returns one
:class:`TrialOutcome` per trial. The trial trains through :func:`train.cli_train.train_and_evaluate`
with a :attr:`train.loop.Trainer.on_eval` hook that calls ``tune.report`` after each periodic
evaluation, then evaluates its chosen actor on fresh episodes (``quadhil eval``'s episodes, never
seen by the selection) and reports that last.

Ray is imported only inside these functions, so ``quadhil --help`` and every other command never
load it. Local by default: ``ray.init()`` in this process with this machine's cores, every Ray
server bound to 127.0.0.1. With an address, the same Tuner runs on an existing cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from sim.errors import QuadhilError
from train.sweep_spec import SweepSpec, configuration_name, set_item, slug

EXPERIMENT = "tune"  # Ray Tune's experiment folder inside the sweep's --out
RUNS = "runs"  # the quadhil run directories: runs/<configuration>/seed<S>
SWEEP_RECORD = "sweep.json"  # what the trials share, kept for --resume
STDOUT_LOG = "stdout.log"  # a trial's stdout and stderr, in its run directory
OBJECT_STORE_BYTES = 128 * 1024 * 1024  # trials pass only small result dicts through Ray
ASHA_MAX_T = 10**12
CONNECT_TIMEOUT_S = 10.0  # a cluster's head must accept a TCP connection within this
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass
class TrialOutcome:
    """What one trial gave. Times in s of the trial's wall clock (from the trial's start, the
    TensorFlow import included, as ``quadhil train`` counts them); success rates in [0, 1].
    ``status``: "done" (trained and evaluated on fresh episodes), "stopped" (stopped early by the
    scheduler: no fresh evaluation), "unfinished" (the sweep was interrupted: ``--resume``) or
    "error". ``history``: (wall s, env steps, periodic eval
    success) per periodic evaluation."""

    configuration: str
    seed: int
    status: str
    run_dir: str
    trial_id: str = ""
    fresh_success: float | None = None
    fresh_rmse_m: float | None = None
    fresh_crash_rate: float | None = None
    fresh_episodes: int | None = None
    best_eval_success: float | None = None
    time_to_target_s: float | None = None
    steps_to_target: int | None = None
    env_steps: int = 0
    train_wall_s: float | None = None
    error: str | None = None
    history: list = field(default_factory=list)


def is_local_address(address: str | None) -> bool:
    """True for no address (Ray started here) or an address on this machine's loopback."""
    if address is None:
        return True
    host = address.split("://", 1)[-1].rsplit(":", 1)[0]
    return host in _LOOPBACK


def check_address(address: str | None) -> None:
    """QuadhilError unless ``address`` is None, ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``."""
    if address is None or address == "auto":
        return
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    if "://" in rest or ":" not in rest:
        raise QuadhilError(f"--address must be auto, HOST:PORT or ray://HOST:PORT, got {address!r}")
    host, port = rest.rsplit(":", 1)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise QuadhilError(f"--address must be auto, HOST:PORT or ray://HOST:PORT, got {address!r}")


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """QuadhilError unless something accepts a TCP connection at ``address`` (HOST:PORT or
    ray://HOST:PORT) within ``timeout_s``: Ray itself retries a silent address for minutes."""
    import socket

    host, port = address.split("://", 1)[-1].rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise QuadhilError(f"no Ray cluster answers at {address} within {timeout_s:.0f} s ({exc}); "
                           "start its head with `ray start --head` or check the address") from None


def ray_environment(address: str | None) -> dict[str, str]:
    """Environment variables to set before Ray is imported. Ray reads its 'is this a cluster'
    switch at import: off, every server it starts (GCS, raylet, workers, runtime-env agent)
    listens on 127.0.0.1 only (ray/_private/services.py get_node_ip_address). A sweep against a
    remote cluster keeps Ray's default so the cluster's nodes can reach this driver."""
    env = {"RAY_USAGE_STATS_ENABLED": "0"}
    if is_local_address(address):
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    return env


# ray/util/client/server/proxier.py Datapath: the head's per-client server did not start ("failed"),
# or started and died before it answered ("Initialization failure", psutil.ZombieProcess); both seen
# on loaded 2-core machines, and a second connection gets a fresh server.
CLIENT_SERVER_FAILED = ("Starting Ray client server failed", "Initialization failure from server")
CLIENT_CONNECT_TRIES = 3


def _init_ray(ray, kw: dict, address: str | None) -> None:
    """``ray.init(**kw)``, asked again (up to :data:`CLIENT_CONNECT_TRIES` times in all) when the
    head's Ray Client server died at start."""
    for attempt in range(1, CLIENT_CONNECT_TRIES + 1):
        try:
            ray.init(**kw)
            return
        except ConnectionError as exc:
            failed_at_start = any(m in str(exc) for m in CLIENT_SERVER_FAILED)
            if not (address or "").startswith("ray://") or not failed_at_start or attempt == CLIENT_CONNECT_TRIES:
                raise
            print(f"quadhil sweep: the head's Ray Client server did not start (try {attempt} of "
                  f"{CLIENT_CONNECT_TRIES}); connecting again ({str(exc).splitlines()[0]})", file=sys.stderr)
            ray.shutdown()
            time.sleep(2.0 * attempt)


def start_ray(address: str | None, temp_dir: str | None = None) -> None:
    """Start Ray here (no address: this machine's cores, no dashboard, a small object store,
    workers' logs not forwarded) or join the cluster at ``address``. No runtime_env is passed:
    with one, a Ray Client (ray://) connection makes the head start its per-client server through
    the runtime-env agent, a path that failed on a loaded CI machine ("Starting Ray client server
    failed"); each trial sets its own threads instead (:func:`_limit_threads`)."""
    if address not in (None, "auto"):
        check_reachable(address)
    os.environ.update(ray_environment(address))
    import ray

    kw = dict(log_to_driver=False, logging_level="warning", ignore_reinit_error=True)
    if address is None:
        kw.update(num_cpus=os.cpu_count() or 1, include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES)
        if temp_dir is not None:
            kw["_temp_dir"] = str(Path(temp_dir).resolve())
    else:
        kw["address"] = address
    try:
        _init_ray(ray, kw, address)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        hint = ""
        if address is not None and os.environ.get("RAY_AUTH_MODE") != "token":
            hint = (" (a head started by `ray start` asks for its token: set RAY_AUTH_MODE=token and the head's "
                    "token in RAY_AUTH_TOKEN or ~/.ray/auth_token, see docs/training.md)")
        raise QuadhilError(f"cannot start or join Ray at {address or 'this machine'}: {exc}{hint}") from None


# --- the trial ---------------------------------------------------------------------------------


def trial_run_dir(runs_dir: str | Path, config: dict) -> Path:
    """The quadhil run directory of the trial with Tune config ``config`` under ``runs_dir``."""
    name = configuration_name(config["config"], dict(config.get("set") or {}))
    return Path(runs_dir) / slug(name) / f"seed{config['seed']}"


def trial_name(trial) -> str:
    """Tune's trial name: configuration and seed (trial_name_creator)."""
    c = trial.config
    return f"{configuration_name(c['config'], dict(c.get('set') or {}))} seed{c['seed']}"


def trial_dirname(trial) -> str:
    """Tune's folder of the trial inside the experiment (trial_dirname_creator)."""
    return f"{slug(trial_name(trial))}_{trial.trial_id}"


def _train_args(config: dict, sweep: dict, run_dir: Path):
    from sim.report import ArgumentParser
    from train import cli_train

    overrides = dict(config.get("set") or {})
    argv = list(sweep["argv"][config["config"]])
    for key, value in sorted(overrides.items()):
        argv += ["--set", set_item(key, value)]
    argv += ["--out", str(run_dir), "--seed", str(config["seed"]), "--no-progress"]
    if (run_dir / "checkpoint" / "done").exists():
        argv.append("--resume")  # a restored sweep continues the run where its checkpoint left it
    parser = ArgumentParser(prog="quadhil train (sweep trial)")
    cli_train.configure(parser)
    return argv, parser.parse_args(argv)


def _periodic_metrics(rec: dict) -> dict:
    rmse = rec["rmse_m"]
    return {"eval_success": rec["success_rate"], "best_eval_success": rec["best_success"],
            "eval_rmse_m": rmse, "neg_eval_rmse_m": -rmse if rmse is not None else -10.0,
            "eval_crash_rate": rec["crash_rate"], "env_steps": rec["env_steps"], "updates": rec["updates"],
            "wall_s": rec["wall_s"], "time_to_target_s": rec["time_to_target_s"],
            "steps_to_target": rec["steps_to_target"], "final": False}


def _limit_threads(threads: int) -> None:
    """Keep a trial's physics kernel (numba) on the cores Tune gave it (TensorFlow's threads and
    logs: train.runtime.configure_tensorflow, when the trainer is built)."""
    import numba

    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))


def run_trial(config: dict, sweep: dict) -> None:
    """A Tune trial: train one (configuration, seed) into its run directory, ``tune.report``
    after each periodic evaluation, then report the fresh-episode evaluation of the chosen actor
    (``final`` true). The process's stdout and stderr go to the run directory's stdout.log.
    ``config``: Tune's (``config``, ``seed``, ``set``); ``sweep``: what every trial shares
    (``runs_dir``, ``threads``, ``argv`` per named configuration), via ``tune.with_parameters``."""
    t_start = time.perf_counter()
    from ray import tune

    run_dir = trial_run_dir(sweep["runs_dir"], config)
    if (run_dir / "config.json").exists() and not (run_dir / "checkpoint" / "done").exists():
        shutil.rmtree(run_dir)  # a run that died before its first checkpoint starts again
    run_dir.mkdir(parents=True, exist_ok=True)
    log = open(run_dir / STDOUT_LOG, "ab", buffering=0)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(log.fileno(), 1)  # file-descriptor level: TensorFlow's C++ logs land here too
    os.dup2(log.fileno(), 2)
    try:
        _limit_threads(sweep["threads"])
        from train.cli_train import train_and_evaluate

        argv, args = _train_args(config, sweep, run_dir)
        last: dict = {}

        def report(rec: dict) -> None:
            last.update(_periodic_metrics(rec))
            tune.report(dict(last))

        print("quadhil sweep trial: quadhil train " + " ".join(argv), flush=True)
        _, result = train_and_evaluate(args, t_start, on_eval=report, threads=sweep["threads"])
        ev = result["eval"]
        tune.report({**last, "final": True, "fresh_success": ev["success_rate"], "fresh_rmse_m": ev["rmse_m"],
                     "fresh_crash_rate": ev["crash_rate"], "fresh_episodes": ev["episodes"],
                     "env_steps": result["env_steps"], "train_wall_s": result["train_wall_s"],
                     "time_to_target_s": result["time_to_target_s"], "steps_to_target": result["steps_to_target"],
                     "best_eval_success": result["best_periodic_success"]})
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        log.close()


# --- the driver --------------------------------------------------------------------------------


def sweep_static(spec: SweepSpec, runs_dir: Path, cpus_per_trial: float) -> dict:
    """What every trial shares (the ``sweep`` argument of :func:`run_trial`)."""
    return {"runs_dir": str(Path(runs_dir).resolve()), "threads": max(1, int(cpus_per_trial)),
            "argv": {name: spec.train_argv(name) for name in spec.configs}}


def _param_space(spec: SweepSpec) -> dict:
    from ray import tune

    if spec.search_algorithm is None:
        return {"config": tune.grid_search(list(spec.configs)), "seed": tune.grid_search(list(spec.seeds)),
                "set": {k: tune.grid_search(list(v)) for k, v in spec.grid.items()}}
    space = {}
    for key, dist in spec.space.items():
        kind, args = next(iter(dist.items()))
        space[key] = tune.choice(list(args)) if kind == "choice" else getattr(tune, kind)(*args)
    return {"config": next(iter(spec.configs)), "seed": spec.seeds[0], "set": space}


def _tune_config(spec: SweepSpec):
    from ray import tune

    search_alg = scheduler = None
    if spec.search_algorithm == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(metric=spec.metric, mode="max", seed=spec.search_seed)
    if spec.scheduler is not None:
        from ray.tune.schedulers import ASHAScheduler

        s = spec.scheduler
        # max_t far beyond any budget: rungs at grace_period x reduction_factor^k, never a stop
        # at max_t (that would come before the trial's fresh-episode evaluation)
        scheduler = ASHAScheduler(time_attr=s.time_attr, metric=spec.metric, mode="max", max_t=ASHA_MAX_T,
                                  grace_period=s.grace_period, reduction_factor=s.reduction_factor)
    return tune.TuneConfig(search_alg=search_alg, scheduler=scheduler,
                           num_samples=spec.num_samples if spec.search_algorithm else 1,
                           trial_name_creator=trial_name, trial_dirname_creator=trial_dirname, reuse_actors=False)


def experiment_dir(out: Path) -> Path:
    """Ray Tune's experiment folder of the sweep whose output folder is ``out``."""
    return Path(out).resolve() / EXPERIMENT


def run_sweep(spec: SweepSpec, out: Path, address: str | None = None, cpus_per_trial: float = 1.0,
              resume: bool = False, temp_dir: str | None = None, verbose: int = 1) -> list[TrialOutcome]:
    """Run (or, with ``resume``, continue) the sweep into ``out`` and return one outcome per
    trial. Ray is started here or joined at ``address`` and shut down before returning."""
    check_address(address)
    if not cpus_per_trial > 0:
        raise QuadhilError(f"--cpus-per-trial must be > 0, got {cpus_per_trial}")
    out = Path(out).resolve()
    exp = experiment_dir(out)
    if resume and not ((exp / "tuner.pkl").exists() and (out / SWEEP_RECORD).exists()):
        raise QuadhilError(f"cannot resume: {out} holds no sweep (no {EXPERIMENT}/tuner.pkl)")
    if not resume and exp.exists():
        raise QuadhilError(f"{out} already holds a sweep; use --resume to continue it or pick another --out")
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = out / RUNS
    record = out / SWEEP_RECORD
    if resume:  # the trials continue with the arguments and resources they started with
        stored = json.loads(record.read_text())
        static, cpus_per_trial = stored["sweep"], float(stored["cpus_per_trial"])
    else:
        static = sweep_static(spec, runs_dir, cpus_per_trial)
    start_ray(address, temp_dir)
    if not resume:
        record.write_text(json.dumps({"source": spec.source, "name": spec.name, "cpus_per_trial": cpus_per_trial,
                                      "sweep": static}, indent=2, sort_keys=True) + "\n")
    import ray
    from ray import tune

    try:
        trainable = tune.with_resources(tune.with_parameters(run_trial, sweep=static), {"cpu": cpus_per_trial})
        if resume:
            tuner = tune.Tuner.restore(str(exp), trainable, resume_unfinished=True, resume_errored=True)
        else:
            tuner = tune.Tuner(trainable, param_space=_param_space(spec),
                               tune_config=_tune_config(spec),
                               run_config=tune.RunConfig(name=EXPERIMENT, storage_path=str(out), verbose=verbose,
                                                         failure_config=tune.FailureConfig(max_failures=0)))
        grid = tuner.fit()
        # The trial states Tune saved last: after Ctrl-C, Tune checkpoints the experiment with the
        # running trials still PENDING/RUNNING (what Tuner.restore resumes) and only then ends them,
        # so the in-memory states all read TERMINATED
        try:
            saved = {t.trial_id: t.status for t in tune.ExperimentAnalysis(str(exp)).trials}
        except (OSError, ValueError, tune.TuneError):  # ray://: the experiment lives on the head
            saved = {}

        def trial_of(result) -> tuple[str, str]:
            name = Path(result.path).name  # trial_dirname: ..._<trial_id>
            return next(((tid, st) for tid, st in saved.items() if name.endswith("_" + tid)), (name, "TERMINATED"))

        # in the order Tune created the trials (a restored ResultGrid lists them in another)
        return sorted((_outcome(r, runs_dir, *trial_of(r)) for r in grid), key=lambda o: o.trial_id)
    finally:
        ray.shutdown()


def _num(value):
    """A reported number, or None for a missing or NaN one."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v == v else None


def _outcome(result, runs_dir: Path, trial_id: str, state: str) -> TrialOutcome:
    config, m = result.config, result.metrics or {}
    name = configuration_name(config["config"], dict(config.get("set") or {}))
    history = []
    df = result.metrics_dataframe
    if df is not None and "eval_success" in df:
        for _, row in df.iterrows():
            if not bool(row.get("final", False)):
                history.append((float(row["wall_s"]), int(row["env_steps"]), float(row["eval_success"])))
    if result.error is not None or state == "ERROR":
        status = "error"
    elif m.get("final"):
        status = "done"
    else:
        status = "stopped" if state == "TERMINATED" else "unfinished"
    tts = _num(m.get("time_to_target_s"))
    stt = _num(m.get("steps_to_target"))
    fe = _num(m.get("fresh_episodes"))
    return TrialOutcome(configuration=name, seed=int(config["seed"]), status=status,
                        trial_id=trial_id,
                        run_dir=str(trial_run_dir(runs_dir, config)), fresh_success=_num(m.get("fresh_success")),
                        fresh_rmse_m=_num(m.get("fresh_rmse_m")), fresh_crash_rate=_num(m.get("fresh_crash_rate")),
                        fresh_episodes=int(fe) if fe is not None else None,
                        best_eval_success=_num(m.get("best_eval_success")), time_to_target_s=tts,
                        steps_to_target=int(stt) if stt is not None else None,
                        env_steps=int(_num(m.get("env_steps")) or 0), train_wall_s=_num(m.get("train_wall_s")),
                        error=None if result.error is None else f"{type(result.error).__name__}: {result.error}"[:2000],
                        history=history)


def with_budget(spec: SweepSpec, max_steps: int | None, budget_minutes: float | None) -> SweepSpec:
    """``spec`` with the base training budget replaced (``quadhil sweep --max-steps``/``--budget-minutes``)."""
    base = dict(spec.base)
    for key, value in (("max-steps", max_steps), ("budget-minutes", budget_minutes)):
        if value is not None:
            base.pop(key.replace("-", "_"), None)
            base[key] = value
    for cfg in spec.configs.values():
        for key in ("max-steps", "max_steps", "budget-minutes", "budget_minutes"):
            if key in cfg and (max_steps is not None or budget_minutes is not None):
                raise QuadhilError(f"{spec.source}: a configuration sets its own {key}; --max-steps/--budget-minutes "
                                   "would not apply to it")
    return replace(spec, base=base)
