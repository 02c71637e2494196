"""The app-channel packets of the quadhil Crazyflie app: the ONE definition, for Python and C.

The Crazyflie's CRTP app channel (port 13, channel 2; crazyflie-firmware
``src/modules/src/app_channel.c``, cflib ``cflib/crazyflie/appchannel.py``) carries raw
datagrams of up to 30 bytes between a client and an app. quadhil's onboard app
(``firmware_bridge/crazyflie_app``), the Crazyflie twin's relay (``sim/sitl/crazyflie/app_relay.py``)
and the bridge all speak the packets defined here. :func:`generate_c_header` writes the C
header the app compiles (``firmware_bridge/crazyflie_app/src/quadhil_packets.h``) from the same
table, so the two sides cannot drift; a test checks the committed header is up to date.

Every packet is 20 bytes, little-endian (both the host and the Cortex-M4 are little-endian)::

    offset size field
    0      1    version      PACKET_VERSION; anything else is refused
    1      1    kind         KIND_MOTORS, KIND_SETPOINT or KIND_STATUS
    2      2    sequence     uint16, incremented by the sender per packet, wraps
    4      16   payload      per kind (below)

* ``KIND_MOTORS`` (client -> app, mode 1 "motor relay"): four float32 normalized motor commands
  in [-1, 1], firmware motor order M1..M4, meaning exactly the contract's ``motors`` action:
  thrust fraction (a + 1) / 2 of the nominal max motor thrust (:func:`sim.contract.act_to_command`).
* ``KIND_SETPOINT`` (client -> app, mode 2 "onboard policy"): target position x, y, z (float32,
  m, world ENU) and a float32 ``reserved`` that must be 0.
* ``KIND_STATUS`` (app -> client): the app's state, the last event (e.g. a watchdog trip), the
  last accepted sequence, the count of watchdog trips and of refused packets, and the app's
  clock in ms. Sent on every state change, so a client sees a watchdog trip as it happens.

A packet is accepted only if it has the exact size, the version, a known kind, finite values,
motor commands within [-1, 1], a zero reserved field, and a sequence number newer than the last
accepted one (modulo 2**16, within half the range): a replayed or reordered packet is refused.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum

APP_CHANNEL_PORT = 13  # CRTP_PORT_PLATFORM (crazyflie-firmware src/modules/interface/crtp.h)
APP_CHANNEL_CHANNEL = 2  # platformservice.c routes port 13 channel 2 to app_channel.c
APP_CHANNEL_MTU = 30  # CRTP payload limit (crtp.h CRTP_MAX_DATA_SIZE)
PACKET_VERSION = 1
PACKET_SIZE = 20
DEFAULT_WATCHDOG_MS = 50  # a relay without a valid packet for this long drops to safe output
DEFAULT_LINK_LOSS_MS = 500  # the onboard policy without a valid packet for this long lands (quadhil.lossMs)


class Kind(IntEnum):
    """Packet kinds (byte 1)."""

    MOTORS = 1
    SETPOINT = 2
    STATUS = 3


class AppState(IntEnum):
    """What the app is doing (STATUS byte 4)."""

    IDLE = 0  # not enabled or waiting for the first packet; motors off
    RELAY = 1  # mode 1: applying relayed motor commands
    RELAY_TIMEOUT = 2  # mode 1: watchdog tripped, safe output (motors off) until a new packet
    POLICY = 3  # mode 2: onboard policy flying
    REFUSED = 4  # mode 2 refused: the embedded network is not for a Crazyflie
    LINK_LOST = 5  # mode 2: no valid packet for quadhil.lossMs; descending, then motors off until disabled


class AppEvent(IntEnum):
    """Why the last STATUS was sent (STATUS byte 5)."""

    NONE = 0
    STARTED = 1
    WATCHDOG = 2  # no valid packet within the watchdog period (mode 1 wdMs, mode 2 lossMs)
    RESUMED = 3  # a valid packet after a watchdog trip (mode 2: a SETPOINT before the motors were cut)
    DISABLED = 4
    BAD_PACKET = 5


class PacketError(ValueError):
    """A datagram is not a valid quadhil app-channel packet; the message names the problem."""


_HEADER = struct.Struct("<BBH")
# kind -> (struct of the whole packet, field names after the header)
_LAYOUTS: dict[Kind, tuple[struct.Struct, tuple[str, ...]]] = {
    Kind.MOTORS: (struct.Struct("<BBH4f"), ("m1", "m2", "m3", "m4")),
    Kind.SETPOINT: (struct.Struct("<BBH4f"), ("x_m", "y_m", "z_m", "reserved")),
    Kind.STATUS: (struct.Struct("<BBHBBHIII"),
                  ("state", "event", "pad", "watchdog_trips", "rejected", "time_ms")),
}
for _s, _ in _LAYOUTS.values():
    assert _s.size == PACKET_SIZE


@dataclass(frozen=True)
class MotorPacket:
    """Mode 1: four normalized motor commands in [-1, 1], firmware order M1..M4."""

    sequence: int
    motors: tuple[float, float, float, float]


@dataclass(frozen=True)
class SetpointPacket:
    """Mode 2: the onboard policy's target position, m, world ENU."""

    sequence: int
    target_w: tuple[float, float, float]


