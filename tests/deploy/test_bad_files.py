"""A file that is not a usable quadhil policy is refused at load time, naming the problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deploy.metadata import METADATA_NAME, embed_metadata, make_document
from deploy.runtime import Policy, PolicyFileError
from deploy.tflite_format import read_model
from sim.contract import default_spec
from sim.vehicle import load_vehicle


@pytest.fixture(scope="module")
def good(policy_path) -> bytes:
    return Path(policy_path).read_bytes()


@pytest.fixture(scope="module")
def bare(keras_actor) -> bytes:
    """The converter's own output: a valid .tflite without the quadhil entry."""
    from deploy.export import convert

    return convert(keras_actor[0], "none")


def _load(data: bytes, tmp_path: Path) -> Policy:
    path = tmp_path / "policy.tflite"
    path.write_bytes(data)
    return Policy.load(path)


def test_the_good_file_loads(good, tmp_path):
    assert _load(good, tmp_path).spec.vehicle == "crazyflie"


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(PolicyFileError, match="does not exist"):
        Policy.load(tmp_path / "nope.tflite")


@pytest.mark.parametrize("keep", [0, 7, 100, 0.5, 0.9, -1])
def test_a_truncated_file_is_refused(good, tmp_path, keep):
    n = int(len(good) * keep) if isinstance(keep, float) else (len(good) + keep if keep < 0 else keep)
    with pytest.raises(PolicyFileError, match="truncated|not a .tflite|not a valid|cannot load"):
        _load(good[:n], tmp_path)


def test_a_wrong_file_identifier_is_refused(good, tmp_path):
    data = bytearray(good)
    data[4:8] = b"XXXX"
    with pytest.raises(PolicyFileError, match="file identifier"):
        _load(bytes(data), tmp_path)


def test_a_garbage_root_offset_is_refused(good, tmp_path):
    data = bytearray(good)
    data[0:4] = (len(good) * 3).to_bytes(4, "little")
    with pytest.raises(PolicyFileError, match="outside"):
        _load(bytes(data), tmp_path)


def test_a_changed_weight_byte_is_detected(good, tmp_path):
    model = read_model(good)
    start, length = max(model.buffer_spans, key=lambda span: span[1])  # the largest weight tensor
    data = bytearray(good)
    data[start + length // 2] ^= 0x5A
    with pytest.raises(PolicyFileError, match="weights differ"):
        _load(bytes(data), tmp_path)


def test_corrupt_metadata_bytes_are_refused(good, tmp_path):
    data = bytearray(good)
    at = bytes(data).find(b'"format"')
    assert at > 0
    data[at:at + 4] = b"\xff\xfe{{"
    with pytest.raises(PolicyFileError, match="not valid JSON"):
        _load(bytes(data), tmp_path)


def test_a_tflite_without_a_quadhil_spec_is_refused(bare, tmp_path):
    with pytest.raises(PolicyFileError, match="without a quadhil policy spec"):
        _load(bare, tmp_path)


def test_an_unknown_spec_major_version_is_refused(bare, tmp_path):
    spec = default_spec(load_vehicle("crazyflie"))
    doc = json.loads(make_document(spec, {}))
    doc["spec"]["version"] = "2.0"
    data = embed_metadata(bare, json.dumps(doc).encode())
    with pytest.raises(PolicyFileError, match="version '2.0' is not supported"):
        _load(data, tmp_path)


def test_an_unknown_document_format_version_is_refused(bare, tmp_path):
    doc = json.loads(make_document(default_spec(load_vehicle("crazyflie")), {}))
    doc["format_version"] = 99
    with pytest.raises(PolicyFileError, match="format_version"):
        _load(embed_metadata(bare, json.dumps(doc).encode()), tmp_path)


def test_tensor_shapes_that_disagree_with_the_spec_are_refused(bare, tmp_path):
    # a spec with two actions of history has obs_dim 26; the model takes 22
    spec = default_spec(load_vehicle("crazyflie"), action_history=2)
    data = embed_metadata(bare, make_document(spec, {}))
    with pytest.raises(PolicyFileError, match=r"shape \[1, 22\].*\(batch, 26\)"):
        _load(data, tmp_path)


def test_embedding_replaces_an_existing_entry_instead_of_adding_one(good):
    spec = default_spec(load_vehicle("crazyflie"))
    again = embed_metadata(good, make_document(spec, {"note": "second"}))
    model = read_model(again)
    assert list(model.metadata).count(METADATA_NAME) == 1
    assert json.loads(model.metadata[METADATA_NAME])["provenance"] == {"note": "second"}
    assert model.weights_sha256 == read_model(good).weights_sha256


def test_any_changed_byte_is_refused(good):
    # the document's content digest covers every byte of the file: 300 seeded corruptions of 1-3
    # bytes anywhere (structure, shapes, quantization, op options, JSON) are all refused at load
    rng = np.random.default_rng(2026)
    for _ in range(300):
        data = bytearray(good)
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(0, len(data)))
            data[at] = (data[at] + int(rng.integers(1, 256))) % 256  # always a different value
        with pytest.raises(PolicyFileError):
            Policy.from_bytes(bytes(data))


def test_a_document_without_a_content_digest_is_refused(bare, tmp_path):
    doc = json.loads(make_document(default_spec(load_vehicle("crazyflie")), {}))
    del doc["content_sha256"]
    with pytest.raises(PolicyFileError, match="no content digest"):
        _load(embed_metadata(bare, json.dumps(doc).encode()), tmp_path)
