"""Serve one twin over UDP in real time: 1 kHz physics against a monotonic clock.

One thread does everything, like the firmware's single radio link: it sleeps in ``select``
until the next physics tick is due or a datagram arrives, runs every due tick, handles the
datagrams, and sends replies to the address the last datagram came from (cflib's udp driver
connects its socket, so that is the client). Each datagram is one CRTP packet
(cflib/crtp/udpdriver.py); there is no handshake and no resending.

A tick counts as late when it starts more than 1 ms after its scheduled time. Late ticks are
run as a catch-up burst, so twin time keeps pace with wall time (log timers, watchdogs) on a
busy machine; only after a stall longer than 1 s (a suspended process) does the schedule
restart from now, the skipped ticks counted as late.
"""

from __future__ import annotations

import collections
import gc
import select
import socket
import threading
import sys
import time
import traceback
from dataclasses import dataclass

from sim.sitl.crazyflie.twin import PHYSICS_RATE_HZ, CrazyflieTwin

LATE_THRESHOLD_S = 1e-3
MAX_STALL_S = 1.0
MAX_DATAGRAMS_PER_WAKE = 256


@dataclass
class ServerStats:
    """Real-time quality and traffic counters."""

    ticks: int = 0
    late_ticks: int = 0
    skipped_ticks: int = 0
    max_lateness_s: float = 0.0
    datagrams_in: int = 0
    datagrams_out: int = 0
    send_errors: int = 0

    @property
    def late_tick_fraction(self) -> float:
        """Late (or skipped) ticks over all scheduled ticks."""
        total = self.ticks + self.skipped_ticks
        return (self.late_ticks + self.skipped_ticks) / total if total else 0.0


class CrazyflieServer:
    """A twin bound to a UDP socket. ``port`` 0 picks a free port (see ``self.port``)."""

    def __init__(self, twin: CrazyflieTwin, host: str = "127.0.0.1", port: int = 19850,
                 latency_ms: float = 0.0):
        self.twin = twin
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.setblocking(False)
        self.host, self.port = self.sock.getsockname()[:2]
        self.latency_s = max(float(latency_ms), 0.0) / 1000.0
        self.peer: tuple[str, int] | None = None
        self.stats = ServerStats()
        self._inbox: collections.deque[tuple[float, bytes, tuple]] = collections.deque()
        self._outq: collections.deque[tuple[float, bytes]] = collections.deque()
        self.stop_event = threading.Event()

    @property
    def uri(self) -> str:
        """The cflib URI of this twin."""
        return f"udp://{self.host}:{self.port}"

    def close(self) -> None:
        """Release the socket."""
        self.sock.close()

    def serve(self, duration_s: float | None = None) -> ServerStats:
        """Run until ``stop_event`` is set (or ``duration_s`` of wall time has passed)."""
        dt = 1.0 / PHYSICS_RATE_HZ
        clock = time.monotonic
        # Everything allocated so far (numpy, numba, the twin) lives for the whole run: keep it
        # out of the cyclic collector so a full collection cannot pause the 1 kHz loop.
        gc.collect()
        gc.freeze()
        start = clock()
        next_tick = start
        twin, stats = self.twin, self.stats
        while not self.stop_event.is_set():
            now = clock()
            if duration_s is not None and now - start >= duration_s:
                break
            if now - next_tick > MAX_STALL_S:
                skipped = int((now - next_tick) / dt)
                stats.skipped_ticks += skipped
                next_tick += skipped * dt
            while next_tick <= now:
                lateness = clock() - next_tick
                if lateness > LATE_THRESHOLD_S:
                    stats.late_ticks += 1
                if lateness > stats.max_lateness_s:
                    stats.max_lateness_s = lateness
                twin.tick()
                stats.ticks += 1
                next_tick += dt
            twin.late_ticks = stats.late_ticks + stats.skipped_ticks
            self._release_inbox(clock())
            self._flush(clock())
            wake = next_tick
            if self._inbox:
                wake = min(wake, self._inbox[0][0])
            if self._outq:
                wake = min(wake, self._outq[0][0])
            timeout = wake - clock()
            if timeout > 0:
                readable, _, _ = select.select([self.sock], [], [], timeout)
            else:
                readable = [self.sock]
            if readable:
                self._receive(clock())
        return stats

    def _receive(self, now: float) -> None:
        for _ in range(MAX_DATAGRAMS_PER_WAKE):
            try:
                data, addr = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP port unreachable reported on the socket: keep serving
                self.stats.send_errors += 1
                continue
            self.stats.datagrams_in += 1
            self._inbox.append((now + self.latency_s, data, addr))
        self._release_inbox(now)

    def _release_inbox(self, now: float) -> None:
        while self._inbox and self._inbox[0][0] <= now:
            _, data, addr = self._inbox.popleft()
            self.peer = addr
            try:
                self.twin.handle_datagram(data)
            except Exception:  # noqa: BLE001 - a bad packet must never stop the twin
                self.twin.counters["internal_error"] += 1
                if self.twin.counters["internal_error"] <= 3:
                    traceback.print_exc(file=sys.stderr)
        self._flush(now)

    def _flush(self, now: float) -> None:
        twin = self.twin
        if twin.outbox:
            due = now + self.latency_s
            self._outq.extend((due, d) for d in twin.outbox)
            twin.outbox.clear()
        while self._outq and self._outq[0][0] <= now:
            _, data = self._outq.popleft()
            if self.peer is None:
                continue  # nobody to talk to yet
            try:
                self.sock.sendto(data, self.peer)
                self.stats.datagrams_out += 1
            except OSError:
                self.stats.send_errors += 1
