"""The PX4 parameters a ctbr policy was trained for: derived from the vehicle file, written as a
QGroundControl .params file by ``quadhil export``, and the rules the bridge refuses by."""

from __future__ import annotations

import pytest

from deploy import px4_params
from sim.contract import default_spec
from sim.errors import QuadhilError
from sim.vehicle import load_vehicle

X500 = load_vehicle("x500")
PP = px4_params.policy_params(default_spec(X500), X500)
PX4_GZ_X500 = {"THR_MDL_FAC": 0.0, "MPC_THR_HOVER": 0.60, "HTE_THR_RANGE": 0.2, "MPC_USE_HTE": 1}


def _vehicle(**changes):
    return {**PP.values, **PX4_GZ_X500, **changes}


def test_the_trained_values_come_from_the_vehicle_file():
    assert PP.values["MC_ROLLRATE_P"] == pytest.approx(0.15) and PP.values["MC_YAWRATE_I"] == pytest.approx(0.1)
    assert PP.values["THR_MDL_FAC"] == 1.0  # the gz x500's thrust is 8.55 u^2: purely quadratic
    assert PP.values["MPC_THR_HOVER"] == pytest.approx(0.574, abs=1e-3)
    assert px4_params.thrust_setpoint_for(PP.hover_fraction, 0.0, X500) == pytest.approx(0.757, abs=1e-3)


def test_px4s_gz_x500_defaults_are_flyable_and_each_mismatch_is_named_with_both_values():
    assert px4_params.check(PP, _vehicle(), X500) == []
    problems = px4_params.check(PP, _vehicle(MC_PITCHRATE_D=0.006, MPC_THR_HOVER=0.5), X500)
    assert any(p.startswith("MC_PITCHRATE_D is 0.006 on the vehicle; the policy was trained with 0.003") for p in problems)
    assert any("MPC_THR_HOVER is 0.5" in p and "0.757" in p and "0.30..0.70" in p for p in problems)
    assert len(problems) == 2


def test_without_the_hover_thrust_estimator_hover_must_be_close():
    assert px4_params.check(PP, _vehicle(MPC_USE_HTE=0, MPC_THR_HOVER=0.74), X500) == []
    assert px4_params.check(PP, _vehicle(MPC_USE_HTE=0, MPC_THR_HOVER=0.60), X500) != []


def test_an_unanswered_parameter_is_a_refusal():
    actual = _vehicle()
    del actual["MC_ROLLRATE_I"]
    assert any("did not report MC_ROLLRATE_I" in p for p in px4_params.check(PP, actual, X500))


def test_the_params_file_is_qgroundcontrols_format_and_reads_back():
    text = px4_params.format_qgc_params(PP.values, comment="x")
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert "# Vehicle-Id Component-Id Name Value Type" in text.splitlines()
    assert all(len(ln.split("\t")) == 5 for ln in lines)
    assert "1\t1\tTHR_MDL_FAC\t1.0\t9" in lines
    assert px4_params.parse_qgc_params(text) == pytest.approx(PP.values, rel=1e-6)
    with pytest.raises(QuadhilError, match="5 tab-separated"):
        px4_params.parse_qgc_params("1 1 X 1 9\n")


def test_a_crazyflie_has_no_px4_parameters():
    cf = load_vehicle("crazyflie")
    with pytest.raises(px4_params.Px4ParamError, match="does not run PX4"):
        px4_params.policy_params(default_spec(cf), cf)


def test_quadhil_export_writes_the_params_file_next_to_the_tflite(tmp_path):
    """The command line, on a run directory holding a freshly initialised x500 ctbr actor (what it
    learned does not change the parameters; a training run here cost two TensorFlow start-ups)."""
    import subprocess
    import sys

    from tests.firmware_bridge.onboard_support import actor_run_dir

    run = tmp_path / "run"
    actor_run_dir(run, vehicle_id="x500", action_mode="ctbr")
    tflite = tmp_path / "policy.tflite"
    proc = subprocess.run([sys.executable, "-m", "quadhil", "export", str(run), "--out", str(tflite),
                           "--parity-obs", "200", "--episodes", "5"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    params = tflite.with_suffix(".params")
    assert params.exists()
    assert px4_params.parse_qgc_params(params.read_text()) == pytest.approx(PP.values, rel=1e-6)
