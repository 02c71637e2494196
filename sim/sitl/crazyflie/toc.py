"""Tables of contents (log and param): ids, names, type bytes and a CRC that cflib caches by.

Layout of a v2 item reply (crazyflie-firmware src/modules/src/log.c logTOCProcess and
param_logic.c paramTOCProcess, CMD_GET_ITEM_V2)::

    [2, id_lo, id_hi, type, group..., 0, name..., 0]

The CRC chains a CRC-32 over each group and variable description, as the firmware does at
init, so any change in names or types changes it (cflib's toccache keys TOCs by CRC).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

CMD_GET_ITEM_V2 = 2
CMD_GET_INFO_V2 = 3


@dataclass(frozen=True)
class TocEntry:
    """One variable: ``group.name`` with its TOC type byte (type code plus flag bits)."""

    group: str
    name: str
    type_byte: int

    @property
    def full_name(self) -> str:
        """``group.name`` as cflib spells it."""
        return f"{self.group}.{self.name}"


class Toc:
    """An ordered TOC: the id of an entry is its index."""

    def __init__(self, entries: list[TocEntry]):
        self.entries = list(entries)
        if len(self.entries) > 0xFFFF:
            raise ValueError("a v2 TOC holds at most 65535 entries")
        self.ids = {e.full_name: i for i, e in enumerate(self.entries)}
        if len(self.ids) != len(self.entries):
            raise ValueError("duplicate names in TOC")
        crc = 0
        group = None
        for e in self.entries:
            if len(e.group) + len(e.name) + 6 > 30:
                raise ValueError(f"TOC name {e.full_name!r} too long for one CRTP packet")
            if e.group != group:
                group = e.group
                crc = zlib.crc32(struct.pack("<IB", crc, 0x80) + group.encode("ascii"))
            crc = zlib.crc32(struct.pack("<IB", crc, e.type_byte) + e.name.encode("ascii"))
        self.crc = crc & 0xFFFFFFFF

    def __len__(self) -> int:
        return len(self.entries)

    def info_v2(self) -> bytes:
        """[3, count u16, crc u32] (the log TOC appends its limits to this)."""
        return struct.pack("<BHI", CMD_GET_INFO_V2, len(self.entries), self.crc)

    def item_v2(self, ident: int) -> bytes:
        """The item reply for ``ident``; ``[2]`` alone when out of range, as the firmware answers."""
        if not 0 <= ident < len(self.entries):
            return bytes((CMD_GET_ITEM_V2,))
        e = self.entries[ident]
        return (struct.pack("<BHB", CMD_GET_ITEM_V2, ident, e.type_byte)
                + e.group.encode("ascii") + b"\0" + e.name.encode("ascii") + b"\0")
