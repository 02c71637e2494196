"""Shared pieces of the bridge's end-to-end tests: policies, twins, and running ``quadhil fly``.

Policies: ``policies/<name>/`` holds either an exported ``*.tflite`` (used as is) or a training
run (``config.json`` + ``actor_best.keras``), exported once per test session into a temporary
directory with ``quadhil export``. ``QUADHIL_BRIDGE_CF_POLICY`` / ``QUADHIL_BRIDGE_PX4_POLICY``
name a .tflite to use instead.

Every process started here (twins, bridges) is ended by pid, even when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from sim.sitl import processes

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30.0


def _export(run_dir: Path, out: Path) -> Path:
    cmd = [sys.executable, "-m", "quadhil", "export", str(run_dir), "--out", str(out), "--parity-obs", "500",
           "--episodes", "20"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"export of {run_dir} failed: {proc.stderr[-2000:]}")
    return out


def find_policy(name: str, env: str, tmp_factory) -> Path | None:
    """A .tflite for ``policies/<name>`` (see the module docstring), or None."""
    if os.environ.get(env):
        return Path(os.environ[env])
    d = REPO / "policies" / name
    tflites = sorted(d.glob("*.tflite")) if d.is_dir() else []
    if tflites:
        return tflites[0]
    if (d / "config.json").exists() and (d / "actor_best.keras").exists():
        return _export(d, tmp_factory.mktemp(name) / f"{name}.tflite")
    return None


def untrained_policy(vehicle: str, tmp_factory, *train_args: str) -> Path:
    """A real exported policy whose actor never learned anything (a few hundred env steps, no
    updates, no teacher start): for tests whose outcome does not depend on how well it flies (refusals,
    dry run). ``train_args``: more ``quadhil train`` arguments (e.g. an observation layout)."""
    d = tmp_factory.mktemp(f"untrained-{vehicle}")
    proc = subprocess.run([sys.executable, "-m", "quadhil", "train", "--vehicle", vehicle, "--out", str(d / "run"),
                           "--max-steps", "200", "--no-progress",
                           "--set", "train.teacher_steps=0", *train_args], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"quadhil train failed: {proc.stderr[-2000:]}")
    return _export(d / "run", d / "policy.tflite")


def _trained(name: str, env: str, tmp_factory) -> Path:
    p = find_policy(name, env, tmp_factory)
    if p is None:
        pytest.skip(f"no trained policy in policies/{name} (neither a .tflite nor a training run): "
                    "this test needs one that flies")
    return p


@pytest.fixture(scope="session")
def cf_policy(tmp_path_factory) -> Path:
    """The committed Crazyflie hover policy as .tflite (tests that need it to fly well)."""
    return _trained("crazyflie-hover", "QUADHIL_BRIDGE_CF_POLICY", tmp_path_factory)


@pytest.fixture(scope="session")
def px4_policy(tmp_path_factory) -> Path:
    """The committed x500 hover policy as .tflite (tests that need it to fly well)."""
    return _trained("x500-hover", "QUADHIL_BRIDGE_PX4_POLICY", tmp_path_factory)


@pytest.fixture(scope="session")
def any_cf_policy(tmp_path_factory) -> Path:
    """The committed Crazyflie policy, else an untrained one (refusals, dry runs)."""
    return (find_policy("crazyflie-hover", "QUADHIL_BRIDGE_CF_POLICY", tmp_path_factory)
            or untrained_policy("crazyflie", tmp_path_factory))


@pytest.fixture(scope="session")
def any_px4_policy(tmp_path_factory) -> Path:
    """The committed x500 policy, else an untrained one (refusals)."""
    return (find_policy("x500-hover", "QUADHIL_BRIDGE_PX4_POLICY", tmp_path_factory)
            or untrained_policy("x500", tmp_path_factory))


@contextlib.contextmanager
def ready_process(cmd: list[str], timeout_s: float = READY_TIMEOUT_S) -> Iterator[subprocess.Popen]:
    """Start ``cmd``, wait for its ``ready URI`` line (``.uri`` is set), end it by pid afterwards."""
    with tempfile.TemporaryFile() as err, processes.ready_process(cmd, timeout_s, stderr=err, cwd=str(REPO)) as proc:
        yield proc


stop = processes.stop_process  # terminate, then kill after 5 s; by pid, idempotent


# Twins and bridges run at real-time priority where the machine allows it (as root in CI): the
# tests share 2 cores with everything else, and a twin that misses its 1 kHz ticks or a bridge
# that stalls makes telemetry stale, which the supervisor rightly answers with a failsafe.


def fault_twin(*args: str):
    """The Crazyflie twin with faults injected (tests/firmware_bridge/fault_twin.py)."""
    return ready_process([sys.executable, "-m", "tests.firmware_bridge.fault_twin", "--realtime", *args])


def crazyflie_twin(*args: str):
    """The plain Crazyflie twin (``quadhil sitl crazyflie --port 0 --realtime``)."""
    from tests.sitl.conftest import start_crazyflie_twin

    return start_crazyflie_twin(0, *args)


def fly_cmd(model: Path, uri: str, log_dir: Path, *extra: str) -> list[str]:
    """``quadhil fly`` as a user types it, armed, JSON summary, no live status."""
    return [sys.executable, "-m", "quadhil", "fly", "--model", str(model), "--link", uri, "--log", str(log_dir),
            "--arm", "--json", "--quiet", "--realtime", "--connect-timeout", "10", *extra]


def run_fly(cmd: list[str], timeout_s: float = 60.0) -> tuple[int, dict | None, str]:
    """Run a bridge to completion; (exit status, the last-line JSON or None, stderr)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        stop(proc)
    return proc.returncode, last_json(out), err


def last_json(stdout: str) -> dict | None:
    """The JSON object on the last non-empty line of ``stdout``, if any."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    if not lines:
        return None
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        return None


def _boost(pid: int) -> None:
    """Real-time priority for a twin that has no flag for it (best effort)."""
    try:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(10))
    except (AttributeError, PermissionError, OSError):
        pass


@contextlib.contextmanager
def px4_twin(*args: str, timeout_s: float = READY_TIMEOUT_S) -> Iterator[subprocess.Popen]:
    """``quadhil sitl px4`` on free ports (onboard link only); ``.uri`` is the bridge's
    ``udpin:`` link. Ended by pid afterwards."""
    cmd = processes.twin_command("px4", "--port", str(processes.free_port()), "--listen-port", str(processes.free_port()),
                                 "--no-gcs", *args)
    with ready_process(cmd, timeout_s) as proc:
        _boost(proc.pid)
        yield proc
