"""quadhil crosscheck rotorpy: the path into rotorpy is right (a hand-written PD hovers through it,
and hovers no longer when one convention is flipped), and the command reports what it flew."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("rotorpy", reason="the crosscheck extra (rotorpy) is not installed")

from scipy.spatial.transform import Rotation  # noqa: E402 - rotorpy's own quaternion convention

import deploy.crosscheck_rotorpy as cr  # noqa: E402
from sim.contract import default_spec  # noqa: E402
from sim.env import HoverTaskConfig  # noqa: E402
from sim.frames import quat_from_euler, quat_to_rotmat  # noqa: E402
from sim.vehicle import load_vehicle  # noqa: E402

CF = load_vehicle("crazyflie")
X500 = load_vehicle("x500")


def _pd_check(vehicle, control_rate_hz, episodes, seed=0, jobs=2, noise=False, task=None):
    spec = default_spec(vehicle, control_rate_hz=control_rate_hz)
    pd = cr.pd_hover_for(spec, cr.rotorpy_airframe(vehicle))
    return cr.crosscheck(lambda: pd, spec, episodes=episodes, seed=seed, jobs=jobs, noise=noise, task=task)


def test_rotorpy_quaternions_are_scalar_last_body_to_world():
    q = quat_from_euler(np.array([0.3]), np.array([-0.5]), np.array([1.2]))[0]  # w, x, y, z
    assert Rotation.from_quat(cr.quat_wxyz_to_xyzw(q)).as_matrix() == pytest.approx(quat_to_rotmat(q))
    assert cr.quat_xyzw_to_wxyz(cr.quat_wxyz_to_xyzw(q)) == pytest.approx(q)


def test_pd_hover_recovers_every_throw_in_rotorpys_crazyflie():
    """The path check the issue asks for: observation from rotorpy's state through
    sim.contract.observe, ctbr action through act_to_command into rotorpy's cmd_ctbr."""
    r = _pd_check(CF, 100.0, episodes=6).summary()
    assert r["success_rate"] == 1.0 and r["crash_rate"] == 0.0
    assert r["rmse_m"] < 0.02


def test_pd_hover_recovers_every_throw_in_rotorpys_multirotor_with_x500_parameters():
    r = _pd_check(X500, 50.0, episodes=4).summary()
    assert r["success_rate"] == 1.0 and r["rmse_m"] < 0.02


@pytest.mark.parametrize("flip", ["quaternion scalar-first", "body rates negated"])
def test_the_pd_check_fails_when_one_convention_is_wrong(monkeypatch, flip):
    """The check can fail: hand rotorpy a scalar-first quaternion, or rates of the wrong sign."""
    if flip == "quaternion scalar-first":
        monkeypatch.setattr(cr, "quat_wxyz_to_xyzw", lambda q: np.asarray(q, dtype=np.float64))
        monkeypatch.setattr(cr, "quat_xyzw_to_wxyz", lambda q: np.asarray(q, dtype=np.float64))
    else:
        real = cr.act_to_command

        def negated(action, spec, vehicle):
            cmd = real(action, spec, vehicle)
            cmd.body_rate_b = -cmd.body_rate_b
            return cmd

        monkeypatch.setattr(cr, "act_to_command", negated)
    r = _pd_check(CF, 100.0, episodes=3, jobs=1).summary()
    assert r["success_rate"] == 0.0


def test_noise_is_seeded_per_episode_so_workers_do_not_change_results():
    short = HoverTaskConfig(episode_s=1.0, hold_s=0.5)  # the seeding does not depend on the length
    one = _pd_check(CF, 100.0, episodes=2, seed=5, jobs=1, noise=True, task=short)
    two = _pd_check(CF, 100.0, episodes=2, seed=5, jobs=2, noise=True, task=short)
    assert all(e.n_hold > 0 and e.sq_err_hold > 0 for e in one.episodes)  # a hold window was flown
    assert json.dumps(one.summary(), sort_keys=True) == json.dumps(two.summary(), sort_keys=True)  # NaN-safe
    assert [e.sq_err_hold for e in one.episodes] == [e.sq_err_hold for e in two.episodes]


