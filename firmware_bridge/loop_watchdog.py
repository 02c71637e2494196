"""A watchdog on the bridge's own control loop.

The supervisor's checks (stale telemetry, missed deadlines, link lost) run inside the loop, so a
loop that stops turning checks nothing: a client library wedged on a lock (cflib 0.1.34 deadlocked
its sending thread on a link error: firmware_bridge.links.crazyflie.bound_ping_thread_stop), a
blocking serial write to a radio that stopped reading, a stuck driver call. The vehicle's own
failsafe then acts (the Crazyflie's commander levels after 500 ms without setpoints and stops
the motors after 2 s: crazyflie-firmware src/modules/interface/commander.h COMMANDER_WDT_TIMEOUT_*;
PX4 leaves offboard after COM_OF_LOSS_T), but the bridge would say nothing and never return.

:class:`LoopWatchdog` runs beside the loop in a daemon thread; the loop calls :meth:`kick` every
tick. When no kick came for ``timeout_s`` it calls ``on_stall`` once, from its own thread, with a
:class:`LoopStall` naming where the loop's thread is stuck (its innermost frames).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

STALL_TIMEOUT_S = 2.0  # the Crazyflie firmware's own shutdown timeout; far above a host stall (~0.2 s)
WHERE_FRAMES = 4  # innermost frames of the stuck thread kept in the report
EXIT_STALLED = 4  # quadhil fly's exit status when its control loop stalled
STALL_LOG_WAIT_S = 0.5  # how long a stall report waits for a log another thread holds
_exit_process = os._exit  # no unwinding: the loop's thread is wedged (a test replaces this)


@dataclass
class LoopStall:
    """The loop made no progress for ``stalled_s`` seconds (measured at ``t_detect_s``, monotonic
    clock); ``where`` holds its thread's innermost frames, innermost last ("file:line in func")."""

    stalled_s: float
    t_detect_s: float
    where: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line for a failsafe reason or an error message."""
        at = f" in {self.where[-1]}" if self.where else ""
        return f"control loop stalled for {self.stalled_s:.1f} s{at}"


def check_stall_timeout(timeout_s: float) -> None:
    """ValueError naming the value unless ``timeout_s`` is a positive, finite number of seconds."""
    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise ValueError(f"stall timeout must be > 0 s, got {timeout_s}")


def report_stall(log, t_s: float, stall: LoopStall, exit_summary: dict | None = None, on_exit=None,
                 message: str = "", summary_record: dict | None = None) -> None:
    """From the watchdog's thread: a ``stall`` record in ``log`` (a FlightLogWriter, or None) at once,
    ``t_s`` on the log's clock. With ``exit_summary`` the process then ends: ``summary_record``
    (default ``exit_summary``) as the log's summary, the log closed, ``on_exit(exit_summary)``,
    ``message`` on stderr, and EXIT_STALLED. Every wait for the log is bounded by STALL_LOG_WAIT_S:
    the wedged thread may hold it."""
    if log is not None:
        log.write({"type": "stall", "t": t_s, "stalled_s": stall.stalled_s, "where": stall.where},
                  timeout_s=STALL_LOG_WAIT_S)
    if exit_summary is None:
        return
    if log is not None:
        log.write({"type": "summary", **(exit_summary if summary_record is None else summary_record)},
                  timeout_s=STALL_LOG_WAIT_S)
        log.close(timeout_s=STALL_LOG_WAIT_S)
    if on_exit is not None:
        on_exit(exit_summary)
    print(message, file=sys.stderr, flush=True)
    _exit_process(EXIT_STALLED)


def thread_frames(ident: int | None, keep: int = WHERE_FRAMES) -> list[str]:
    """The innermost ``keep`` frames of the thread ``ident`` ("file:line in func"), innermost
    last; empty when the thread is gone."""
    frame = sys._current_frames().get(ident) if ident is not None else None
    if frame is None:
        return []
    return [f"{fs.filename}:{fs.lineno} in {fs.name}" for fs in traceback.extract_stack(frame)[-keep:]]


class LoopWatchdog:
    """Calls ``on_stall(LoopStall)`` once when :meth:`kick` was not called for ``timeout_s``.

    Use as a context manager around the loop, from the loop's thread (the one it reports on). A
    call that legitimately waits for long (a vehicle's own landing) kicks it from inside its wait.
    """

    def __init__(self, timeout_s: float, on_stall: Callable[[LoopStall], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        check_stall_timeout(timeout_s)
        self.timeout_s = float(timeout_s)
        self.on_stall = on_stall
        self.clock = clock
        self.stall: LoopStall | None = None
        self._last_kick = clock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._loop_ident: int | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "LoopWatchdog":
        self._loop_ident = threading.get_ident()
        self.kick()
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)

    def kick(self) -> None:
        """The loop made progress (call once per tick)."""
        with self._lock:
            self._last_kick = self.clock()

    def _watch(self) -> None:
        period_s = min(0.1, self.timeout_s / 4.0)
        while not self._stop.wait(period_s):
            with self._lock:
                now = self.clock()
                stalled_s = now - self._last_kick
                fire = self.stall is None and stalled_s > self.timeout_s
                if fire:
                    self.stall = LoopStall(stalled_s, now, thread_frames(self._loop_ident))
            if fire:
                self.on_stall(self.stall)
                return
