"""The PX4 twin's mc_nn_control: runs the exported px4-nn network (numpy, from control_net.npz)
exactly as the .tflite PX4 embeds, on PX4's inputs, through the module's action rescaling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from quadhil.cli import main
from sim.errors import QuadhilError
from sim.sitl.px4.controllers import Estimate, Setpoint
from sim.sitl.px4.nn_control import NeuralControl, px4_rescale, thrust_model_to_esc
from sim.sitl.px4.twin import Px4Twin, TwinConfig
from sim.vehicle import load_vehicle
from tests.firmware_bridge.onboard_support import make_actor


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("px4nn")
    actor, spec, _ = make_actor("x500", layout="px4-nn", control_rate_hz=200.0, seed=3)
    run = tmp / "run"
    run.mkdir()
    actor.save(run / "actor_best.keras")
    (run / "config.json").write_text(json.dumps({"spec": spec.to_dict()}))
    out = tmp / "px4"
    assert main(["export", "--format", "px4-nn", str(run), "--out", str(out), "--parity-obs", "1000"]) == 0
    return out


def _estimate(rng):
    q = rng.normal(size=4)
    return Estimate(rng.uniform(-2, 2, 3), rng.uniform(-2, 2, 3), q / np.linalg.norm(q), rng.uniform(-3, 3, 3))


def test_numpy_network_is_the_tflite_px4_embeds(exported):
    from deploy.export_px4nn import run_tflite

    ctrl = NeuralControl(load_vehicle("x500"), {}, exported / "control_net.npz")
    x = np.random.default_rng(6).normal(size=(10_000, 15)).astype(np.float32) * 2
    ref = run_tflite((exported / "control_net.tflite").read_bytes(), x)
    assert np.max(np.abs(ctrl.forward(x) - ref)) <= 1e-5


def test_motor_thrust_follows_the_modules_rescale_and_the_thrust_model(exported):
    vehicle = load_vehicle("x500")
    ctrl = NeuralControl(vehicle, {}, exported / "control_net.npz")
    rng = np.random.default_rng(7)
    est = _estimate(rng)
    sp = Setpoint("trajectory", pos_w=np.array([0.5, -0.5, 2.0]))
    thrust = ctrl.motor_thrust_n(est, sp, 0.002)
    x = np.concatenate([sp.pos_w - est.pos_w, *(q for q in _rows(est)), est.vel_w, est.omega_b]).astype(np.float32)
    assert np.allclose(ctrl.last_input, x, atol=1e-6)
    d = ctrl.defaults
    u = px4_rescale(ctrl.forward(x[None])[0], d["MC_NN_THRST_COEF"], d["MC_NN_MIN_RPM"], d["MC_NN_MAX_RPM"])
    expected = vehicle.command_to_thrust(thrust_model_to_esc(u, d["THR_MDL_FAC"]))
    assert np.allclose(thrust, expected)
    assert np.all(ctrl.motor_thrust_n(est, Setpoint("idle"), 0.002) == 0)


def _rows(est):
    from sim.frames import quat_to_rotmat

    r = quat_to_rotmat(est.quat_wb)
    return r[0], r[1]


def test_without_a_position_setpoint_it_holds_where_it_took_over(exported):
    ctrl = NeuralControl(load_vehicle("x500"), {}, exported / "control_net.npz")
    est = _estimate(np.random.default_rng(8))
    ctrl.motor_thrust_n(est, Setpoint("attitude"), 0.002)
    assert np.allclose(ctrl.last_input[:3], 0.0)  # setpoint - position with the latched setpoint


def test_thrust_model_inverts_thr_mdl_fac():
    e = np.linspace(0, 1, 11)
    for fac in (0.0, 0.3, 1.0):
        assert np.allclose(thrust_model_to_esc(fac * e * e + (1 - fac) * e, fac), e)


def test_px4_twin_runs_mc_nn_as_its_controller(exported):
    twin = Px4Twin(TwinConfig(controller=f"mc_nn:{exported / 'control_net.npz'}"), open_links=False)
    try:
        assert twin.controller.name == "mc_nn_control"
        for _ in range(50):
            twin.tick()
        assert np.all(np.isfinite(twin.sim.state.pos_w))
    finally:
        twin.close()
    with pytest.raises(QuadhilError, match="cannot load"):
        Px4Twin(TwinConfig(controller="mc_nn:/nonexistent.npz"), open_links=False)
    with pytest.raises(QuadhilError, match="vehicle"):
        Px4Twin(TwinConfig(vehicle="crazyflie", controller=f"mc_nn:{exported / 'control_net.npz'}"), open_links=False)


def _linear_hover_actor(vehicle, spec):
    """A px4-nn actor whose ReLU layers carry a hand-made linear hover controller (PD on position,
    tilt and rates; yaw held), in the contract's action units. ReLU pairs pass x through exactly:
    relu(x) - relu(-x) = x. It lets the twin fly the whole mc_nn path without a trained policy."""
    from train.networks import build_actor

    m, g, J = vehicle.mass_kg, 9.80665, vehicle.inertia_kgm2
    kp, kd, kp_z = 2.25, 2.4, 4.0
    w_att, w_yaw = 8.0, 4.0
    # wrench [T, tau_x, tau_y, tau_z] = M @ x_px4 + c, x_px4 = [t - p, R row 0, R row 1, v, omega]
    M = np.zeros((4, 15))
    c = np.array([m * g, 0.0, 0.0, 0.0])
    M[0, 2], M[0, 11] = m * kp_z, -m * kd  # T = m (g + a_z)
    k_th = J[:2] * w_att ** 2
    k_om = J * 2 * 0.8 * np.array([w_att, w_att, w_yaw])
    # tau_y = k (zx_des - R02) - k_om wy, zx_des = a_x / g = (kp (t-p)_x - kd v_x) / g
    M[2, 0], M[2, 9], M[2, 5], M[2, 13] = k_th[1] * kp / g, -k_th[1] * kd / g, -k_th[1], -k_om[1]
    # tau_x = -k (zy_des - R12) - k_om wx
    M[1, 1], M[1, 10], M[1, 8], M[1, 12] = -k_th[0] * kp / g, k_th[0] * kd / g, k_th[0], -k_om[0]
    # tau_z = -k sin(yaw) - k_om wz, sin(yaw) ~ R10
    M[3, 6], M[3, 14] = -J[2] * w_yaw ** 2, -k_om[2]
    a_inv = np.linalg.inv(vehicle.allocation_matrix())
    k_px4 = (2.0 / spec.thrust_max_n) * a_inv @ M
    const = (2.0 / spec.thrust_max_n) * a_inv @ c - 1.0
    k_c = k_px4.copy()
    k_c[:, :3] *= -1.0  # contract feeds p - t
    actor = build_actor(spec, hidden=(30, 30))
    std = np.asarray(spec.obs_std)
    actor.get_layer("hidden_0").set_weights([np.hstack([np.diag(std), -np.diag(std)]).astype(np.float32),
                                             np.zeros(30, np.float32)])
    actor.get_layer("hidden_1").set_weights([np.eye(30, dtype=np.float32), np.zeros(30, np.float32)])
    actor.get_layer("action_raw").set_weights([np.vstack([k_c.T, -k_c.T]).astype(np.float32),
                                               const.astype(np.float32)])
    return actor


def _export_and_fly_under_mc_nn(run, out, target_w, parity_obs, seconds=8.0):
    """Export ``run`` with ``quadhil export --format px4-nn`` into ``out``, then fly a PX4 twin
    whose controller is mc_nn_control running it: EKF init, OFFBOARD with a position setpoint
    streamed at 10 Hz, armed on the ground. Returns (pos_w, vel_w) at the end."""
    from sim.sitl.px4.modes import NavState

    assert main(["export", "--format", "px4-nn", str(run), "--out", str(out), "--parity-obs", str(parity_obs)]) == 0
    twin = Px4Twin(TwinConfig(controller=f"mc_nn:{out / 'control_net.npz'}"), open_links=False)
    try:
        twin.advance(1.2)  # EKF init
        sp = Setpoint("trajectory", pos_w=np.asarray(target_w, dtype=np.float64))
        twin.commander.offboard_setpoint(sp)
        assert twin.commander.request_mode(NavState.OFFBOARD)
        assert twin.commander.arm()
        for _ in range(int(round(seconds / 0.1))):
            twin.commander.offboard_setpoint(sp)
            twin.advance(0.1)
        return twin.sim.state.pos_w[0].copy(), twin.sim.state.vel_w[0].copy()
    finally:
        twin.close()


def test_px4_twin_flies_an_exported_network_through_mc_nn_to_its_setpoint(tmp_path):
    from sim.contract import SPEC_LAYOUTS
    from sim.env import HoverTaskConfig
    from train.obs_scale import with_fixed_obs_scales

    vehicle = load_vehicle("x500")
    spec = with_fixed_obs_scales(SPEC_LAYOUTS["px4-nn"](vehicle, "motors", 200.0), vehicle, HoverTaskConfig())
    run = tmp_path / "run"
    run.mkdir()
    _linear_hover_actor(vehicle, spec).save(run / "actor_best.keras")
    (run / "config.json").write_text(json.dumps({"spec": spec.to_dict()}))
    target = np.array([0.5, -0.3, 1.5])
    pos, vel = _export_and_fly_under_mc_nn(run, tmp_path / "px4", target, parity_obs=1000)
    err = np.linalg.norm(pos - target)
    print(f"PX4 twin on mc_nn_control: {err:.3f} m from the setpoint after 8 s (error {np.round(pos - target, 3)} m), "
          f"speed {np.linalg.norm(vel):.3f} m/s")
    assert err < 0.25 and np.linalg.norm(vel) < 0.2


COMMITTED_PX4NN = Path(__file__).resolve().parents[2] / "policies" / "x500-px4nn"


@pytest.mark.skipif(not (COMMITTED_PX4NN / "actor_best.keras").exists(), reason="no committed px4-nn policy")
def test_px4_twin_flies_the_committed_trained_px4nn_policy_from_the_ground(tmp_path):
    """The trained x500 px4-nn actor, exported as PX4 embeds it, takes off from the ground under
    mc_nn_control (its input convention, action rescale and thrust model, none of which training
    saw) and holds the offboard setpoint."""
    target = np.array([0.3, -0.2, 1.0])
    pos, vel = _export_and_fly_under_mc_nn(COMMITTED_PX4NN, tmp_path / "px4", target, parity_obs=2000)
    err = np.linalg.norm(pos - target)
    print(f"trained px4-nn policy on the PX4 twin's mc_nn_control: {err:.3f} m from the setpoint after 8 s "
          f"(error {np.round(pos - target, 3)} m), speed {np.linalg.norm(vel):.3f} m/s")
    assert err < 0.15 and np.linalg.norm(vel) < 0.2
