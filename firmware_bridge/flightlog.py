"""Flight logs: JSON lines, one object per line, appended and flushed as the flight goes.

Line 1 is the header (``"type": "header"``: model path and sha256, the policy spec, the link,
the vehicle, the configuration). Then one ``"tick"`` line per control tick, ``"transition"``
lines for every supervisor state change (with its reason), ``"failsafe"`` lines, and a final
``"summary"``. Each line is flushed to the OS when written, so a killed bridge loses at most the
line being written; a reader skips a torn last line.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim.errors import QuadhilError


class FlightLogError(QuadhilError):
    """A flight log is missing or unreadable."""


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


class FlightLogWriter:
    """Append-only JSON-lines writer; every record is flushed at once."""

    def __init__(self, path: Path, header: dict) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()  # the loop watchdog writes from its own thread
        self.header = {"type": "header", **header}
        self.mirrors: list = []  # objects with write(record) and close(): MCAP file, live view
        self.write(self.header)

    @classmethod
    def in_dir(cls, log_dir: str | Path, header: dict, stem: str = "flight") -> "FlightLogWriter":
        """A new log in ``log_dir`` named after the UTC start time."""
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S_%fZ")
        return cls(Path(log_dir) / f"{stem}-{stamp}-{os.getpid()}.jsonl", header)

    def write(self, record: dict, timeout_s: float | None = None) -> bool:
        """Write one record and flush it; False when it was not written (the log is closed, or
        another thread held it for ``timeout_s``: None waits)."""
        plain = _plain(record)
        if not self._lock.acquire(timeout=-1 if timeout_s is None else timeout_s):
            return False
        try:
            if self._f.closed:
                return False
            self._f.write(json.dumps(plain, allow_nan=True) + "\n")
            self._f.flush()
            for m in self.mirrors:
                m.write(plain)
            return True
        finally:
            self._lock.release()

    def add_mirror(self, mirror) -> None:
        """Also hand every later record (as plain JSON types) to ``mirror.write``; the header
        is the mirror's to write (``self.header``). Closed with this log."""
        self.mirrors.append(mirror)

    def close(self, timeout_s: float | None = None) -> bool:
        """Close the file and the mirrors (idempotent); False when another thread held the log for
        ``timeout_s`` (None waits): every record written so far is on disk either way."""
        if not self._lock.acquire(timeout=-1 if timeout_s is None else timeout_s):
            return False
        try:
            if not self._f.closed:
                self._f.close()
                for m in self.mirrors:
                    m.close()
            return True
        finally:
            self._lock.release()


@dataclass
class FlightLog:
    """A flight log read back: header, tick rows, transitions, failsafe records, summary."""

    path: Path
    header: dict
    ticks: list[dict] = field(default_factory=list)
    transitions: list[dict] = field(default_factory=list)
    failsafes: list[dict] = field(default_factory=list)
    summary: dict | None = None
    events: list[dict] = field(default_factory=list)  # link, reference, takeoff, ...
    torn_lines: int = 0

    @classmethod
    def read(cls, path: str | Path) -> "FlightLog":
        """Read a log, JSON lines or MCAP (``.mcap``: its /quadhil/log channel, see
        firmware_bridge.flightlog_mcap); a torn (half-written) last line or record is skipped and counted."""
        path = Path(path)
        if path.suffix == ".mcap":
            records, torn = cls._read_mcap(path)
        else:
            records, torn = cls._read_jsonl(path)
        if not records or records[0].get("type") != "header":
            raise FlightLogError(f"{path} is not a quadhil flight log (no header line)")
        log = cls(path, records[0], torn_lines=torn)
        for r in records[1:]:
            kind = r.get("type")
            if kind == "tick":
                log.ticks.append(r)
            elif kind == "transition":
                log.transitions.append(r)
            elif kind == "failsafe":
                log.failsafes.append(r)
            elif kind == "summary":
                log.summary = r
            else:
                log.events.append(r)
        return log

    @staticmethod
    def _read_jsonl(path: Path) -> tuple[list[dict], int]:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise FlightLogError(f"flight log {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise FlightLogError(f"cannot read flight log {path}: {exc}") from None
        records, torn = [], 0
        for line in lines:
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                torn += 1
        return records, torn

    @staticmethod
    def _read_mcap(path: Path) -> tuple[list[dict], int]:
        from firmware_bridge.flightlog_mcap import read_records

        if not path.exists():
            raise FlightLogError(f"flight log {path} does not exist")
        try:
            records, torn, _ = read_records(path)
        except (ValueError, OSError) as exc:
            raise FlightLogError(f"cannot read flight log {path}: {exc}") from None
        return records, torn

    @property
    def t_takeoff(self) -> float:
        """Bridge time (s, as in transitions) at which tick time 0 starts."""
        return next((e["t"] for e in self.events if e.get("type") == "takeoff"), 0.0)

    def column(self, name: str) -> np.ndarray:
        """Tick field ``name`` stacked into an array (missing values -> NaN)."""
        vals = [t.get(name) for t in self.ticks]
        if not vals:
            return np.zeros((0,))
        width = next((len(v) for v in vals if isinstance(v, list)), None)
        if width is None:
            return np.array([math.nan if v is None else v for v in vals], dtype=np.float64)
        return np.array([v if isinstance(v, list) and len(v) == width else [math.nan] * width for v in vals],
                        dtype=np.float64)
