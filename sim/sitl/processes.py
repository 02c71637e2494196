"""Twins (and bridges) as child processes: start, wait for ``ready URI``, end by pid.

Every twin prints ``ready URI`` on stdout (flushed) once it serves: the URI a client opens
(``udp://127.0.0.1:19850`` for the Crazyflie twin, ``udpin:127.0.0.1:14540`` for the PX4 twin).
Benchmarks, the demo and the tests all start twins through :func:`ready_process`, so each waits
with a deadline and always ends the process by pid, whatever happens.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import IO, Iterator

READY_PREFIX = "ready "


def stop_process(proc: subprocess.Popen, timeout_s: float = 5.0) -> None:
    """SIGTERM by pid, SIGKILL after ``timeout_s``; idempotent."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)


def _stderr_tail(stderr: IO | None) -> str:
    if stderr is None or not hasattr(stderr, "seek"):
        return ""
    stderr.seek(0)
    data = stderr.read()
    return (data.decode(errors="replace") if isinstance(data, bytes) else data)[-2000:]


def wait_ready(proc: subprocess.Popen, timeout_s: float, stderr: IO | None = None) -> str:
    """Read ``proc``'s stdout until its ``ready URI`` line; return the URI.

    Raises RuntimeError (with the tail of ``stderr`` if it is a seekable file) if the process
    exits first or ``timeout_s`` passes.
    """
    assert proc.stdout is not None
    # Raw reads of the pipe, not readline(): a buffered reader may pull the ready line into its
    # buffer together with an earlier one, after which select() never fires for it again.
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    pending = b""
    try:
        while True:
            *lines, pending = pending.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                if text.startswith(READY_PREFIX):
                    return text.split()[1].strip()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or proc.poll() is not None:
                why = f"exited with {proc.returncode}" if proc.poll() is not None else f"not ready within {timeout_s} s"
                raise RuntimeError(f"{' '.join(proc.args[1:6])} {why}: {_stderr_tail(stderr)}")
            if sel.select(remaining):
                pending += os.read(fd, 65536)
    finally:
        sel.close()


@contextmanager
def ready_process(cmd: list[str], timeout_s: float = 30.0, stderr: IO | None = None,
                  cwd: str | None = None) -> Iterator[subprocess.Popen]:
    """Run ``cmd``; yield its Popen with ``.uri`` set once it printed ``ready URI``; stop it by pid
    on the way out (also when the body raises)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr if stderr is not None else subprocess.DEVNULL,
                            text=True, bufsize=1, cwd=cwd)
    try:
        proc.uri = wait_ready(proc, timeout_s, stderr)  # type: ignore[attr-defined]
        yield proc
    finally:
        stop_process(proc)
        if proc.stdout:
            proc.stdout.close()


def twin_command(twin: str, *args: str) -> list[str]:
    """``python -m quadhil sitl TWIN ARGS`` with this interpreter."""
    return [sys.executable, "-m", "quadhil", "sitl", twin, *args]


def stop_on_signals(event: "threading.Event | None" = None) -> "threading.Event":
    """Make SIGTERM and SIGINT set ``event`` (a new one if None) instead of killing the process,
    so a twin's loop can finish its tick and close its sockets; returns the event."""
    import signal
    import threading

    event = event if event is not None else threading.Event()

    def _set(signum, frame):  # noqa: ARG001
        event.set()

    signal.signal(signal.SIGTERM, _set)
    signal.signal(signal.SIGINT, _set)
    return event


def free_port(kind: int | None = None) -> int:
    """A port on 127.0.0.1 that was free a moment ago (UDP unless ``kind`` is SOCK_STREAM)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind is None else kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cpu_s(pid: int) -> float | None:
    """CPU time (user + system, s) a process has used so far, from /proc; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_priority() -> None:
    """Real-time scheduling for a 1 kHz loop on a busy machine (SCHED_FIFO, else nice -10).

    The loops this serves sleep ~90 % of the time, so a FIFO priority cannot starve the system.
    Prints a warning when neither is permitted.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        return
    except (AttributeError, PermissionError, OSError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except (AttributeError, PermissionError, OSError):
        print("warning: --realtime: no permission to raise the scheduling priority", file=sys.stderr)
