"""A fixed-rate tick schedule on the monotonic clock, phase-locked to telemetry.

Tick k is released at ``t0 + k * period`` and must have sent its command before
``t0 + (k + 1) * period`` (its deadline). A late tick does not shift later ones (no drift):
if the loop falls more than a whole period behind, the skipped ticks are counted as missed.

The vehicle streams state at the same rate on its own clock. If a sample arrived just before a
release, it would wait almost a period for its tick; so :meth:`Scheduler.lock_phase` nudges
``t0`` (a first-order phase-locked loop, at most 5 % of a period per tick) until samples arrive
a little after each release. The rate never changes, only the phase.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Scheduler:
    """Release times and deadlines of a periodic loop."""

    period_s: float
    t0_s: float = 0.0
    k: int = 0
    skipped: int = 0

    @classmethod
    def start(cls, rate_hz: float, t0_s: float | None = None) -> "Scheduler":
        """A schedule at ``rate_hz`` whose tick 0 is released now (or at ``t0_s``)."""
        if not rate_hz > 0:
            raise ValueError(f"rate must be > 0 Hz, got {rate_hz}")
        return cls(1.0 / rate_hz, time.monotonic() if t0_s is None else t0_s)

    def release(self) -> float:
        """Release time of the current tick (monotonic s)."""
        return self.t0_s + self.k * self.period_s

    def deadline(self) -> float:
        """Deadline of the current tick (monotonic s)."""
        return self.release() + self.period_s

    def wait_release(self) -> float:
        """Sleep until the current tick's release; return the time now."""
        now = time.monotonic()
        delay = self.release() - now
        if delay > 0:
            time.sleep(delay)
            now = time.monotonic()
        return now

    def lock_phase(self, arrival_s: float, offset_frac: float = 0.1, gain: float = 0.2) -> None:
        """Move the grid so that releases fall ``offset_frac`` of a period before the sample
        arrivals (``arrival_s``, monotonic s, of a sample this tick consumed)."""
        p = self.period_s
        err = (arrival_s - self.release()) - offset_frac * p
        err = (err + 0.5 * p) % p - 0.5 * p  # the nearest release
        step = max(-0.05 * p, min(0.05 * p, gain * err))
        self.t0_s += step

    def advance(self, now_s: float | None = None) -> None:
        """Move to the next tick; skip (and count) ticks whose deadline has already passed."""
        self.k += 1
        now = time.monotonic() if now_s is None else now_s
        behind = int((now - self.deadline()) // self.period_s) + 1 if now > self.deadline() else 0
        if behind > 0:
            self.k += behind
            self.skipped += behind
