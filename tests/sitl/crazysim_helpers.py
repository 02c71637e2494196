"""Helpers for the CrazySim physics-side tests: a server and scripted firmware peers in threads,
stopped on the way out, and a reader of ``quadhil sitl crazyflie-fw``'s start-up lines."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import threading
import time
from typing import Iterator

from sim.sitl.crazysim.peer import FirmwarePeer
from sim.sitl.crazysim.server import CrazySimServer, ServerConfig
from tests.sitl.conftest import serving


@contextlib.contextmanager
def running_server(instances: int = 1, **kwargs) -> Iterator[CrazySimServer]:
    """A physics server on free ports, serving in a thread until the block ends."""
    srv = CrazySimServer(ServerConfig(instances=instances, firmware_base_port=0, cflib_base_port=0, **kwargs))
    with serving(srv):
        yield srv


@contextlib.contextmanager
def connected_peer(port: int, **kwargs) -> Iterator[FirmwarePeer]:
    """A scripted firmware that shook hands with the server's firmware ``port``, running in a thread."""
    peer = FirmwarePeer("127.0.0.1", port, **kwargs)
    t = None
    try:
        assert peer.handshake(timeout_s=5.0), "the physics side did not answer the 0xF3 handshake"
        t = threading.Thread(target=peer.run, daemon=True)
        t.start()
        yield peer
    finally:
        peer.stop_event.set()
        if t is not None:
            t.join(5.0)
        peer.close()


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.01) -> None:
    """Poll ``predicate`` until true, or AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


def read_startup(proc: subprocess.Popen, timeout_s: float) -> tuple[list[dict], str]:
    """Read ``drone N firmware HOST:PORT cflib URI`` lines up to ``ready URI``; returns the drones
    and the ready URI, or AssertionError (with what was printed) if the process exits first."""
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout_s
    pending, lines = b"", []
    drones: list[dict] = []
    while True:
        *done, pending = pending.split(b"\n")
        for raw in done:
            line = raw.decode(errors="replace")
            lines.append(line)
            parts = line.split()
            if parts[:1] == ["drone"]:
                drones.append({"index": int(parts[1]), "firmware_port": int(parts[3].rsplit(":", 1)[1]),
                               "uri": parts[5]})
            elif parts[:1] == ["ready"]:
                return drones, parts[1]
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise AssertionError(f"no ready line (exit {proc.poll()}): {lines}")
        if select.select([fd], [], [], left)[0]:
            pending += os.read(fd, 4096)