@dataclass(frozen=True)
class StatusPacket:
    """App -> client: state, last event, counters and the app clock (ms)."""

    sequence: int  # last accepted client sequence
    state: AppState
    event: AppEvent
    watchdog_trips: int
    rejected: int
    time_ms: int


Packet = MotorPacket | SetpointPacket | StatusPacket


MAIN_LOOP_HZ = 1000  # RATE_MAIN_LOOP (crazyflie-firmware stabilizer_types.h): the app's controller runs at it
MAX_ACTION_HISTORY = 8  # quadhil_app.c: float history[4 * 8]


def policy_refusal(vehicle: str, action_mode: str, rate_hz: float, action_history: int) -> str | None:
    """Why quadhil_app.c's policyAcceptable refuses a mode-2 network made for ``vehicle`` /
    ``action_mode`` at ``rate_hz`` (Hz) with ``action_history`` past actions, or None when the app
    flies it: a Crazyflie, motor-level, an integer rate dividing the 1 kHz loop, <= 8 past actions."""
    rate = float(rate_hz)
    if vehicle != "crazyflie":
        return f"the app flies Crazyflie policies; this one is for {vehicle!r}"
    if action_mode != "motors":
        return f"the app's onboard policy is motor-level; this one is {action_mode!r}"
    if rate != int(rate) or int(rate) <= 0 or MAIN_LOOP_HZ % int(rate):
        return f"{rate:g} Hz does not divide the firmware's {MAIN_LOOP_HZ} Hz loop"
    if action_history > MAX_ACTION_HISTORY:
        return f"{action_history} past actions; the app keeps at most {MAX_ACTION_HISTORY}"
    return None


def _check_seq(sequence: int) -> int:
    if not isinstance(sequence, int) or not 0 <= sequence <= 0xFFFF:
        raise PacketError(f"sequence must be an integer 0..65535, got {sequence!r}")
    return sequence


def encode_motors(sequence: int, motors) -> bytes:
    """MOTORS packet for normalized commands ``motors`` (4,) in [-1, 1] (raises PacketError)."""
    values = [float(m) for m in motors]
    if len(values) != 4:
        raise PacketError(f"a motor packet carries 4 commands, got {len(values)}")
    if not all(math.isfinite(v) and -1.0 <= v <= 1.0 for v in values):
        raise PacketError(f"motor commands must be finite and within [-1, 1], got {values}")
    return _LAYOUTS[Kind.MOTORS][0].pack(PACKET_VERSION, Kind.MOTORS, _check_seq(sequence), *values)


def encode_setpoint(sequence: int, target_w) -> bytes:
    """SETPOINT packet for a target position (3,) m, world ENU."""
    values = [float(v) for v in target_w]
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise PacketError(f"a setpoint is 3 finite numbers (m, ENU), got {values}")
    return _LAYOUTS[Kind.SETPOINT][0].pack(PACKET_VERSION, Kind.SETPOINT, _check_seq(sequence), *values, 0.0)


def encode_status(status: StatusPacket) -> bytes:
    """STATUS packet bytes."""
    return _LAYOUTS[Kind.STATUS][0].pack(
        PACKET_VERSION, Kind.STATUS, _check_seq(status.sequence), int(status.state), int(status.event), 0,
        status.watchdog_trips & 0xFFFFFFFF, status.rejected & 0xFFFFFFFF, status.time_ms & 0xFFFFFFFF)


