"""A fixed-rate tick schedule on the monotonic clock.

Tick k is released at ``t0 + k * period`` and must have sent its command before
``t0 + (k + 1) * period`` (its deadline). A late tick does not shift later ones (no drift):
if the loop falls more than a whole period behind, the skipped ticks are counted as missed.
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

    def advance(self, now_s: float | None = None) -> None:
        """Move to the next tick; skip (and count) ticks whose deadline has already passed."""
        self.k += 1
        now = time.monotonic() if now_s is None else now_s
        behind = int((now - self.deadline()) // self.period_s) + 1 if now > self.deadline() else 0
        if behind > 0:
            self.k += behind
            self.skipped += behind
