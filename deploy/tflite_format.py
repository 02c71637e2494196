"""A minimal, TensorFlow-free reader of the TFLite flatbuffer: the parts quadhil needs.

Reads ``Model.metadata`` (name -> bytes of the referenced buffer), ``Model.buffers`` and the
first subgraph's input/output tensors (name, shape, type, quantization), with a bounds check on
every offset so a truncated or corrupt file raises :class:`PolicyFileError` instead of reading
garbage. Field numbers follow tensorflow/compiler/mlir/lite/schema/schema.fbs (``table Model``,
``table SubGraph``, ``table Tensor``, ``table Buffer``, ``table Metadata``,
``table QuantizationParameters``); the flatbuffer binary layout is the one documented in
google/flatbuffers docs/source/internals.md (little-endian; root uoffset, then the file
identifier "TFL3"; tables point to a vtable through a signed offset; vectors are a uint32
length then elements).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from deploy.errors import PolicyFileError

FILE_IDENTIFIER = b"TFL3"

# schema.fbs field indices (vtable slot = 4 + 2 * index)
_MODEL_VERSION, _MODEL_SUBGRAPHS, _MODEL_BUFFERS, _MODEL_METADATA = 0, 2, 4, 6
_SUBGRAPH_TENSORS, _SUBGRAPH_INPUTS, _SUBGRAPH_OUTPUTS = 0, 1, 2
_TENSOR_SHAPE, _TENSOR_TYPE, _TENSOR_NAME, _TENSOR_QUANT, _TENSOR_SHAPE_SIGNATURE = 0, 1, 3, 4, 7
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_QUANT_SCALE, _QUANT_ZERO_POINT = 2, 3

# schema.fbs enum TensorType
TENSOR_TYPES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
    7: "int16", 8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64",
    13: "resource", 14: "variant", 15: "uint32", 16: "uint16", 17: "int4",
}


@dataclass(frozen=True)
class TensorInfo:
    """An input or output tensor of the model's first subgraph."""

    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]  # -1 marks a dynamic (batch) dimension
    dtype: str
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()


@dataclass
class ModelInfo:
    """What quadhil reads from a .tflite without an interpreter."""

    schema_version: int
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    metadata: dict[str, bytes] = field(default_factory=dict)
    metadata_spans: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (offset, length)
    weights_sha256: str = ""  # over every buffer no metadata entry refers to (see weights_digest)
    n_buffers: int = 0
    buffer_spans: list[tuple[int, int]] = field(default_factory=list)  # (byte offset, length) per buffer


