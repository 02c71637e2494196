"""The px4-nn contract and export: PX4 mc_nn_control's inputs in its order and frames, a network
of FullyConnected/Relu only, and files PX4's build takes as they are."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quadhil.cli import main
from sim.contract import SPEC_LAYOUTS, SpecError, observe
from sim.frames import enu_to_ned, flu_to_frd, quat_enu_flu_to_ned_frd, quat_to_rotmat
from sim.vehicle import load_vehicle
from tests.firmware_bridge.onboard_support import make_actor


def _px4_populate_input_tensor(pos_ned, vel_ned, q_ned_frd, omega_frd, setpoint_ned):
    """PX4-Autopilot src/modules/mc_nn_control/mc_nn_control.cpp PopulateInputTensor, in numpy:
    the same two frame_transf matrices and the same element order."""
    f1 = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])
    f2 = np.array([[0, 1.0, 0], [-1.0, 0, 0], [0, 0, 1.0]])
    pos = f1 @ f2 @ pos_ned
    sp = f1 @ f2 @ setpoint_ned
    vel = f1 @ f2 @ vel_ned
    att = f1 @ (f2 @ quat_to_rotmat(q_ned_frd)) @ f1.T
    ang = f1 @ omega_frd
    return np.concatenate([sp - pos, att[0, :], att[1, :], vel, ang])


def test_px4nn_spec_is_the_modules_15_inputs_motor_level_without_history():
    spec = SPEC_LAYOUTS["px4-nn"](load_vehicle("x500"), "motors", 200.0)
    assert spec.obs_dim == 15 and spec.action_history == 0 and spec.layout == "px4-nn"
    assert [f.name for f in spec.observation] == ["position_error_w", "rotation_matrix_rows01_wb", "velocity_w",
                                                  "omega_b"]
    with pytest.raises(SpecError, match="motors"):
        SPEC_LAYOUTS["px4-nn"](load_vehicle("x500"), "ctbr", 200.0)


def test_contract_observation_is_what_mc_nn_control_feeds_after_the_sign_flip():
    from deploy.export_px4nn import to_px4_inputs

    spec = SPEC_LAYOUTS["px4-nn"](load_vehicle("x500"), "motors", 200.0)
    rng = np.random.default_rng(4)
    for _ in range(200):
        pos, vel, target = rng.uniform(-2, 2, 3), rng.uniform(-3, 3, 3), rng.uniform(-1, 1, 3)
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        omega = rng.uniform(-5, 5, 3)
        ours = observe(pos[None], vel[None], q[None], omega[None], target[None], np.zeros((1, 0)), spec)
        px4 = _px4_populate_input_tensor(enu_to_ned(pos), enu_to_ned(vel), quat_enu_flu_to_ned_frd(q),
                                         flu_to_frd(omega), enu_to_ned(target))
        assert np.allclose(to_px4_inputs(ours, spec)[0], px4, atol=1e-5)


def test_px4_network_equals_the_actor_and_uses_only_the_modules_ops():
    from deploy.export import convert
    from deploy.export_px4nn import ALLOWED_OPS, px4_network, run_tflite, tflite_ops, to_px4_inputs

    actor, spec, _ = make_actor("x500", layout="px4-nn", control_rate_hz=200.0)
    tflite = convert(px4_network(actor, spec), "none")
    assert tflite_ops(tflite) <= ALLOWED_OPS
    obs = np.random.default_rng(5).normal(size=(2000, 15)).astype(np.float32) * 2
    diff = np.max(np.abs(run_tflite(tflite, to_px4_inputs(obs, spec)) - actor(obs).numpy()))
    assert diff <= 1e-5
    assert np.all(np.abs(actor(obs * 50).numpy()) <= 1.0 + 1e-5), "the actor's frozen clip bounds its actions"


def test_px4_rescale_follows_actions_rescale_hpp():
    from deploy.export_px4nn import px4_rescale

    # defaults MC_NN_THRST_COEF 1.2, MC_NN_MIN_RPM 1000, MC_NN_MAX_RPM 22000
    out = px4_rescale(np.array([-1.0, -2.0, 1.0, 5.0]), 1.2, 1000.0, 22000.0)
    assert out[0] == 0.0 and out[1] == 0.0  # below the minimum rpm the motor idles
    rpm = 60.0 * np.sqrt(2.0 / 1.2e-5)
    x = (rpm - 1000.0) / 21000.0
    assert out[2] == pytest.approx(min(1.0, 0.8 * x * x + 0.2 * x)) and out[3] == out[2]


def test_export_px4nn_writes_the_modules_files(tmp_path, capsys):
    actor, spec, _ = make_actor("x500", layout="px4-nn", control_rate_hz=200.0)
    run = tmp_path / "run"
    run.mkdir()
    actor.save(run / "actor_best.keras")
    (run / "config.json").write_text(json.dumps({"spec": spec.to_dict()}))
    out = tmp_path / "px4"
    assert main(["export", "--format", "px4-nn", str(run), "--out", str(out), "--parity-obs", "2000", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["max_abs_diff"] <= 1e-5 and set(figures["ops"]) <= {"FULLY_CONNECTED", "RELU", "ADD"}
    tflite = (out / "control_net.tflite").read_bytes()
    assert tflite[4:8] == b"TFL3"
    hpp = (out / "control_net.hpp").read_text()
    assert f"constexpr unsigned int control_net_tflite_size = {len(tflite)};" in hpp
    cpp = (out / "control_net.cpp").read_text()
    body = cpp[cpp.index("{") + 1:cpp.rindex("}")]
    assert bytes(int(b, 16) for b in body.replace("\n", "").replace("\t", "").split(",") if b.strip()) == tflite
    params = (out / "px4_params.txt").read_text()
    assert "param set MC_NN_MAX_RPM 9549" in params and "MC_NN_THRST_COEF" in params


def test_export_px4nn_refuses_a_default_layout_run(tmp_path, capsys):
    actor, spec, _ = make_actor("x500", action_mode="motors")
    run = tmp_path / "run"
    run.mkdir()
    actor.save(run / "actor_best.keras")
    (run / "config.json").write_text(json.dumps({"spec": spec.to_dict()}))
    assert main(["export", "--format", "px4-nn", str(run), "--out", str(tmp_path / "o")]) == 2
    assert "--layout px4-nn" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
