"""Scheduling priority for the bridge on a busy companion computer.

The loop sleeps most of each period, so a FIFO real-time priority cannot starve the system but
keeps other processes from delaying a tick. Threads started afterwards (cflib's, pymavlink's
receive thread) inherit it, so call this before connecting.
"""

from __future__ import annotations

import os

FIFO_PRIORITY = 5  # below the twins' 10: on a shared test machine the vehicle side goes first


def raise_priority() -> str:
    """Try SCHED_FIFO, then nice -5; return what was obtained ('fifo', 'nice' or 'none')."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(FIFO_PRIORITY))
        return "fifo"
    except (AttributeError, PermissionError, OSError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -5)
        return "nice"
    except (AttributeError, PermissionError, OSError):
        return "none"