class _Reader:
    """Bounds-checked access to a flatbuffer in memory."""

    def __init__(self, data: bytes):
        self.buf = memoryview(data)
        self.n = len(data)

    def _need(self, pos: int, size: int, what: str) -> None:
        if pos < 0 or pos + size > self.n:
            raise PolicyFileError(
                f"not a valid .tflite: {what} at byte {pos} lies outside the {self.n}-byte file "
                "(truncated or corrupt)")

    def u8(self, pos: int) -> int:
        self._need(pos, 1, "byte")
        return self.buf[pos]

    def u16(self, pos: int) -> int:
        self._need(pos, 2, "uint16")
        return struct.unpack_from("<H", self.buf, pos)[0]

    def i32(self, pos: int) -> int:
        self._need(pos, 4, "int32")
        return struct.unpack_from("<i", self.buf, pos)[0]

    def u32(self, pos: int) -> int:
        self._need(pos, 4, "uint32")
        return struct.unpack_from("<I", self.buf, pos)[0]

    def u64(self, pos: int) -> int:
        self._need(pos, 8, "uint64")
        return struct.unpack_from("<Q", self.buf, pos)[0]

    def field_pos(self, table: int, index: int) -> int | None:
        """Absolute position of field ``index`` of the table at ``table``, or None if absent."""
        vtable = table - self.i32(table)
        vt_size = self.u16(vtable)
        if vt_size < 4 or vt_size % 2:
            raise PolicyFileError(f"not a valid .tflite: malformed vtable at byte {vtable} (corrupt)")
        slot = 4 + 2 * index
        if slot + 2 > vt_size:
            return None
        off = self.u16(vtable + slot)
        return table + off if off else None

    def deref(self, pos: int) -> int:
        return pos + self.u32(pos)

    def table(self, table: int, index: int) -> int | None:
        pos = self.field_pos(table, index)
        return None if pos is None else self.deref(pos)

    def vector(self, table: int, index: int, elem_size: int) -> tuple[int, int]:
        """(start, length) of a vector field; (0, 0) if absent."""
        pos = self.field_pos(table, index)
        if pos is None:
            return 0, 0
        vec = self.deref(pos)
        length = self.u32(vec)
        self._need(vec + 4, length * elem_size, "vector")
        return vec + 4, length

    def tables(self, table: int, index: int) -> list[int]:
        start, length = self.vector(table, index, 4)
        return [self.deref(start + 4 * i) for i in range(length)]

    def scalars(self, table: int, index: int, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        start, length = self.vector(table, index, size)
        return struct.unpack_from(f"<{length}{fmt}", self.buf, start) if length else ()

    def bytes_(self, table: int, index: int) -> bytes:
        start, length = self.vector(table, index, 1)
        return bytes(self.buf[start:start + length])

    def string(self, table: int, index: int) -> str:
        raw = self.bytes_(table, index)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyFileError("not a valid .tflite: a name is not UTF-8 (corrupt)") from None

    def scalar(self, table: int, index: int, fmt: str, default):
        pos = self.field_pos(table, index)
        if pos is None:
            return default
        size = struct.calcsize("<" + fmt)
        self._need(pos, size, "scalar")
        return struct.unpack_from("<" + fmt, self.buf, pos)[0]


def _buffer_span(r: _Reader, buf_table: int) -> tuple[int, int]:
    """(byte offset, length) of a ``Buffer``'s contents: inline ``data``, or ``offset``/``size``
    into the file (models over 2 GB store weights after the flatbuffer); (0, 0) if empty."""
    start, length = r.vector(buf_table, _BUFFER_DATA, 1)
    if length:
        return start, length
    offset = r.scalar(buf_table, _BUFFER_OFFSET, "Q", 0)
    size = r.scalar(buf_table, _BUFFER_SIZE, "Q", 0)
    if offset > 1 and size:
        r._need(offset, size, "external buffer")
        return offset, size
    return 0, 0


def _buffer_bytes(r: _Reader, buf_table: int) -> bytes:
    start, length = _buffer_span(r, buf_table)
    return bytes(r.buf[start:start + length])


def _tensor(r: _Reader, t: int) -> TensorInfo:
    type_code = r.scalar(t, _TENSOR_TYPE, "b", 0)
    quant = r.table(t, _TENSOR_QUANT)
    scale = r.scalars(quant, _QUANT_SCALE, "f") if quant is not None else ()
    zero = r.scalars(quant, _QUANT_ZERO_POINT, "q") if quant is not None else ()
    shape = tuple(r.scalars(t, _TENSOR_SHAPE, "i"))
    sig = tuple(r.scalars(t, _TENSOR_SHAPE_SIGNATURE, "i")) or shape
    return TensorInfo(
        name=r.string(t, _TENSOR_NAME), shape=shape, shape_signature=sig,
        dtype=TENSOR_TYPES.get(type_code, f"unknown({type_code})"),
        scale=tuple(float(s) for s in scale), zero_point=tuple(int(z) for z in zero),
    )


def read_model(data: bytes) -> ModelInfo:
    """Parse what quadhil needs from .tflite bytes; :class:`PolicyFileError` if it is not one."""
    if len(data) < 8:
        raise PolicyFileError(f"not a .tflite file: only {len(data)} bytes (truncated or empty)")
    if bytes(data[4:8]) != FILE_IDENTIFIER:
        raise PolicyFileError(
            f"not a .tflite file: file identifier is {bytes(data[4:8])!r}, expected {FILE_IDENTIFIER!r} (corrupt?)")
    r = _Reader(data)
    try:
        root = r.deref(0)
        version = r.scalar(root, _MODEL_VERSION, "I", 0)
        buffers = r.tables(root, _MODEL_BUFFERS)
        metadata: dict[str, bytes] = {}
        metadata_spans: dict[str, tuple[int, int]] = {}
        meta_buffers: set[int] = set()
        for m in r.tables(root, _MODEL_METADATA):
            name = r.string(m, _METADATA_NAME)
            idx = r.scalar(m, _METADATA_BUFFER, "I", 0)
            if idx >= len(buffers):
                raise PolicyFileError(f"not a valid .tflite: metadata {name!r} points to buffer {idx} "
                                      f"of {len(buffers)} (corrupt)")
            metadata[name] = _buffer_bytes(r, buffers[idx])
            metadata_spans[name] = _buffer_span(r, buffers[idx])
            meta_buffers.add(idx)
        subgraphs = r.tables(root, _MODEL_SUBGRAPHS)
        if not subgraphs:
            raise PolicyFileError("not a valid .tflite: the model has no subgraph")
        sg = subgraphs[0]
        tensors = r.tables(sg, _SUBGRAPH_TENSORS)

        def pick(index: int) -> list[TensorInfo]:
            out = []
            for i in r.scalars(sg, index, "i"):
                if not 0 <= i < len(tensors):
                    raise PolicyFileError(f"not a valid .tflite: tensor index {i} out of range (corrupt)")
                out.append(_tensor(r, tensors[i]))
            return out

        inputs, outputs = pick(_SUBGRAPH_INPUTS), pick(_SUBGRAPH_OUTPUTS)
        digest = hashlib.sha256()
        spans = [_buffer_span(r, b) for b in buffers]
        for i, (start, length) in enumerate(spans):
            if i in meta_buffers:
                continue
            content = r.buf[start:start + length]
            digest.update(struct.pack("<IQ", i, len(content)))
            digest.update(content)
    except (struct.error, RecursionError, IndexError) as exc:  # belt and braces: _need guards reads
        raise PolicyFileError(f"not a valid .tflite: {exc} (corrupt)") from None
    return ModelInfo(schema_version=version, inputs=inputs, outputs=outputs, metadata=metadata,
                     metadata_spans=metadata_spans,
                     weights_sha256=digest.hexdigest(), n_buffers=len(buffers), buffer_spans=spans)
