"""quadhil export / inspect as a user runs them: figures, JSON last line, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy import cli_export
from deploy.errors import ExportRefused
from deploy.export import export_policy
from quadhil.cli import main

from .conftest import make_run


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_export_runs_both_gates_and_reports_them(run_dir, tmp_path, capsys):
    out = tmp_path / "p.tflite"
    rc = main(["export", str(run_dir), "--out", str(out), "--episodes", "4", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    fig = _last_json(captured.out)
    assert out.exists() and fig["written"] is True
    assert fig["max_abs_diff"] <= 1e-5 and fig["parity_obs"] >= 10_000
    assert fig["episodes"] == 4
    assert abs(fig["closed_loop_success"] - fig["keras_success"]) <= 0.02
    assert len(fig["sha256"]) == 64
    assert "parity (none)" in captured.out


def test_inspect_prints_the_embedded_spec(policy_path, run_dir, capsys):
    from sim.contract import PolicySpec
    from train.networks import load_run_spec

    rc = main(["inspect", str(policy_path), "--json"])
    d = _last_json(capsys.readouterr().out)
    assert rc == 0
    assert PolicySpec.from_dict(d["spec"]) == load_run_spec(run_dir)[0]
    assert d["inputs"][0]["shape_signature"] == [-1, 22] and d["inputs"][0]["dtype"] == "float32"
    assert d["outputs"][0]["shape_signature"] == [-1, 4]
    assert d["provenance"]["quantization"] == "none" and len(d["sha256"]) == 64


def test_inspect_of_a_non_policy_exits_2_naming_the_problem(tmp_path, capsys):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"not a model at all")
    assert main(["inspect", str(bad)]) == 2
    assert "file identifier" in capsys.readouterr().err


def test_int8_export_that_misses_the_parity_gate_writes_nothing(tmp_path):
    # a full-scale random tanh actor loses ~0.16 to int8 on crash-state observations (> 0.05)
    run = make_run(tmp_path / "wild", seed=1, weight_scale=1.0)
    out = tmp_path / "wild.tflite"
    with pytest.raises(ExportRefused, match="parity") as info:
        export_policy(run, out, "int8", parity_obs=2_000, calibration_obs=1_000, episodes=0, log=lambda *a: None)
    assert info.value.result.parity.max_abs_diff > 0.05
    assert not out.exists()


def test_other_formats_dispatch_and_say_when_missing(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(cli_export.FORMATS, "c", ("deploy.export_c_not_in_this_build", "export_c"))
    rc = main(["export", str(run_dir), "--format", "c", "--out", str(tmp_path / "x.c")])
    assert rc == 2
    assert "not available" in capsys.readouterr().err


def test_export_of_a_directory_that_is_not_a_run_exits_2(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "x.tflite")]) == 2
    assert "not a training run" in capsys.readouterr().err
