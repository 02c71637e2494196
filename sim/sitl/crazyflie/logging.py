"""The log subsystem on CRTP port 5: TOC v2, blocks, and periodic data packets.

Follows crazyflie-firmware src/modules/src/log.c:
- TOC info v2 ``[3]`` -> ``[3, count u16, crc u32, LOG_MAX_BLOCKS 16, LOG_MAX_OPS 128]``
- control (channel 1) replies ``[cmd, block id, errno]`` for create v2 (6), append v2 (7),
  delete (2), start (3, period in 10 ms units; 0 = one shot), start v2 (8, period ms u16),
  stop (4), reset (5); an unknown command gets ENOEXEC (the v1 create/append included).
- limits: 16 blocks, 128 variables (ops) in all, 26 data bytes per block (E2BIG, ENOMEM,
  EEXIST, ENOENT as the firmware returns them)
- data (channel 2): ``[block id, timestamp ms u24, values...]``, each value converted from
  its stored type to the requested fetch type as logRunBlock does.
"""

from __future__ import annotations

import errno
import math
import struct
from dataclasses import dataclass, field
from typing import Callable

from sim.sitl.crazyflie.toc import CMD_GET_INFO_V2, CMD_GET_ITEM_V2, Toc, TocEntry

TOC_CH, CONTROL_CH, LOG_CH = 0, 1, 2
CONTROL_DELETE_BLOCK = 2
CONTROL_START_BLOCK = 3
CONTROL_STOP_BLOCK = 4
CONTROL_RESET = 5
CONTROL_CREATE_BLOCK_V2 = 6
CONTROL_APPEND_BLOCK_V2 = 7
CONTROL_START_BLOCK_V2 = 8

LOG_MAX_LEN = 26
LOG_MAX_OPS = 128
LOG_MAX_BLOCKS = 16

# log.h type codes -> (struct format, size, is_float)
LOG_TYPES = {
    1: ("<B", 1, False),  # uint8_t
    2: ("<H", 2, False),  # uint16_t
    3: ("<I", 4, False),  # uint32_t
    4: ("<b", 1, False),  # int8_t
    5: ("<h", 2, False),  # int16_t
    6: ("<i", 4, False),  # int32_t
    7: ("<f", 4, True),  # float
    8: ("<e", 2, True),  # FP16
}
CTYPE_CODES = {"uint8_t": 1, "uint16_t": 2, "uint32_t": 3, "int8_t": 4, "int16_t": 5,
               "int32_t": 6, "float": 7, "FP16": 8}
_INT_MASK = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF}
_UNSIGNED_FMT = {1: "<B", 2: "<H", 4: "<I"}


@dataclass(frozen=True)
class LogVar:
    """A loggable variable: ``group.name``, its C type, and a getter of its current value."""

    group: str
    name: str
    ctype: str
    getter: Callable[[], float] = field(compare=False)


@dataclass
class LogBlock:
    """A created block: its ops (variable index, fetch type) and timer state."""

    ident: int
    ops: list[tuple[int, int]] = field(default_factory=list)
    period_ms: int = 0
    next_due_ms: float = math.inf

    def length(self) -> int:
        """Data bytes one sample of this block takes."""
        return sum(LOG_TYPES[t][1] for _, t in self.ops)


def _to_wire(value: float, stored_float: bool, fetch: int) -> bytes:
    """Convert like logRunBlock: ints truncate toward zero and wrap to the fetch size."""
    fmt, size, fetch_float = LOG_TYPES[fetch]
    if fetch_float:
        v = float(value) if stored_float else float(int(value))
        try:
            return struct.pack(fmt, v)
        except (OverflowError, struct.error):
            if fetch == 8:
                return struct.pack("<H", 0xFC00 if v < 0 else 0x7C00)  # +-inf in half precision
            return struct.pack(fmt, math.copysign(math.inf, v))
    if not math.isfinite(value):
        valuei = 0
    else:
        valuei = int(value)  # C float -> int conversion truncates
    return struct.pack(_UNSIGNED_FMT[size], valuei & _INT_MASK[size])


