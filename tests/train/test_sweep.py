"""quadhil sweep: the sweep file, the statistic, and real Ray Tune sweeps (local, and against a
Ray head this test starts on 127.0.0.1), each trial a normal quadhil run directory."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from sim.errors import QuadhilError
from train.sweep import TrialOutcome, check_address
from train.sweep_report import bootstrap_ci, paired, summarize
from train.sweep_spec import parse_sweep

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="quadhil sweep needs the sweep extra: pip install -e '.[sweep]'")

REPO = Path(__file__).resolve().parents[2]
QUADHIL = [sys.executable, "-m", "quadhil"]

# A few hundred env transitions of tiny nets (tests/train/conftest.py's TINY as a sweep file).
TINY_TRAIN = """
[train]
vehicle = "crazyflie"
max-steps = 320
eval-episodes = 4
num-envs = 4
batch-size = 16
updates-per-step = 1
set = ["agent.actor_hidden=[8,8]", "agent.critic_hidden=[8,8]", "agent.jit=false",
       "train.warmup_steps=40", "train.chunk=5", "train.eval_every_steps=160", "train.eval_episodes=4",
       "train.checkpoint_every_steps=100000", "train.replay_capacity=1000",
       "task.episode_s=0.4", "task.hold_s=0.1",
       "train.teacher_steps=120", "train.teacher_bc_updates=20", "train.teacher_critic_updates=10"]