def decode(data: bytes) -> Packet:
    """Parse and validate one datagram; raise :class:`PacketError` naming the first problem."""
    data = bytes(data)
    if len(data) != PACKET_SIZE:
        raise PacketError(f"packet must be {PACKET_SIZE} bytes, got {len(data)}")
    version, kind, sequence = _HEADER.unpack_from(data)
    if version != PACKET_VERSION:
        raise PacketError(f"packet version {version} is not supported (this side speaks {PACKET_VERSION})")
    if kind not in Kind._value2member_map_:
        raise PacketError(f"unknown packet kind {kind}")
    kind = Kind(kind)
    layout = _LAYOUTS[kind][0]
    fields = layout.unpack(data)[3:]
    if kind is Kind.MOTORS:
        if not all(math.isfinite(v) and -1.0 <= v <= 1.0 for v in fields):
            raise PacketError(f"motor commands must be finite and within [-1, 1], got {list(fields)}")
        return MotorPacket(sequence, tuple(float(v) for v in fields))
    if kind is Kind.SETPOINT:
        if not all(math.isfinite(v) for v in fields):
            raise PacketError("setpoint values must be finite")
        if fields[3] != 0.0:
            raise PacketError("setpoint reserved field must be 0")
        return SetpointPacket(sequence, tuple(float(v) for v in fields[:3]))
    state, event, _pad, trips, rejected, time_ms = fields
    if state not in AppState._value2member_map_ or event not in AppEvent._value2member_map_:
        raise PacketError(f"status has unknown state {state} or event {event}")
    return StatusPacket(sequence, AppState(state), AppEvent(event), trips, rejected, time_ms)


def sequence_is_newer(sequence: int, last: int | None) -> bool:
    """True if ``sequence`` follows ``last`` (mod 2**16, less than half the range ahead).

    ``last`` None (nothing accepted yet) accepts any sequence.
    """
    if last is None:
        return True
    delta = (sequence - last) & 0xFFFF
    return 0 < delta < 0x8000


# --- C header ------------------------------------------------------------------------------

_C_TYPES = {"B": ("uint8_t", 1), "H": ("uint16_t", 2), "I": ("uint32_t", 4), "f": ("float", 4)}


def _c_fields(kind: Kind) -> list[tuple[str, str, int]]:
    """(c type, name, offset) of every field of ``kind`` after the header."""
    layout, names = _LAYOUTS[kind]
    codes = []
    for ch in layout.format.lstrip("<"):
        if ch.isdigit():
            codes.append(int(ch))
        else:
            if codes and isinstance(codes[-1], int):
                count = codes.pop()
                codes.extend([ch] * count)
            else:
                codes.append(ch)
    codes = codes[3:]  # skip version, kind, sequence
    out, offset = [], 4
    for code, name in zip(codes, names):
        ctype, size = _C_TYPES[code]
        out.append((ctype, name, offset))
        offset += size
    assert offset == PACKET_SIZE
    return out


