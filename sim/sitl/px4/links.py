"""UDP MAVLink endpoints of the twin, laid out like PX4 SITL's
(ROMFS/px4fmu_common/init.d-posix/px4-rc.mavlink): the onboard/API link listens on 14580 and
sends to 14540, the GCS link listens on 18570 and sends to 14550 (+ instance for both local
ports and the offboard remote port). Like PX4's UDP transport (mavlink_main.cpp), a link sends
to its configured remote port until it hears from a peer, then answers that peer's address.

Incoming datagrams are parsed with pymavlink's parser in robust mode and sorted into counters:
bad CRC, bad prefix, truncated frame, unknown message id, MAVLink 1 frame. The parser state is
reset at each datagram boundary (UDP delimits frames, so a truncated frame cannot swallow the
next datagram's valid frame); PX4's byte-stream parser keeps state across datagrams instead.
"""

from __future__ import annotations

import errno
import socket
from collections import Counter
from dataclasses import dataclass

from pymavlink.dialects.v20 import common as mavlink

from sim.errors import QuadhilError

MAX_DATAGRAM = 65535


class LinkError(QuadhilError):
    """A link cannot be opened (port in use, bad address)."""


@dataclass(frozen=True)
class LinkConfig:
    """One UDP endpoint: where it listens, where it sends first, and its stream mode."""

    name: str
    bind_host: str
    listen_port: int
    remote_host: str
    remote_port: int
    mode: str  # 'onboard' | 'normal'


class MavlinkUdpLink:
    """A MAVLink 2 endpoint on UDP with its own sequence numbers and receive counters."""

    def __init__(self, config: LinkConfig, sysid: int, compid: int):
        self.config = config
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # A deeper receive queue than the default (~270 small datagrams) so a burst from a busy
        # client is not dropped by the kernel while the 1 kHz loop waits for a core.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        try:
            self.sock.bind((config.bind_host, config.listen_port))
        except OSError as exc:
            self.sock.close()
            raise LinkError(f"{config.name} link cannot listen on {config.bind_host}:{config.listen_port}: "
                            f"{exc.strerror}") from None
        self.sock.setblocking(False)
        self.remote = (config.remote_host, config.remote_port)
        self.mav = mavlink.MAVLink(self, srcSystem=sysid, srcComponent=compid)
        self._parser = mavlink.MAVLink(None)
        self._parser.robust_parsing = True
        self.counters: Counter = Counter()

    def fileno(self) -> int:
        """For select()."""
        return self.sock.fileno()

    def write(self, data: bytes) -> None:
        """pymavlink's output 'file': one datagram per frame to the current peer."""
        try:
            self.sock.sendto(data, self.remote)
            self.counters["tx_frames"] += 1
        except OSError as exc:  # nobody listening yet (ECONNREFUSED) or buffer full: drop
            if exc.errno not in (errno.ECONNREFUSED, errno.EAGAIN, errno.ENOBUFS, errno.EWOULDBLOCK):
                raise
            self.counters["tx_dropped"] += 1

    def send(self, msg) -> None:
        """Pack and send one message (MAVLink 2, this link's sequence)."""
        self.mav.send(msg)

    def _reset_parser(self) -> None:
        p = self._parser
        p.buf = bytearray()
        p.buf_index = 0
        p.expected_length = mavlink.HEADER_LEN_V1 + 2

    def receive(self) -> list:
        """Drain the socket; returns the valid, known messages (others are only counted)."""
        out = []
        while True:
            try:
                data, addr = self.sock.recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                return out
            except OSError:
                self.counters["rx_socket_errors"] += 1
                return out
            self.counters["rx_datagrams"] += 1
            self._reset_parser()
            try:
                msgs = self._parser.parse_buffer(data) or []
            except Exception:  # pymavlink raises on a few malformed headers even in robust mode
                self.counters["rx_bad_frames"] += 1
                continue
            if self._parser.buf_len() > 0:
                self.counters["rx_truncated"] += 1
            good = False
            for m in msgs:
                kind = m.get_type()
                if kind == "BAD_DATA":
                    reason = str(getattr(m, "reason", ""))
                    if "CRC" in reason:
                        self.counters["rx_bad_crc"] += 1
                    elif "prefix" in reason:
                        self.counters["rx_bad_prefix"] += 1
                    else:
                        self.counters["rx_bad_frames"] += 1
                    continue
                if kind.startswith("UNKNOWN_"):
                    self.counters["rx_unknown_id"] += 1
                    continue
                buf = m.get_msgbuf()
                if buf and buf[0] == mavlink.PROTOCOL_MARKER_V1:
                    self.counters["rx_mavlink1"] += 1  # PX4 parses v1 frames too; counted
                self.counters["rx_frames"] += 1
                good = True
                out.append(m)
            if good:
                self.remote = addr  # answer whoever talks to us, as PX4's UDP link does

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
