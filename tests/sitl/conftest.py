"""Helpers to run Crazyflie twins as real processes and to connect the real cflib to them.

``start_crazyflie_twin`` starts ``quadhil sitl crazyflie --port 0`` (the twin binds a free port
itself, so parallel test runs never collide), waits for its ``ready udp://...`` line and always
ends the process by pid (terminate, then kill). ``connect_cflib`` opens a SyncCrazyflie with a
deadline: cflib's open_link waits forever on a silent server.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
import time
from typing import Iterator

import pytest

from sim.sitl.processes import raise_priority, ready_process, twin_command

READY_TIMEOUT_S = 30.0


@contextlib.contextmanager
def serving(server, realtime: bool = False) -> Iterator:
    """Run ``server.serve()`` (a twin's 1 kHz loop) in a daemon thread for the block; then stop
    the loop, join the thread (5 s) and close the server, also when the block fails.

    ``realtime``: that thread alone takes the priority the twin's own ``--realtime`` asks for
    (SCHED_FIFO 10, else nice -10; on Linux ``sched_setscheduler(0, ...)`` sets the calling thread
    only). Ask for it where a bridge process started with ``--realtime`` flies against the twin:
    served at normal priority beside such flights, a twin's telemetry went 111 ms stale in a
    fresh-clone CI run (2026-12-06; the bridge's limit is 100 ms). Leave it off where the client is
    in this process (cflib, a scripted firmware peer): at normal priority behind a FIFO server
    thread and the GIL, their threads fell behind (the CrazySim IMU-rate check failed 3 of 6 runs
    beside a busy process, 0 of 6 without it).
    """

    def serve_at_priority() -> None:
        if realtime:
            raise_priority()
        server.serve()

    thread = threading.Thread(target=serve_at_priority, daemon=True, name="twin-serve")
    thread.start()
    try:
        yield server
    finally:
        server.stop_event.set()
        thread.join(timeout=5)
        server.close()


@contextlib.contextmanager
def start_crazyflie_twin(port: int = 0, *args: str, timeout_s: float = READY_TIMEOUT_S) -> Iterator[subprocess.Popen]:
    """Run one twin process; yields the Popen with ``.uri`` and ``.port`` set once it is ready.

    ``port`` 0 lets the twin pick a free port. Extra ``args`` go to ``quadhil sitl crazyflie``.
    The twin always runs ``--realtime``: its 1 kHz loop, in a process of its own, must not wait
    behind the CPU-bound tests or a bridge at real-time priority.
    The process is ended by pid on the way out, also when the test fails.
    """
    cmd = twin_command("crazyflie", "--port", str(port), "--realtime", *args)
    with tempfile.TemporaryFile() as err, ready_process(cmd, timeout_s, stderr=err) as proc:
        proc.port = int(proc.uri.rsplit(":", 1)[1])  # type: ignore[attr-defined]
        yield proc


def connect_cflib(uri: str, rw_cache: str | None = None, timeout_s: float = 5.0):
    """A fully connected ``SyncCrazyflie`` on ``uri`` (TOCs fetched and every parameter value
    read: cflib's ``fully_connected``) or AssertionError after ``timeout_s``.

    The caller closes it (``scf.close_link()``).
    """
    import cflib.crtp
    from cflib.crazyflie import Crazyflie
    from cflib.crazyflie.syncCrazyflie import SyncCrazyflie

    cflib.crtp.init_drivers()
    cf = Crazyflie(rw_cache=rw_cache)
    fully_connected = threading.Event()
    cf.fully_connected.add_callback(lambda _uri: fully_connected.set())
    scf = SyncCrazyflie(uri, cf=cf)
    errors: list[BaseException] = []
    deadline = time.monotonic() + timeout_s

    def _open() -> None:
        try:
            scf.open_link()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=_open, daemon=True)
    t.start()
    t.join(timeout_s)
    fully_connected.wait(max(deadline - time.monotonic(), 0.0))
    if t.is_alive() or errors or not scf.is_link_open() or not fully_connected.is_set():
        with contextlib.suppress(Exception):
            scf.close_link()
        raise AssertionError(f"cflib did not connect to {uri} within {timeout_s} s: {errors}")
    return scf


@pytest.fixture
def crazyflie_twin() -> Iterator[subprocess.Popen]:
    """A fresh twin process on a free port, ended after the test."""
    with start_crazyflie_twin() as proc:
        yield proc
