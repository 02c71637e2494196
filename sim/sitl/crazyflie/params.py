"""Parameters on CRTP port 2: TOC v2, read, write (exact echo), read-only flag, set-by-name.

Behaviour follows crazyflie-firmware src/modules/src/param_logic.c:
- read (channel 1) ``[id u16]`` -> ``[id u16, 0, value]``; unknown id -> ``[id u16, ENOENT]``
- write (channel 2) ``[id u16, value]`` -> the same packet echoed; a read-only id gets no
  reply at all; unknown id -> ``[id u16, ENOENT]``
- misc (channel 3) set-by-name ``[0, group, 0, name, 0, type, value]`` ->
  ``[0, group, 0, name, 0, errno]`` (ENOENT unknown, EINVAL type mismatch, EACCES read-only)
Type bytes: bits 0-1 size, bit 2 float, bit 3 unsigned, bit 6 read-only (param.h).
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, field
from typing import Callable

from sim.sitl.crazyflie.toc import CMD_GET_INFO_V2, CMD_GET_ITEM_V2, Toc, TocEntry

TOC_CH, READ_CH, WRITE_CH, MISC_CH = 0, 1, 2, 3
MISC_SETBYNAME = 0
MISC_GET_EXTENDED_TYPE = 2
MISC_PERSISTENT_STORE = 3
MISC_PERSISTENT_GET_STATE = 4
MISC_PERSISTENT_CLEAR = 5
MISC_GET_DEFAULT_VALUE = 6
MISC_GET_EXTENDED_TYPE_V2 = 7
MISC_GET_DEFAULT_VALUE_V2 = 8

PARAM_RONLY = 0x40
PARAM_TYPES = {  # C type -> (type byte, struct format)
    "int8_t": (0x00, "<b"),
    "int16_t": (0x01, "<h"),
    "int32_t": (0x02, "<i"),
    "float": (0x06, "<f"),
    "uint8_t": (0x08, "<B"),
    "uint16_t": (0x09, "<H"),
    "uint32_t": (0x0A, "<I"),
}
_FORMAT_BY_CODE = {code: fmt for code, fmt in PARAM_TYPES.values()}


@dataclass(frozen=True)
class ParamSpec:
    """A parameter: name, C type, default value, read-only flag, and an optional callback run
    (with the new value) after a write, like the firmware's PARAM_ADD_WITH_CALLBACK."""

    group: str
    name: str
    ctype: str
    default: float
    readonly: bool = False
    on_write: Callable[[float], None] | None = field(default=None, compare=False)