class LogSubsystem:
    """Log TOC, block table and the data timer, driven by the twin's millisecond clock."""

    def __init__(self, variables: list[LogVar]):
        self.variables = list(variables)
        self.toc = Toc([TocEntry(v.group, v.name, CTYPE_CODES[v.ctype]) for v in self.variables])
        self._stored_float = [LOG_TYPES[CTYPE_CODES[v.ctype]][2] for v in self.variables]
        self.blocks: dict[int, LogBlock] = {}
        self.rejected = 0
        self.samples_sent = 0

    @property
    def ops_used(self) -> int:
        """Ops (variables) allocated across all blocks."""
        return sum(len(b.ops) for b in self.blocks.values())

    def handle(self, channel: int, data: bytes, now_ms: float) -> list[tuple[int, bytes]]:
        """Process one port-5 packet; return replies as (channel, payload)."""
        if not data:
            self.rejected += 1
            return []
        if channel == TOC_CH:
            if data[0] == CMD_GET_INFO_V2:
                return [(TOC_CH, self.toc.info_v2() + bytes((LOG_MAX_BLOCKS, LOG_MAX_OPS)))]
            if data[0] == CMD_GET_ITEM_V2 and len(data) >= 3:
                (ident,) = struct.unpack_from("<H", data, 1)
                return [(TOC_CH, self.toc.item_v2(ident))]
            self.rejected += 1
            return []
        if channel != CONTROL_CH:
            self.rejected += 1
            return []
        return self._control(data, now_ms)

    def _control(self, data: bytes, now_ms: float) -> list[tuple[int, bytes]]:
        cmd = data[0]
        block_id = data[1] if len(data) > 1 else 0
        needs = {CONTROL_DELETE_BLOCK: 2, CONTROL_START_BLOCK: 3, CONTROL_STOP_BLOCK: 2,
                 CONTROL_CREATE_BLOCK_V2: 2, CONTROL_APPEND_BLOCK_V2: 2, CONTROL_START_BLOCK_V2: 4}
        if len(data) < needs.get(cmd, 1):
            self.rejected += 1  # truncated: the firmware would read stale buffer bytes
            return []
        if cmd == CONTROL_RESET:
            self.blocks.clear()
            ret = 0
        elif cmd == CONTROL_CREATE_BLOCK_V2:
            ret = self._create(block_id, data[2:])
        elif cmd == CONTROL_APPEND_BLOCK_V2:
            ret = self._append(block_id, data[2:])
        elif cmd == CONTROL_DELETE_BLOCK:
            ret = errno.ENOENT if self.blocks.pop(block_id, None) is None else 0
        elif cmd == CONTROL_START_BLOCK:
            ret, sample = self._start(block_id, data[2] * 10, now_ms)
            if sample is not None:
                return [(CONTROL_CH, bytes((cmd, block_id, ret))), (LOG_CH, sample)]
        elif cmd == CONTROL_START_BLOCK_V2:
            (period,) = struct.unpack_from("<H", data, 2)
            ret, sample = self._start(block_id, period, now_ms)
            if sample is not None:
                return [(CONTROL_CH, bytes((cmd, block_id, ret))), (LOG_CH, sample)]
        elif cmd == CONTROL_STOP_BLOCK:
            block = self.blocks.get(block_id)
            if block is None:
                ret = errno.ENOENT
            else:
                block.next_due_ms = math.inf
                ret = 0
        else:
            ret = errno.ENOEXEC
        return [(CONTROL_CH, bytes((cmd, block_id, ret)))]

    def _create(self, block_id: int, settings: bytes) -> int:
        if block_id in self.blocks:
            return errno.EEXIST
        if len(self.blocks) >= LOG_MAX_BLOCKS:
            return errno.ENOMEM
        self.blocks[block_id] = LogBlock(block_id)
        return self._append(block_id, settings)

    def _append(self, block_id: int, settings: bytes) -> int:
        block = self.blocks.get(block_id)
        if block is None:
            return errno.ENOENT
        for k in range(len(settings) // 3):
            fetch, var_id = struct.unpack_from("<BH", settings, 3 * k)
            fetch &= 0x0F
            if fetch not in LOG_TYPES:
                return errno.EINVAL  # the firmware trusts the client here; we refuse
            if block.length() + LOG_TYPES[fetch][1] > LOG_MAX_LEN:
                return errno.E2BIG
            if self.ops_used >= LOG_MAX_OPS:
                return errno.ENOMEM
            if var_id >= len(self.variables):
                return errno.ENOENT  # includes 0xFFFF raw-memory ops: the twin has no RAM to read
            block.ops.append((var_id, fetch))
        return 0

    def _start(self, block_id: int, period_ms: int, now_ms: float) -> tuple[int, bytes | None]:
        block = self.blocks.get(block_id)
        if block is None:
            return errno.ENOENT, None
        if period_ms > 0:
            block.period_ms = period_ms
            block.next_due_ms = now_ms + period_ms
            return 0, None
        block.next_due_ms = math.inf
        return 0, self.sample(block, now_ms)  # single shot

    def sample(self, block: LogBlock, now_ms: float) -> bytes:
        """One data payload of ``block`` stamped with ``now_ms`` (24-bit wrap)."""
        ts = int(now_ms) & 0xFFFFFF
        out = bytearray((block.ident & 0xFF, ts & 0xFF, (ts >> 8) & 0xFF, (ts >> 16) & 0xFF))
        for var_id, fetch in block.ops:
            chunk = _to_wire(self.variables[var_id].getter(), self._stored_float[var_id], fetch)
            if len(out) + len(chunk) > 30:
                break  # appendToPacket: drop this and the following items
            out += chunk
        self.samples_sent += 1
        return bytes(out)

    def due(self, now_ms: float) -> list[bytes]:
        """Data payloads of every running block whose period has elapsed at ``now_ms``."""
        out = []
        for block in self.blocks.values():
            if now_ms >= block.next_due_ms:
                out.append(self.sample(block, now_ms))
                block.next_due_ms += block.period_ms
                if block.next_due_ms <= now_ms:  # fell behind (e.g. a stall): resynchronise
                    block.next_due_ms = now_ms + block.period_ms
        return out