def test_the_crazyflie_is_rotorpys_own_and_motors_map_by_position():
    af = cr.rotorpy_airframe(CF)
    from rotorpy.vehicles.crazyflie_params import quad_params

    assert af.quad_params["tau_m"] == quad_params["tau_m"] == 0.072
    assert af.thrust_to_weight == pytest.approx(1.954, abs=1e-3)
    # firmware M1 front-right (+x, -y) is rotorpy's r2; M2 rear-right r3; M3 rear-left r4; M4 r1
    assert af.motor_to_rotor.tolist() == [1, 2, 3, 0]
    dirs = np.asarray(quad_params["rotor_directions"])[af.motor_to_rotor]
    assert af.spin_agrees == bool(np.all(dirs == CF.spin_sign))


@pytest.mark.parametrize("vehicle", [CF, X500], ids=["crazyflie", "x500"])
def test_a_motor_command_pushes_rotorpys_body_the_way_quadhils_allocation_says(vehicle):
    """motors path: firmware motor i's thrust lands on rotorpy's rotor at its position, so roll
    and pitch torques agree with quadhil's allocation matrix (yaw follows each model's spin)."""
    from rotorpy.vehicles.multirotor import Multirotor

    from sim.contract import MotorCommand

    af = cr.rotorpy_airframe(vehicle)
    quad = Multirotor(af.quad_params, control_abstraction="cmd_motor_thrusts", aero=False)
    alloc = vehicle.allocation_matrix()
    for i in range(4):
        thrust = np.zeros((1, 4))
        thrust[0, i] = 0.5 * vehicle.max_thrust_n
        control = cr.rotorpy_control(MotorCommand(thrust_n=thrust, thrust_fraction=thrust / vehicle.max_thrust_n), af)
        speeds = quad.get_cmd_motor_speeds({"w": np.zeros(3), "q": np.array([0, 0, 0, 1.0])}, control)
        force, moment = quad.compute_body_wrench(np.zeros(3), speeds, np.zeros(3))
        assert force[2] == pytest.approx(thrust[0, i])
        assert np.array_equal(np.sign(moment[:2]), np.sign(alloc[1:3] @ thrust[0]))
        r = list(af.quad_params["rotor_pos"].values())[af.motor_to_rotor[i]]  # rotorpy's own arm
        assert moment[:2] == pytest.approx([r[1] * thrust[0, i], -r[0] * thrust[0, i]], rel=1e-9)
        rotor_dir = af.quad_params["rotor_directions"][af.motor_to_rotor[i]]
        assert np.sign(moment[2]) == rotor_dir


def test_x500_parameters_carry_the_vehicle_file():
    p = cr.x500_quad_params(X500)
    assert p["mass"] == X500.mass_kg and p["Izz"] == X500.inertia_kgm2[2]
    assert 4 * p["k_eta"] * p["rotor_speed_max"] ** 2 == pytest.approx(4 * X500.max_thrust_n)
    assert p["k_m"] / p["k_eta"] == pytest.approx(X500.torque_to_thrust_m)
    assert p["k_w"] * X500.inertia_kgm2 == pytest.approx(X500.rate_controller.kp_nm_per_rad_s)
    assert cr.rotorpy_airframe(X500).spin_agrees


def test_a_vehicle_rotorpy_cannot_stand_in_for_is_refused():
    from dataclasses import replace

    from sim.errors import QuadhilError

    with pytest.raises(QuadhilError, match="no rotorpy model"):
        cr.rotorpy_airframe(replace(CF, id="hexacopter"))


def test_crosscheck_command_reports_figures_and_json(policy_path, capsys):
    from quadhil.cli import main

    rc = main(["crosscheck", "rotorpy", "--model", str(policy_path), "--episodes", "2", "--noise", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    d = json.loads(out.strip().splitlines()[-1])
    assert d["simulator"] == "rotorpy" and d["episodes"] == 2 and d["noise"] is True
    assert d["vehicle"] == "crazyflie" and d["sim_rate_hz"] == 500.0
    assert 0.0 <= d["success_rate"] <= 1.0 and "as shipped" in d["vehicle_model"]


@pytest.mark.parametrize("argv, message", [
    (["--episodes", "0"], "--episodes must be >= 1"),
    (["--sim-rate-hz", "250"], "whole multiple"),
])
def test_crosscheck_bad_input_exits_2_naming_it(policy_path, capsys, argv, message):
    from quadhil.cli import main

    assert main(["crosscheck", "rotorpy", "--model", str(policy_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_crosscheck_of_a_missing_model_exits_2(tmp_path, capsys):
    from quadhil.cli import main

    assert main(["crosscheck", "rotorpy", "--model", str(tmp_path / "nope.tflite")]) == 2
    assert "does not exist" in capsys.readouterr().err