class ParamStore:
    """Values of all parameters plus the port-2 protocol handler."""

    def __init__(self, specs: list[ParamSpec]):
        self.specs = list(specs)
        entries = []
        for s in self.specs:
            code, _ = PARAM_TYPES[s.ctype]
            entries.append(TocEntry(s.group, s.name, code | (PARAM_RONLY if s.readonly else 0)))
        self.toc = Toc(entries)
        self._fmt = [PARAM_TYPES[s.ctype][1] for s in self.specs]
        self.values: list[float] = [self._coerce(i, s.default) for i, s in enumerate(self.specs)]
        self.rejected = 0  # malformed requests (too short), ignored

    def _coerce(self, ident: int, value: float) -> float:
        fmt = self._fmt[ident]
        return struct.unpack(fmt, struct.pack(fmt, float(value) if fmt == "<f" else int(value)))[0]

    def id_of(self, full_name: str) -> int:
        """Id of ``group.name``; KeyError if absent."""
        return self.toc.ids[full_name]

    def get(self, full_name: str) -> float:
        """Current value of ``group.name``."""
        return self.values[self.toc.ids[full_name]]

    def set(self, full_name: str, value: float) -> None:
        """Set a value from inside the twin (no callback, no reply; like firmware code writing
        its own variable)."""
        i = self.toc.ids[full_name]
        self.values[i] = self._coerce(i, value)

    def _pack(self, ident: int) -> bytes:
        fmt = self._fmt[ident]
        return struct.pack(fmt, self.values[ident])

    def handle(self, channel: int, data: bytes) -> list[tuple[int, bytes]]:
        """Process one port-2 packet; return the replies as (channel, payload)."""
        if channel == TOC_CH:
            return self._toc(data)
        if len(data) < 2:
            self.rejected += 1
            return []
        if channel == READ_CH:
            (ident,) = struct.unpack_from("<H", data)
            if ident >= len(self.values):
                return [(READ_CH, data[:2] + bytes((errno.ENOENT,)))]
            return [(READ_CH, data[:2] + b"\0" + self._pack(ident))]
        if channel == WRITE_CH:
            return self._write(data)
        return self._misc(data)

    def _toc(self, data: bytes) -> list[tuple[int, bytes]]:
        if not data:
            self.rejected += 1
            return []
        if data[0] == CMD_GET_INFO_V2:
            return [(TOC_CH, self.toc.info_v2())]
        if data[0] == CMD_GET_ITEM_V2:
            if len(data) < 3:
                self.rejected += 1
                return []
            (ident,) = struct.unpack_from("<H", data, 1)
            return [(TOC_CH, self.toc.item_v2(ident))]
        self.rejected += 1  # v1 TOC commands: cflib >= protocol 4 never sends them
        return []

    def _write(self, data: bytes) -> list[tuple[int, bytes]]:
        (ident,) = struct.unpack_from("<H", data)
        if ident >= len(self.values):
            return [(WRITE_CH, data[:2] + bytes((errno.ENOENT,)))]
        spec = self.specs[ident]
        if spec.readonly:
            return []  # param_logic.c: a write to a read-only parameter is silently dropped
        size = struct.calcsize(self._fmt[ident])
        if len(data) < 2 + size:
            self.rejected += 1
            return []
        (value,) = struct.unpack_from(self._fmt[ident], data, 2)
        self.values[ident] = value
        if spec.on_write is not None:
            spec.on_write(value)
        return [(WRITE_CH, bytes(data))]

    def _misc(self, data: bytes) -> list[tuple[int, bytes]]:
        cmd = data[0]
        if cmd == MISC_SETBYNAME:
            return self._set_by_name(data)
        if len(data) < 3:
            self.rejected += 1
            return []
        (ident,) = struct.unpack_from("<H", data, 1)
        head = data[:3]
        if cmd == MISC_GET_DEFAULT_VALUE_V2 and ident < len(self.specs):
            default = self._coerce(ident, self.specs[ident].default)
            return [(MISC_CH, head + b"\0" + struct.pack(self._fmt[ident], default))]
        if cmd in (MISC_GET_EXTENDED_TYPE, MISC_GET_EXTENDED_TYPE_V2, MISC_PERSISTENT_STORE,
                   MISC_PERSISTENT_GET_STATE, MISC_PERSISTENT_CLEAR, MISC_GET_DEFAULT_VALUE,
                   MISC_GET_DEFAULT_VALUE_V2):
            # No parameter here is extended or persistent.
            return [(MISC_CH, head + bytes((errno.ENOENT,)))]
        self.rejected += 1
        return []

    def _set_by_name(self, data: bytes) -> list[tuple[int, bytes]]:
        parts = data[1:].split(b"\0", 2)
        if len(parts) < 3 or len(parts[2]) < 1:
            self.rejected += 1  # fewer than two NULs: the firmware ignores it too
            return []
        group, name, rest = parts
        type_byte, value_bytes = rest[0], rest[1:]
        head = data[: 1 + len(group) + 1 + len(name) + 1]
        try:
            full = f"{group.decode('ascii')}.{name.decode('ascii')}"
            ident = self.toc.ids[full]
        except (UnicodeDecodeError, KeyError):
            return [(MISC_CH, head + bytes((errno.ENOENT,)))]
        spec = self.specs[ident]
        code = PARAM_TYPES[spec.ctype][0]
        if type_byte != code:
            return [(MISC_CH, head + bytes((errno.EINVAL,)))]
        if spec.readonly:
            return [(MISC_CH, head + bytes((errno.EACCES,)))]
        fmt = _FORMAT_BY_CODE[code]
        if len(value_bytes) < struct.calcsize(fmt):
            self.rejected += 1
            return []
        (value,) = struct.unpack_from(fmt, value_bytes)
        self.values[ident] = value
        if spec.on_write is not None:
            spec.on_write(value)
        return [(MISC_CH, head + b"\0")]
