"""The quadhil entry inside a .tflite: the policy contract plus provenance, as one JSON document
stored in a ``Model.metadata`` entry named ``quadhil_policy`` (schema.fbs ``table Metadata``:
a name and the index of the ``Buffer`` that holds the bytes).

Reading (:func:`read_policy_metadata`) uses only :mod:`deploy.tflite_format`, no TensorFlow.
Writing (:func:`embed_metadata`) rebuilds the flatbuffer with the ``flatbuffers`` package and the
TFLite schema's generated Python object API (shipped by ai_edge_litert; the exporter falls back to
TensorFlow's copy): the
model is unpacked, one ``Buffer`` and one ``Metadata`` appended, and it is packed again. Buffer
indices of the weights do not change, so :attr:`ModelInfo.weights_sha256` of the rebuilt file
equals the digest of the converter's output, which the document records: a reader that finds a
different digest knows a weight byte changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from deploy.errors import PolicyFileError
from deploy.tflite_format import FILE_IDENTIFIER, ModelInfo, read_model
from sim.contract import PolicySpec, SpecError

METADATA_NAME = "quadhil_policy"
FORMAT = "quadhil-policy"
FORMAT_VERSION = 1
# The document's "content_sha256" is the sha256 of the whole file with these 64 hex digits written
# as zeros: every byte of the file (structure, tensor shapes, quantization parameters, op options,
# the JSON itself) is covered, not only what this reader parses.
_DIGEST_KEY = b'"content_sha256": "'
_UNSEALED = b"0" * 64


@dataclass
class PolicyMetadata:
    """What a quadhil .tflite carries about itself."""

    spec: PolicySpec
    provenance: dict
    model: ModelInfo


def make_document(spec: PolicySpec, provenance: dict) -> bytes:
    """The JSON document stored in the file (UTF-8)."""
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "spec": spec.to_dict(), "provenance": provenance,
           "content_sha256": _UNSEALED.decode()}
    return json.dumps(doc, sort_keys=True).encode("utf-8")


def _digest_position(model: ModelInfo) -> int | None:
    """Byte offset in the file of the document's content_sha256 hex digits, or None."""
    span = model.metadata_spans.get(METADATA_NAME)
    raw = model.metadata.get(METADATA_NAME, b"")
    k = raw.find(_DIGEST_KEY)
    if span is None or k < 0 or k + len(_DIGEST_KEY) + 64 > len(raw):
        return None
    return span[0] + k + len(_DIGEST_KEY)


def _content_digest(data: bytes, at: int) -> str:
    blank = bytearray(data)
    blank[at:at + 64] = _UNSEALED
    return hashlib.sha256(blank).hexdigest()


def seal(data: bytes) -> bytes:
    """Write the file's content digest into its quadhil document (in place: same length)."""
    at = _digest_position(read_model(data))
    if at is None:
        return data
    out = bytearray(data)
    out[at:at + 64] = _content_digest(data, at).encode()
    return bytes(out)


def _schema():
    """The TFLite schema's generated object API (a pure-Python module over ``flatbuffers``) as
    ai_edge_litert ships it; the exporter passes TensorFlow's copy where LiteRT is absent."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise PolicyFileError("writing quadhil metadata needs ai-edge-litert's TFLite schema module "
                              "(or pass schema=)") from None
    return schema


def embed_metadata(tflite: bytes, document: bytes, name: str = METADATA_NAME, schema=None) -> bytes:
    """Return ``tflite`` with ``document`` stored as metadata entry ``name`` (an existing entry of
    that name is replaced). ``schema``: a ``schema_py_generated`` module (default: LiteRT's)."""
    import flatbuffers
    import numpy as np

    schema = schema or _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    if model.buffers is None:
        model.buffers = []
    if model.metadata is None:
        model.metadata = []
    buf = schema.BufferT()
    buf.data = np.frombuffer(document, dtype=np.uint8)
    existing = [m for m in model.metadata if m.name in (name, name.encode())]
    if existing:
        model.buffers[existing[0].buffer] = buf
    else:
        model.buffers.append(buf)
        meta = schema.MetadataT()
        meta.name = name
        meta.buffer = len(model.buffers) - 1
        model.metadata.append(meta)
    builder = flatbuffers.Builder(len(tflite) + len(document) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return seal(bytes(builder.Output()))


def read_policy_metadata(data: bytes, source: str = "file") -> PolicyMetadata:
    """Spec and provenance embedded in .tflite bytes, validated; :class:`PolicyFileError` naming
    the problem otherwise (no quadhil entry, bad JSON, unknown spec version, weights changed)."""
    model = read_model(data)
    raw = model.metadata.get(METADATA_NAME)
    if raw is None:
        names = ", ".join(sorted(model.metadata)) or "none"
        raise PolicyFileError(
            f"{source} is a .tflite without a quadhil policy spec (metadata entries: {names}); "
            "export it with `quadhil export`")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolicyFileError(f"{source}: the embedded quadhil entry is not valid JSON ({exc}); corrupt file") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PolicyFileError(f"{source}: the embedded quadhil entry is not a {FORMAT} document")
    if int(doc.get("format_version", -1)) != FORMAT_VERSION:
        raise PolicyFileError(f"{source}: quadhil entry format_version {doc.get('format_version')!r} "
                              f"is not supported (this quadhil reads {FORMAT_VERSION})")
    try:
        spec = PolicySpec.from_dict(doc.get("spec"))
    except SpecError as exc:
        raise PolicyFileError(f"{source}: {exc}") from None
    provenance = doc.get("provenance") or {}
    expected = provenance.get("weights_sha256")
    if expected and expected != model.weights_sha256:
        raise PolicyFileError(
            f"{source}: the weights differ from those exported (weights digest {model.weights_sha256[:12]}..., "
            f"recorded {expected[:12]}...): corrupt file")
    recorded = doc.get("content_sha256")
    at = _digest_position(model)
    if not isinstance(recorded, str) or len(recorded) != 64 or at is None:
        raise PolicyFileError(f"{source}: the quadhil entry has no content digest (corrupt, or not written by "
                              "quadhil export)")
    actual = _content_digest(data, at)
    if actual != recorded:
        raise PolicyFileError(f"{source}: the file's bytes differ from those exported (content digest "
                              f"{actual[:12]}..., recorded {recorded[:12]}...): corrupt or edited file")
    return PolicyMetadata(spec=spec, provenance=provenance, model=model)


def check_tensors(meta: PolicyMetadata, source: str = "file") -> None:
    """Raise :class:`PolicyFileError` unless the model has one float32 input of (batch, obs_dim)
    and one float32 output of (batch, 4), as the spec says."""
    spec, model = meta.spec, meta.model
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise PolicyFileError(f"{source}: the model has {len(model.inputs)} inputs and {len(model.outputs)} "
                              "outputs; a policy has exactly one of each")
    for role, t, dim in (("input", model.inputs[0], spec.obs_dim), ("output", model.outputs[0], spec.action_dim)):
        if len(t.shape) != 2 or t.shape[1] != dim:
            raise PolicyFileError(
                f"{source}: model {role} tensor {t.name!r} has shape {list(t.shape)} but the spec "
                f"({spec.vehicle}, {spec.layout} layout) needs (batch, {dim})")
        if t.dtype != "float32":
            raise PolicyFileError(f"{source}: model {role} tensor {t.name!r} is {t.dtype}; quadhil policies "
                                  "take and give float32")