def generate_c_header() -> str:
    """Text of ``quadhil_packets.h``: constants, packed structs and a validating decoder in C11."""
    lines = [
        "/* quadhil_packets.h - GENERATED by `python -m sim.sitl.app_channel --header`; do not edit.",
        " * The one definition lives in sim/sitl/app_channel.py; tests check this file is up to date.",
        " * App-channel packets of the quadhil Crazyflie app (CRTP port 13, channel 2). */",
        "#ifndef QUADHIL_PACKETS_H",
        "#define QUADHIL_PACKETS_H",
        "",
        "#include <stdbool.h>",
        "#include <stdint.h>",
        "#include <string.h>",
        "#include <math.h>",
        "",
        f"#define QH_PACKET_VERSION {PACKET_VERSION}u",
        f"#define QH_PACKET_SIZE {PACKET_SIZE}u",
        f"#define QH_DEFAULT_WATCHDOG_MS {DEFAULT_WATCHDOG_MS}u",
        f"#define QH_DEFAULT_LINK_LOSS_MS {DEFAULT_LINK_LOSS_MS}u",
    ]
    for enum, prefix in ((Kind, "QH_KIND_"), (AppState, "QH_STATE_"), (AppEvent, "QH_EVENT_")):
        lines.append("")
        for member in enum:
            lines.append(f"#define {prefix}{member.name} {int(member)}u")
    lines += ["", "/* The host and the Cortex-M4 are little-endian: fields are copied with memcpy. */"]
    for kind, struct_name in ((Kind.MOTORS, "qh_motor_packet_t"), (Kind.SETPOINT, "qh_setpoint_packet_t"),
                              (Kind.STATUS, "qh_status_packet_t")):
        lines += ["", "typedef struct {", "  uint8_t version;", "  uint8_t kind;", "  uint16_t sequence;"]
        for ctype, name, offset in _c_fields(kind):
            lines.append(f"  {ctype} {name};  /* offset {offset} */")
        lines.append(f"}} {struct_name};")
    lines += [
        "",
        "/* Result codes of the decoders; 0 is success. */",
        "#define QH_OK 0",
        "#define QH_ERR_SIZE 1",
        "#define QH_ERR_VERSION 2",
        "#define QH_ERR_KIND 3",
        "#define QH_ERR_VALUE 4",
        "",
        "static inline int qh_check_header(const uint8_t *buf, uint32_t len, uint8_t kind) {",
        "  if (len != QH_PACKET_SIZE) return QH_ERR_SIZE;",
        "  if (buf[0] != QH_PACKET_VERSION) return QH_ERR_VERSION;",
        "  if (buf[1] != kind) return QH_ERR_KIND;",
        "  return QH_OK;",
        "}",
        "",
        "static inline uint8_t qh_packet_kind(const uint8_t *buf, uint32_t len) {",
        "  return (len >= 2u) ? buf[1] : 0u;",
        "}",
        "",
        "/* Decode and validate a MOTORS packet: exact size, version, kind, finite, within [-1, 1]. */",
        "static inline int qh_decode_motors(const uint8_t *buf, uint32_t len, qh_motor_packet_t *out) {",
        "  int err = qh_check_header(buf, len, QH_KIND_MOTORS);",
        "  if (err != QH_OK) return err;",
        "  out->version = buf[0];",
        "  out->kind = buf[1];",
        "  memcpy(&out->sequence, buf + 2, 2);",
    ]
    for ctype, name, offset in _c_fields(Kind.MOTORS):
        lines.append(f"  memcpy(&out->{name}, buf + {offset}, sizeof(out->{name}));")
    names = [n for _, n, _ in _c_fields(Kind.MOTORS)]
    lines.append("  const float m[4] = {" + ", ".join(f"out->{n}" for n in names) + "};")
    lines += [
        "  for (int i = 0; i < 4; i++) {",
        "    if (!isfinite(m[i]) || m[i] < -1.0f || m[i] > 1.0f) return QH_ERR_VALUE;",
        "  }",
        "  return QH_OK;",
        "}",
        "",
        "/* Decode and validate a SETPOINT packet: finite target, reserved == 0. */",
        "static inline int qh_decode_setpoint(const uint8_t *buf, uint32_t len, qh_setpoint_packet_t *out) {",
        "  int err = qh_check_header(buf, len, QH_KIND_SETPOINT);",
        "  if (err != QH_OK) return err;",
        "  out->version = buf[0];",
        "  out->kind = buf[1];",
        "  memcpy(&out->sequence, buf + 2, 2);",
    ]
    for ctype, name, offset in _c_fields(Kind.SETPOINT):
        lines.append(f"  memcpy(&out->{name}, buf + {offset}, sizeof(out->{name}));")
    lines += [
        "  if (!isfinite(out->x_m) || !isfinite(out->y_m) || !isfinite(out->z_m)) return QH_ERR_VALUE;",
        "  if (out->reserved != 0.0f) return QH_ERR_VALUE;",
        "  return QH_OK;",
        "}",
        "",
        "/* Encode a STATUS packet into buf (QH_PACKET_SIZE bytes). */",
        "static inline void qh_encode_status(const qh_status_packet_t *in, uint8_t *buf) {",
        "  memset(buf, 0, QH_PACKET_SIZE);",
        "  buf[0] = QH_PACKET_VERSION;",
        "  buf[1] = QH_KIND_STATUS;",
        "  memcpy(buf + 2, &in->sequence, 2);",
    ]
    for ctype, name, offset in _c_fields(Kind.STATUS):
        lines.append(f"  memcpy(buf + {offset}, &in->{name}, sizeof(in->{name}));")
    lines += [
        "}",
        "",
        "/* True if seq follows last (mod 2^16, less than half the range ahead). */",
        "static inline bool qh_sequence_is_newer(uint16_t seq, uint16_t last, bool have_last) {",
        "  if (!have_last) return true;",
        "  const uint16_t delta = (uint16_t)(seq - last);",
        "  return delta > 0u && delta < 0x8000u;",
        "}",
        "",
        "#endif /* QUADHIL_PACKETS_H */",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m sim.sitl.app_channel --header PATH``: write the C header."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(description="quadhil app-channel packets")
    parser.add_argument("--header", metavar="PATH", help="write the generated C header to PATH")
    args = parser.parse_args(argv)
    text = generate_c_header()
    if args.header:
        Path(args.header).write_text(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
