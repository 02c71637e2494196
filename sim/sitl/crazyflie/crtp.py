"""CRTP wire codec for the udp:// link: one datagram = one CRTP packet.

Byte 0 is the header ``port << 4 | link bits << 2 | channel`` and bytes 1..30 the payload
(cflib/crtp/udpdriver.py, crazyflie-firmware src/modules/interface/crtp.h: CRTP_MAX_DATA_SIZE 30).
The firmware builds replies with ``CRTP_HEADER(port, channel)``, i.e. link bits zero; so do we.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_DATA_SIZE = 30
MAX_DATAGRAM_SIZE = 1 + MAX_DATA_SIZE

# Ports (crazyflie-firmware src/modules/interface/crtp.h, CRTPPort)
PORT_CONSOLE = 0
PORT_PARAM = 2
PORT_COMMANDER = 3
PORT_MEM = 4
PORT_LOG = 5
PORT_LOCALIZATION = 6
PORT_COMMANDER_GENERIC = 7
PORT_SETPOINT_HL = 8
PORT_SUPERVISOR = 9
PORT_PLATFORM = 13
PORT_LINK = 15

NULL_HEADER = 0xFF  # port 15 channel 3: the "null packet" cflib's udp scan sends as a probe


class CrtpDecodeError(ValueError):
    """A datagram that is not a CRTP packet (empty or longer than 31 bytes)."""


@dataclass(frozen=True)
class CrtpPacket:
    """One CRTP packet: port 0..15, channel 0..3, payload of at most 30 bytes."""

    port: int
    channel: int
    data: bytes

    @property
    def header(self) -> int:
        """The firmware's header byte for this packet (link bits zero)."""
        return ((self.port & 0x0F) << 4) | (self.channel & 0x03)

    def encode(self) -> bytes:
        """The datagram carrying this packet."""
        return bytes((self.header,)) + self.data


def decode(datagram: bytes) -> CrtpPacket:
    """Split a datagram into header fields and payload; raise CrtpDecodeError if it cannot be one."""
    if len(datagram) == 0:
        raise CrtpDecodeError("empty datagram")
    if len(datagram) > MAX_DATAGRAM_SIZE:
        raise CrtpDecodeError(f"datagram of {len(datagram)} bytes exceeds {MAX_DATAGRAM_SIZE}")
    header = datagram[0]
    return CrtpPacket(port=(header >> 4) & 0x0F, channel=header & 0x03, data=bytes(datagram[1:]))


def encode(port: int, channel: int, data: bytes) -> bytes:
    """Datagram for ``data`` on port/channel; raises ValueError if the payload is too long."""
    if len(data) > MAX_DATA_SIZE:
        raise ValueError(f"CRTP payload of {len(data)} bytes exceeds {MAX_DATA_SIZE}")
    return bytes((((port & 0x0F) << 4) | (channel & 0x03),)) + bytes(data)
