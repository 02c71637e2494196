"""Flight logs as MCAP (the ``mcap`` package), next to the JSON lines, for Foxglove.

Channels (JSON message encoding, ``jsonschema`` schemas; the ``foxglove.*`` names are Foxglove's
well-known schemas, so its 3D and plot panels open a flight with no conversion):

- ``/pose`` foxglove.PoseInFrame: the vehicle's state estimate (frame ``world``, ENU)
- ``/tf`` foxglove.FrameTransform: ``world`` -> ``base_link`` from the same estimate
- ``/target`` foxglove.PoseInFrame: the setpoint position the policy flew to
- ``/mocap`` foxglove.PoseInFrame: the external pose last sent to the vehicle (with ``--mocap``)
- ``/setpoint``, ``/command``, ``/supervisor``, ``/latency``: plain JSON (quadhil.* schemas)
- ``/quadhil/log``: every JSON-lines record unchanged, so ``quadhil plot`` reads an MCAP file
  into the same :class:`firmware_bridge.flightlog.FlightLog`.

Crash safety: the writer runs unchunked (``use_chunking=False``): each message record goes into
the data section as written and the file is flushed after each flight-log record, like the JSON
lines. A chunked writer keeps up to a chunk in memory and the summary is written at close, so a
bridge killed mid-flight would lose the chunk. A killed bridge leaves a file without footer or
summary: :func:`read_records` reads it with the ``mcap`` package's ``StreamReader`` (no seeking,
no summary needed) and stops at the torn last record.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

TOPIC_LOG = "/quadhil/log"
_VEC3 = {"type": "object", "properties": {k: {"type": "number"} for k in "xyz"}}
_QUAT = {"type": "object", "properties": {k: {"type": "number"} for k in "xyzw"}}
_TIME = {"type": "object", "properties": {"sec": {"type": "integer"}, "nsec": {"type": "integer"}}}
# Foxglove's well-known schemas in JSON Schema form (foxglove/schemas: PoseInFrame, FrameTransform)
SCHEMAS = {
    "foxglove.PoseInFrame": {
        "title": "foxglove.PoseInFrame", "type": "object",
        "properties": {"timestamp": _TIME, "frame_id": {"type": "string"},
                       "pose": {"type": "object", "properties": {"position": _VEC3, "orientation": _QUAT}}}},
    "foxglove.FrameTransform": {
        "title": "foxglove.FrameTransform", "type": "object",
        "properties": {"timestamp": _TIME, "parent_frame_id": {"type": "string"}, "child_frame_id": {"type": "string"},
                       "translation": _VEC3, "rotation": _QUAT}},
    "quadhil.Setpoint": {"title": "quadhil.Setpoint", "type": "object"},
    "quadhil.Command": {"title": "quadhil.Command", "type": "object"},
    "quadhil.Supervisor": {"title": "quadhil.Supervisor", "type": "object"},
    "quadhil.Latency": {"title": "quadhil.Latency", "type": "object"},
    "quadhil.LogRecord": {"title": "quadhil.LogRecord", "type": "object"},
}
TOPICS = {
    "/pose": "foxglove.PoseInFrame", "/tf": "foxglove.FrameTransform", "/target": "foxglove.PoseInFrame",
    "/mocap": "foxglove.PoseInFrame", "/setpoint": "quadhil.Setpoint", "/command": "quadhil.Command",
    "/supervisor": "quadhil.Supervisor", "/latency": "quadhil.Latency", TOPIC_LOG: "quadhil.LogRecord",
}


def _stamp(t_ns: int) -> dict:
    return {"sec": t_ns // 1_000_000_000, "nsec": t_ns % 1_000_000_000}


def _pose(stamp: dict, pos, quat_wxyz) -> dict:
    w, x, y, z = quat_wxyz if quat_wxyz is not None else (1.0, 0.0, 0.0, 0.0)
    return {"timestamp": stamp, "frame_id": "world",
            "pose": {"position": {"x": pos[0], "y": pos[1], "z": pos[2]}, "orientation": {"x": x, "y": y, "z": z, "w": w}}}


def messages_for(record: dict, t_ns: int) -> list[tuple[str, dict]]:
    """(topic, JSON message) pairs for one flight-log record (plain JSON types); ``t_ns`` is the
    wall-clock stamp. Ticks become pose, transform, target, setpoint, command and latency
    messages; transitions and failsafes supervisor messages; every record also goes whole to
    ``/quadhil/log``."""
    out: list[tuple[str, dict]] = []
    kind = record.get("type")
    stamp = _stamp(t_ns)
    if kind == "tick" and record.get("pos") is not None:
        pos, quat = record["pos"], record.get("quat")
        out.append(("/pose", _pose(stamp, pos, quat)))
        w, x, y, z = quat if quat is not None else (1.0, 0.0, 0.0, 0.0)
        out.append(("/tf", {"timestamp": stamp, "parent_frame_id": "world", "child_frame_id": "base_link",
                            "translation": {"x": pos[0], "y": pos[1], "z": pos[2]},
                            "rotation": {"x": x, "y": y, "z": z, "w": w}}))
        if record.get("target") is not None:
            out.append(("/target", _pose(stamp, record["target"], None)))
            out.append(("/setpoint", {"t": record["t"], "phase": record.get("phase"), "target_w": record["target"]}))
        if record.get("mocap_pos") is not None:
            out.append(("/mocap", _pose(stamp, record["mocap_pos"], record.get("mocap_quat"))))
        out.append(("/command", {"t": record["t"], "action": record.get("action"), "cmd": record.get("cmd")}))
        out.append(("/latency", {"t": record["t"], "latency_ms": record.get("latency_ms"),
                                 "state_age_ms": record.get("state_age_ms"), "infer_ms": record.get("infer_ms"),
                                 "send_ms": record.get("send_ms"), "deadline_met": record.get("deadline_met"),
                                 "mocap_age_ms": record.get("mocap_age_ms")}))
        out.append(("/supervisor", {"t": record["t"], "state": record.get("state"), "phase": record.get("phase")}))
    elif kind in ("transition", "failsafe", "summary"):
        out.append(("/supervisor", {k: v for k, v in record.items() if k != "obs"}))
    out.append((TOPIC_LOG, record))
    return out


class McapFlightLog:
    """An MCAP mirror of a :class:`firmware_bridge.flightlog.FlightLogWriter` (see the module
    docstring for channels and crash safety)."""

    def __init__(self, path: str | Path, header: dict) -> None:
        from mcap.writer import CompressionType, Writer

        self.path = Path(path)
        self._f = open(self.path, "wb")
        self._w = Writer(self._f, use_chunking=False, compression=CompressionType.NONE)
        self._w.start(profile="", library="quadhil")
        self._channels: dict[str, int] = {}
        schema_ids = {name: self._w.register_schema(name=name, encoding="jsonschema", data=json.dumps(s).encode())
                      for name, s in SCHEMAS.items()}
        for topic, schema in TOPICS.items():
            self._channels[topic] = self._w.register_channel(topic=topic, message_encoding="json",
                                                             schema_id=schema_ids[schema])
        self._seq = 0
        self._closed = False
        self._f.flush()
        self.write(header)

    def write(self, record: dict) -> None:
        """Write the record's messages and flush them to the OS."""
        if self._closed:
            return
        t_ns = time.time_ns()
        for topic, msg in messages_for(record, t_ns):
            self._seq += 1
            self._w.add_message(channel_id=self._channels[topic], log_time=t_ns, publish_time=t_ns,
                                data=json.dumps(msg, allow_nan=True).encode(), sequence=self._seq)
        self._f.flush()

    def close(self) -> None:
        """Write the summary and footer (a complete, indexed-by-summary file); idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._w.finish()
        finally:
            self._f.close()


def read_records(path: str | Path) -> tuple[list[dict], int, bool]:
    """The flight-log records of an MCAP flight log, in order: (records, torn records skipped
    (1 where the file ends mid-record or without its footer), complete: the file has its footer). Reads with the ``mcap`` package's StreamReader, which
    needs no summary, so the file of a killed bridge reads up to its torn last record."""
    from mcap.exceptions import McapError
    from mcap.records import Channel, Footer, Message
    from mcap.stream_reader import StreamReader

    channels: dict[int, str] = {}
    records: list[dict] = []
    torn, complete = 0, False
    with open(path, "rb") as f:
        try:
            for rec in StreamReader(f, skip_magic=False).records:
                if isinstance(rec, Channel):
                    channels[rec.id] = rec.topic
                elif isinstance(rec, Message) and channels.get(rec.channel_id) == TOPIC_LOG:
                    try:
                        records.append(json.loads(rec.data))
                    except ValueError:
                        torn += 1
                elif isinstance(rec, Footer):
                    complete = True
        except (McapError, EOFError, ValueError, OSError, struct.error) as exc:  # the torn end of a killed bridge's file
            torn += 1
            if not records:
                raise ValueError(f"{path}: not a readable MCAP flight log ({exc})") from None
    return records, torn, complete
