"""``quadhil fly --live``: the flight served live to Foxglove over its WebSocket protocol.

foxglove-sdk's server (Rust, in-process) binds 127.0.0.1 (``--live-port``, default 8765); open
Foxglove, "Open connection", ``ws://127.0.0.1:8765``. The channels and messages are the MCAP
log's (:func:`firmware_bridge.flightlog_mcap.messages_for`: pose, transform, target, mocap,
setpoint, command, supervisor, latency; the whole-record ``/quadhil/log`` channel is left out),
so a layout made on a recorded flight works live. Chosen over Rerun: the same schemas as the
MCAP file, no second data model, and an SDK whose ``log`` call hands the message to a Rust
thread (its cost on the control loop is in ``quadhil bench bridge``).
"""

from __future__ import annotations

import json
import time

from firmware_bridge.flightlog_mcap import SCHEMAS, TOPIC_LOG, TOPICS, messages_for
from sim.errors import QuadhilError


class LiveView:
    """A Foxglove WebSocket server fed with every flight-log record (a log mirror)."""

    def __init__(self, server, channels: dict) -> None:
        self.server = server
        self.channels = channels
        self.messages = 0

    @classmethod
    def start(cls, port: int = 8765, header: dict | None = None) -> "LiveView":
        """Start the server on 127.0.0.1:``port`` (0: any free port) and open the channels."""
        try:
            import foxglove
        except ImportError:
            raise QuadhilError("--live needs foxglove-sdk: pip install 'quadhil[lab]'") from None
        try:
            server = foxglove.start_server(name="quadhil", host="127.0.0.1", port=port)
        except Exception as exc:  # noqa: BLE001 - the SDK raises its own error types (port in use)
            raise QuadhilError(f"--live: cannot serve on 127.0.0.1:{port}: {exc}") from None
        channels = {}
        for topic, schema in TOPICS.items():
            if topic == TOPIC_LOG:
                continue
            channels[topic] = foxglove.Channel(
                topic, message_encoding="json",
                schema=foxglove.Schema(name=schema, encoding="jsonschema", data=json.dumps(SCHEMAS[schema]).encode()))
        return cls(server, channels)

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self.server.port)

    def write(self, record: dict) -> None:
        """Publish the record's messages (called in the control loop, after the command went out)."""
        t_ns = time.time_ns()
        for topic, msg in messages_for(record, t_ns):
            ch = self.channels.get(topic)
            if ch is not None:
                ch.log(json.dumps(msg).encode(), log_time=t_ns)
                self.messages += 1

    def close(self) -> None:
        """Stop the server (idempotent)."""
        server, self.server = self.server, None
        if server is not None:
            server.stop()
