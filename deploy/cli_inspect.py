"""``quadhil inspect F``: the contract, provenance, tensors and sha256 of a .tflite policy, read
without TensorFlow and without running it."""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from deploy.errors import PolicyFileError
from deploy.metadata import check_tensors, read_policy_metadata
from sim.report import emit_json


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil inspect``."""
    parser.add_argument("file", help="a .tflite exported by quadhil export")
    parser.add_argument("--json", action="store_true", help="print one JSON object (spec, provenance, tensors)")


def describe(path: str | Path) -> dict:
    """Everything ``inspect`` reports, as a plain dict."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyFileError(f"cannot read {path}: {exc}") from None
    meta = read_policy_metadata(data, str(path))
    problems = []
    try:
        check_tensors(meta, str(path))
    except PolicyFileError as exc:
        problems.append(str(exc))
    return {
        "file": str(path), "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data),
        "spec": meta.spec.to_dict(), "provenance": meta.provenance,
        "inputs": [asdict(t) for t in meta.model.inputs], "outputs": [asdict(t) for t in meta.model.outputs],
        "metadata_entries": sorted(meta.model.metadata), "tflite_schema_version": meta.model.schema_version,
        "weights_sha256": meta.model.weights_sha256, "problems": problems,
    }


def run(args: argparse.Namespace) -> int:
    """Print the description; exit 2 if the file is not a usable quadhil policy."""
    d = describe(args.file)
    spec, prov = d["spec"], d["provenance"]
    print(f"{d['file']}  ({d['size_bytes']} bytes)")
    print(f"  sha256        {d['sha256']}")
    print(f"  vehicle       {spec['vehicle']}   action mode {spec['action_mode']}   "
          f"{spec['control_rate_hz']:g} Hz   layout {spec['layout']} (spec v{spec['version']})")
    obs = ", ".join(f"{f['name']}[{f['size']}]" for f in spec["observation"])
    print(f"  observation   {obs}")
    for role in ("inputs", "outputs"):
        for t in d[role]:
            q = f" scale={t['scale']} zero_point={t['zero_point']}" if t["scale"] else ""
            print(f"  {role[:-1]:13s} {t['name']}  {t['dtype']} shape {list(t['shape_signature'])}{q}")
    for key in ("quantization", "run", "keras_sha256", "git_commit", "git_dirty", "export_time_utc",
                "quadhil_version", "tensorflow_version"):
        if key in prov:
            print(f"  {key:13s} {prov[key]}")
    if "parity" in prov:
        p = prov["parity"]
        print(f"  parity        max |diff| {p['max_abs_diff']:.3g} over {p['n_obs']} obs (tolerance {p['tolerance']:g})")
    if "closed_loop" in prov:
        c = prov["closed_loop"]
        print(f"  closed loop   success keras {c['keras_success']:.1%}, tflite {c['tflite_success']:.1%} "
              f"over {c['episodes']} episodes")
    for problem in d["problems"]:
        print(f"  PROBLEM       {problem}")
    if args.json:
        emit_json(d)
    else:
        print("  spec JSON     " + json.dumps(spec, sort_keys=True))
    return 2 if d["problems"] else 0