"""


# --- the sweep file ----------------------------------------------------------------------------


def _parse(text: str):
    import tomllib

    return parse_sweep(tomllib.loads(text), "test.toml")


def test_two_presets_over_the_same_seeds_make_a_paired_design():
    spec = _parse('name = "p"\nseeds = [0, 1, 2]\n' + TINY_TRAIN +
                  '[configs.v4]\n[configs.v3]\nset = ["train.yaw_symmetry=false"]\n')
    assert spec.seeds == (0, 1, 2) and list(spec.configs) == ["v4", "v3"]
    assert spec.baseline == "v4"  # the first one, unless [compare] names another
    argv = spec.train_argv("v3")
    assert argv[argv.index("--max-steps") + 1] == "320"
    assert argv[-2:] == ["--set", "train.yaw_symmetry=false"]  # appended after the base's --set items


@pytest.mark.parametrize("text, message", [
    ("seeds = [0, 0]", "distinct integers"),
    ("colour = 1", "unknown key(s) colour"),
    ("[train]\nout = 'x'", "set by quadhil sweep per trial"),
    ("[train]\nvehicel = 'x500'", "unknown quadhil train argument 'vehicel'"),
    ("[train]\nset = ['nosection=1']", "SECTION.KEY=VALUE"),
    ("[grid]\n'batch=1' = [1]", "SECTION.KEY"),
    ("[grid]\n'train.batch_size' = []", "non-empty list"),
    ("seeds = [0, 1]\n[search]\n[search.space]\n'agent.actor_lr' = { loguniform = [1e-4, 1e-3] }", "give one seed"),
    ("seeds = [0]\n[search]\n[search.space]\n'agent.actor_lr' = { gaussian = [0, 1] }", "distribution among"),
    ("seeds = [0]\n[search]\nalgorithm = 'hyperband'\n[search.space]\n'agent.actor_lr' = { choice = [1] }",
     "algorithm must be one of"),
    ("[configs.a]\n[compare]\nbaseline = 'b'", "baseline 'b' is not one of the [configs]"),
    ("[scheduler]\ntype = 'pbt'", "type must be one of asha"),
])
def test_a_bad_sweep_file_is_refused_naming_the_problem(text, message):
    with pytest.raises(QuadhilError) as exc:
        _parse(text)
    assert message in str(exc.value) and "test.toml" in str(exc.value)


@pytest.mark.parametrize("address", ["127.0.0.1", "http://h:1", "ray://h:port", "h:70000", ":1"])
def test_a_malformed_address_is_refused(address):
    with pytest.raises(QuadhilError, match="--address must be"):
        check_address(address)


@pytest.mark.parametrize("path", sorted((REPO / "sweeps").glob("*.toml")), ids=lambda p: p.name)
def test_the_example_sweep_files_parse(path):
    from train.sweep_spec import load_sweep

    spec = load_sweep(path)
    assert spec.name == path.stem
    for name in spec.configs:
        assert "--vehicle" in spec.train_argv(name)


@needs_ray
def test_a_search_builds_optuna_through_ray_and_asha_without_max_t():
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from train.sweep import ASHA_MAX_T, _param_space, _tune_config
    from train.sweep_spec import load_sweep

    spec = load_sweep(REPO / "sweeps" / "crazyflie-lr-search.toml")
    tc = _tune_config(spec)
    assert isinstance(tc.search_alg, OptunaSearch) and tc.num_samples == 12
    assert isinstance(tc.scheduler, ASHAScheduler)
    assert tc.scheduler._time_attr == "env_steps" and tc.scheduler._max_t == ASHA_MAX_T
    space = _param_space(spec)
    assert space["seed"] == 0 and isinstance(space["set"]["agent.actor_lr"], tune.search.sample.Float)
    grid = _param_space(load_sweep(REPO / "sweeps" / "crazyflie-quarter-turns.toml"))
    assert grid["config"] == {"grid_search": ["quarter-turns", "no-quarter-turns"]}
    assert grid["seed"] == {"grid_search": [0, 1, 2, 3, 4, 5]}


def test_an_address_where_no_ray_answers_is_refused_within_its_timeout(tmp_path):
    from train.sweep import run_sweep

    spec = _parse('name = "x"\nseeds = [0]\n' + TINY_TRAIN)
    t0 = time.monotonic()
    with pytest.raises(QuadhilError, match=r"no Ray cluster answers at 127\.0\.0\.1:\d+ within"):
        run_sweep(spec, tmp_path / "out", address=f"127.0.0.1:{_free_port()}")
    assert time.monotonic() - t0 < 12.0
    assert not (tmp_path / "out" / "sweep.json").exists()


ZOMBIE = ("Initialization failure from server:\n ... psutil.ZombieProcess: PID still exists but it's a "
          "zombie (pid=8413)")  # as a loaded 2-core machine printed it, 2026-12-06


@needs_ray
@pytest.mark.parametrize("message", ["Initialization failure from server: Starting Ray client server failed.", ZOMBIE])
@pytest.mark.parametrize("failures, joined", [(2, True), (3, False)])
def test_a_ray_client_server_that_dies_at_start_is_asked_again_up_to_three_times(monkeypatch, message, failures, joined):
    """A Ray Client connection whose per-client server process died at start (Ray's proxier
    answers "Starting Ray client server failed", or "Initialization failure" when the server
    became a zombie before it answered) connects again; a third failure is a QuadhilError naming
    the address."""
    import ray

    from train import sweep

    calls = []

    def init(**kw):
        calls.append(kw["address"])
        if len(calls) <= failures:
            raise ConnectionAbortedError(message)

    monkeypatch.setattr(sweep, "check_reachable", lambda address: None)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr(sweep.time, "sleep", lambda s: None)
    address = "ray://127.0.0.1:10001"
    if joined:
        sweep.start_ray(address)
    else:
        with pytest.raises(QuadhilError, match=r"cannot start or join Ray at ray://127\.0\.0\.1:10001"):
            sweep.start_ray(address)
    assert calls == [address] * min(failures + 1, sweep.CLIENT_CONNECT_TRIES)


@needs_ray
def test_a_local_ray_that_fails_to_start_is_not_asked_again(monkeypatch):
    import ray

    from train import sweep

    calls = []

    def init(**kw):
        calls.append(kw.get("address"))
        raise ConnectionError("Initialization failure from server")

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    with pytest.raises(QuadhilError):
        sweep.start_ray(None)
    assert len(calls) == 1


# --- the statistic -----------------------------------------------------------------------------


def _outcome(config, seed, success, tts=None, status="done"):
    return TrialOutcome(configuration=config, seed=seed, status=status, run_dir="-",
                        fresh_success=success if status == "done" else None, fresh_rmse_m=0.03,
                        time_to_target_s=tts, steps_to_target=None if tts is None else int(tts * 1000))


def test_the_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = [0.90, 0.97, 0.99, 1.0, 0.95]
    lo, hi = bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) == (lo, hi)
    assert lo < np.mean(values) < hi and min(values) <= lo and hi <= max(values)
    assert bootstrap_ci([0.9]) is None  # one seed has no spread to resample
    narrow = bootstrap_ci([0.95] * 5)
    assert narrow == pytest.approx((0.95, 0.95))


def test_a_configuration_summary_counts_seeds_at_the_bar_and_their_times():
    outcomes = [_outcome("v4", 0, 1.0, 40.0), _outcome("v4", 1, 0.97, 250.0), _outcome("v4", 2, 0.80),
                _outcome("v3", 0, 0.9, 100.0), _outcome("v3", 1, 0.0, status="stopped"), _outcome("v3", 2, 0.93)]
    v4, v3 = summarize(outcomes)
    assert (v4.configuration, v4.seeds, v4.done) == ("v4", [0, 1, 2], 3)
    assert v4.success_mean == pytest.approx(0.9233333) and v4.success_ci[0] < v4.success_mean < v4.success_ci[1]
    assert (v4.reached, v4.reached_fraction) == (2, pytest.approx(2 / 3))
    assert (v4.time_to_bar_median_s, v4.time_to_bar_max_s) == (145.0, 250.0)
    assert (v3.done, v3.stopped, v3.reached) == (2, 1, 1) and v3.success_mean == pytest.approx(0.915)
    diffs = paired(outcomes, "v3")
    assert len(diffs) == 1 and diffs[0].seeds == [0, 2]  # seed 1 of the baseline never finished
    assert diffs[0].diff_per_seed == pytest.approx([0.1, -0.13])
    assert (diffs[0].reached, diffs[0].baseline_reached) == (2, 1)


def test_paired_differences_keep_grid_values_apart():
    outcomes = [_outcome(f"{c} train.batch_size={b}", s, v) for c, b, s, v in [
        ("a", 128, 0, 0.9), ("a", 128, 1, 0.8), ("a", 256, 0, 0.5), ("a", 256, 1, 0.6),
        ("b", 128, 0, 1.0), ("b", 128, 1, 0.9), ("b", 256, 0, 0.6), ("b", 256, 1, 0.6)]]
    d128, d256 = paired(outcomes, "a")
    assert d128.baseline == "a train.batch_size=128" and d128.diff_per_seed == pytest.approx([0.1, 0.1])
    assert d256.baseline == "a train.batch_size=256" and d256.diff_per_seed == pytest.approx([0.1, 0.0])


# --- real sweeps on Ray Tune ---------------------------------------------------------------------


@pytest.fixture
def ray_tmp():
    """A short folder for Ray's sessions (its socket paths must stay under 108 characters, which
    pytest's tmp_path can exceed), removed after the test."""
    path = tempfile.mkdtemp(prefix="qh-ray-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_pids(sid: int) -> list[int]:
    """Live processes of session ``sid`` (Linux /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid and open(f"/proc/{entry}/stat").read().split()[2] != "Z":
                    pids.append(int(entry))
            except (ProcessLookupError, PermissionError, FileNotFoundError):
                pass
    return pids


def _end_session(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """End ``proc`` and every process of the session it leads (it was started with
    start_new_session): SIGTERM, then SIGKILL after ``grace_s``. Ray's own shutdown drains for
    up to 30 s, longer than a test should wait."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and _session_pids(proc.pid):
            time.sleep(0.2)
        if not _session_pids(proc.pid):
            break
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _sweep(argv: list[str], cwd: Path, timeout_s: float = 240.0, env: dict | None = None) -> tuple[int, str, dict | None]:
    """Run ``quadhil sweep`` as a user would; its Ray processes are ended with it."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    proc = subprocess.Popen([*QUADHIL, "sweep", *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        out = ""
    finally:
        _end_session(proc)
    lines = [line for line in out.strip().splitlines() if line.strip()]
    payload = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    return proc.returncode, out, payload


def _check_run_directories(result: dict, max_steps: int = 320) -> None:
    for trial in result["trials"]:
        run = Path(trial["run_dir"])
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["kind"] == "quadhil-training-run" and cfg["seed"] == trial["seed"]
        assert cfg["result"]["eval"]["success_rate"] == trial["fresh_success"]
        assert cfg["result"]["env_steps"] == trial["env_steps"] == max_steps
        assert (run / "checkpoint" / "done").exists() and (run / "actor_best.keras").exists()
        assert any((run / "tb").iterdir())  # TensorBoard scalars, as quadhil train writes them
        log = (run / "stdout.log").read_text()
        assert "quadhil sweep trial: quadhil train" in log and "eval @ 160 steps" in log
        # one report to Tune per periodic evaluation (every 160 steps, and the last one again)
        steps = [h[1] for h in trial["history"]]
        assert steps[-2:] == [max_steps, max_steps] and steps == sorted(steps) and all(x % 160 == 0 for x in steps)


_LOOPBACK_HEX = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


def _listening_addresses(pids: list[int]) -> set[str]:
    """Hex local addresses (as /proc/net/tcp{,6} write them) of the TCP sockets that processes
    ``pids`` listen on."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            pass
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in open(table).read().splitlines()[1:]:
            cols = row.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                found.add(cols[1].split(":")[0])
    return found


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
@needs_ray
def test_a_two_seed_sweep_runs_both_trials_at_once_on_local_ray_and_resumes_after_ctrl_c(tmp_path, ray_tmp):
    steps = 1600  # long enough to interrupt after the first checkpoint (every 160 steps here)
    (tmp_path / "tiny.toml").write_text(
        'name = "tiny"\nseeds = [0, 1]\n' + TINY_TRAIN.replace("max-steps = 320", f"max-steps = {steps}")
        .replace("train.checkpoint_every_steps=100000", "train.checkpoint_every_steps=160"))
    out = tmp_path / "sweep"
    argv = ["tiny.toml", "--out", str(out), "--ray-temp-dir", ray_tmp, "--json"]
    runs = [out / "runs" / "base" / f"seed{s}" for s in (0, 1)]
    proc = subprocess.Popen([*QUADHIL, "sweep", *argv], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        # both trials hold a checkpoint at the same time: two trials at once on two cores
        _wait_for(lambda: all((r / "checkpoint" / "done").exists() for r in runs) or proc.poll() is not None,
                  180, "both trials' first checkpoint")
        assert proc.poll() is None, proc.communicate()[0][-4000:]
        # every server of the Ray this sweep started (GCS, raylet, workers, agents) on 127.0.0.1 only
        listening = _listening_addresses(_session_pids(proc.pid))
        assert listening and listening <= _LOOPBACK_HEX, listening
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        text, _ = proc.communicate(timeout=120)
    finally:
        _end_session(proc)
    assert proc.returncode == 130, text[-4000:]
    interrupted = json.loads(text.strip().splitlines()[-1])
    assert interrupted["unfinished"] >= 1 and "--resume" in text
    rc, text, result = _sweep([*argv, "--resume"], tmp_path)
    assert rc == 0, text[-4000:]
    assert result is not None and result["address"] == "local" and result["cpus_per_trial"] == 1.0
    assert [(t["seed"], t["status"]) for t in result["trials"]] == [(0, "done"), (1, "done")]
    _check_run_directories(result, max_steps=steps)
    # a trial cut short continued its own run directory from its checkpoint (quadhil train --resume)
    logs = [(r / "stdout.log").read_text() for r in runs]
    assert any(line.startswith("quadhil sweep trial: quadhil train") and line.endswith(" --resume")
               for log in logs for line in log.splitlines())
    (summary,) = result["configurations"]
    assert summary["configuration"] == "base" and summary["seeds"] == [0, 1] and summary["done"] == 2
    assert summary["success_mean"] == pytest.approx(np.mean([t["fresh_success"] for t in result["trials"]]))
    assert (out / "success_vs_time.png").stat().st_size > 10_000
    assert json.loads((out / "summary.json").read_text())["trials"] == result["trials"]
    assert "Trial status" in text  # Tune's own progress output
    # a sweep folder is never overwritten by a new sweep
    rc, text, _ = _sweep(["tiny.toml", "--out", str(out), "--ray-temp-dir", ray_tmp], tmp_path, timeout_s=60)
    assert rc == 2 and "already holds a sweep; use --resume" in text


def _client_server_logs(session: Path) -> str:
    """The head's Ray Client server logs, for the failure message: they say why a ray:// client
    could not start its server, and the temp dir is gone after the test."""
    parts = [f"\n--- {p.name}:\n" + p.read_text(errors="replace")[-1500:]
             for p in sorted((session / "logs").glob("ray_client_server*")) if p.stat().st_size]
    return "".join(parts) or "\n(no Ray Client server logs)"


@pytest.mark.slow
@needs_ray
def test_a_sweep_joins_a_ray_head_started_on_127_0_0_1_by_address(tmp_path, ray_tmp):
    """The cluster path with the real engine: `ray start --head` on a free loopback port (its own
    temp dir, its own session, ended by the test through the session's pids, never `ray stop`,
    which would end every Ray process of this user), and `quadhil sweep --address HOST:PORT`, then
    `--address ray://HOST:CLIENT_PORT`."""
    (tmp_path / "pair.toml").write_text('name = "pair"\nseeds = [0]\n' + TINY_TRAIN +
                                        '[configs.fast]\nset = ["agent.actor_lr=0.002"]\n[configs.slow]\n')
    port, client_port = _free_port(), _free_port()
    # Ray's token authentication, with a token of this test's own (not the user's ~/.ray/auth_token)
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(16).hex()}
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0", **auth)
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--port", str(port),
         "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--include-dashboard", "false",
         "--ray-client-server-port", str(client_port), "--object-store-memory", str(128 * 1024 * 1024),
         "--temp-dir", ray_tmp, "--disable-usage-stats"],
        env=env, stdout=open(tmp_path / "head.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert head.poll() is None, (tmp_path / "head.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the Ray head did not listen within 60 s"
                time.sleep(0.3)
        listening = _listening_addresses(_session_pids(head.pid))
        assert listening and listening <= _LOOPBACK_HEX, listening  # the head too, on 127.0.0.1 only
        out = tmp_path / "sweep"
        rc, text, result = _sweep(["pair.toml", "--out", str(out), "--address", f"127.0.0.1:{port}", "--json"],
                                  tmp_path, env=auth)
        assert rc == 0, text[-4000:]
        assert result["address"] == f"127.0.0.1:{port}"
        assert sorted((t["configuration"], t["status"]) for t in result["trials"]) == [("fast", "done"),
                                                                                      ("slow", "done")]
        _check_run_directories(result)
        (d,) = result["paired"]  # two presets over the same seed: slow - fast, seed by seed
        assert d["configuration"] == "slow" and d["baseline"] == "fast" and d["seeds"] == [0]
        by_name = {t["configuration"]: t["fresh_success"] for t in result["trials"]}
        assert d["diff_per_seed"] == pytest.approx([by_name["slow"] - by_name["fast"]])
        # the trials ran as workers of the head, not of a Ray this sweep started
        (session,) = [p for p in Path(ray_tmp).glob("session_2*") if p.is_dir()]
        assert list((session / "logs").glob("worker-*")), "no worker logs on the head"
        assert not [p for p in Path(ray_tmp).glob("session_2*") if p != session and p.is_dir()]
        # and through Ray Client (ray://), where the Tuner itself runs on the head (one trial)
        (tmp_path / "one.toml").write_text('name = "one"\nseeds = [1]\n' + TINY_TRAIN)
        rc, text, result = _sweep(["one.toml", "--out", str(tmp_path / "client"), "--address",
                                   f"ray://127.0.0.1:{client_port}", "--json"], tmp_path, env=auth)
        assert rc == 0, text[-3000:] + _client_server_logs(session)
        assert result["address"] == f"ray://127.0.0.1:{client_port}"
        assert [(t["seed"], t["status"]) for t in result["trials"]] == [(1, "done")]
        _check_run_directories(result)
    finally:
        _end_session(head)
    assert not _session_pids(head.pid)
