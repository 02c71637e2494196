"""The policy contract: one definition of observations, actions and their meaning."""

import json

import numpy as np
import pytest

from sim.contract import (
    PolicySpec,
    SpecError,
    act_to_command,
    default_spec,
    hover_action,
    observe,
    push_action_history,
    thrust_to_firmware_units,
)
from sim.frames import quat_from_euler
from sim.vehicle import load_vehicle

CF = load_vehicle("crazyflie")
X500 = load_vehicle("x500")


@pytest.mark.parametrize("mode", ["ctbr", "motors"])
def test_spec_json_round_trip_is_exact(mode):
    spec = default_spec(CF, action_mode=mode, action_history=3)
    spec = PolicySpec.from_dict({**spec.to_dict(), "obs_mean": list(np.linspace(-1, 1, spec.obs_dim) / 3),
                                 "obs_std": list(np.linspace(0.1, 2, spec.obs_dim) / 7)})
    assert PolicySpec.from_json(spec.to_json()) == spec


def test_unknown_major_version_is_refused():
    d = default_spec(CF).to_dict()
    d["version"] = "2.0"
    with pytest.raises(SpecError, match="version '2.0' is not supported"):
        PolicySpec.from_dict(d)


@pytest.mark.parametrize("breakage,match", [
    (lambda d: d.pop("vehicle"), "missing field.*vehicle"),
    (lambda d: d.update(action_mode="thrust"), "action_mode"),
    (lambda d: d.update(obs_std=[1.0]), "obs_mean/obs_std"),
    (lambda d: d["observation"].append({"name": "lidar", "size": 1, "unit": "m"}), "'lidar' is unknown"),
])
def test_malformed_specs_name_the_problem(breakage, match):
    d = default_spec(CF).to_dict()
    breakage(d)
    with pytest.raises(SpecError, match=match):
        PolicySpec.from_json(json.dumps(d))


def test_not_json_is_refused():
    with pytest.raises(SpecError, match="not valid JSON"):
        PolicySpec.from_json(b"\xff\x00")


def test_observation_layout_and_clipping():
    spec = default_spec(CF, action_history=2)
    assert spec.obs_dim == 3 + 9 + 3 + 3 + 8
    pos = np.array([[5.0, -0.5, 1.0], [0.0, 0.0, 0.0]])
    target = np.array([0.0, 0.0, 1.0])
    quat = quat_from_euler(np.array([0.0, 0.3]), np.zeros(2), np.zeros(2))
    vel = np.array([[1.0, 2.0, 3.0], [0, 0, 0]])
    omega = np.array([[0.1, 0.2, 0.3], [0, 0, 0]])
    hist = np.arange(16, dtype=float).reshape(2, 8)
    obs = observe(pos, vel, quat, omega, target, hist, spec)
    assert obs.dtype == np.float32 and obs.shape == (2, spec.obs_dim)
    np.testing.assert_allclose(obs[0, spec.obs_slice("position_error_w")], [1.0, -0.5, 0.0])  # clipped to 1 m
    np.testing.assert_allclose(obs[1, spec.obs_slice("position_error_w")], [0.0, 0.0, -1.0])
    np.testing.assert_allclose(obs[0, spec.obs_slice("rotation_matrix_wb")], np.eye(3).ravel())
    np.testing.assert_allclose(obs[1, spec.obs_slice("rotation_matrix_wb")].reshape(3, 3)[2, 2], np.cos(0.3), rtol=1e-6)
    np.testing.assert_allclose(obs[0, spec.obs_slice("velocity_w")], [1, 2, 3])
    np.testing.assert_allclose(obs[0, spec.obs_slice("omega_b")], [0.1, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(obs[:, spec.obs_slice("last_actions")], hist)


def test_action_history_is_newest_first():
    hist = np.zeros((1, 8))
    hist = push_action_history(hist, np.ones((1, 4)))
    hist = push_action_history(hist, np.full((1, 4), 2.0))
    np.testing.assert_array_equal(hist, [[2, 2, 2, 2, 1, 1, 1, 1]])


def test_motor_actions_map_to_nominal_thrust_fractions():
    spec = default_spec(CF, action_mode="motors")
    cmd = act_to_command(np.array([[-1.0, 0.0, 1.0, 3.0]]), spec, CF)
    np.testing.assert_allclose(cmd.thrust_fraction, [[0.0, 0.5, 1.0, 1.0]])  # clipped to [-1, 1]
    np.testing.assert_allclose(cmd.thrust_n, cmd.thrust_fraction * CF.command_thrust_max_n)  # THRUST_MAX: motors.c


def test_ctbr_actions_map_to_collective_thrust_and_rates():
    spec = default_spec(X500, action_mode="ctbr")
    cmd = act_to_command(np.array([[0.0, 1.0, -0.5, 0.25]]), spec, X500)
    np.testing.assert_allclose(cmd.collective_thrust_n, [2.0 * X500.max_thrust_n])
    np.testing.assert_allclose(cmd.body_rate_b, [[3.8, -1.9, 0.875]])


@pytest.mark.parametrize("vehicle", [CF, X500], ids=["crazyflie", "x500"])
@pytest.mark.parametrize("mode", ["ctbr", "motors"])
def test_hover_action_commands_hover_thrust(vehicle, mode):
    spec = default_spec(vehicle, action_mode=mode)
    cmd = act_to_command(hover_action(spec, vehicle), spec, vehicle)
    total = cmd.collective_thrust_n if mode == "ctbr" else cmd.thrust_n.sum(axis=1)
    np.testing.assert_allclose(total, vehicle.weight_n)


def test_non_finite_action_is_refused_not_flown():
    with pytest.raises(ValueError, match="non-finite"):
        act_to_command(np.array([[0.0, np.nan, 0.0, 0.0]]), default_spec(CF), CF)


def test_wrong_vehicle_is_refused():
    with pytest.raises(SpecError, match="trained for vehicle 'crazyflie', not 'x500'"):
        act_to_command(np.zeros((1, 4)), default_spec(CF), X500)


def test_firmware_units():
    pwm = thrust_to_firmware_units(np.array([0.0, CF.max_thrust_n]), CF)
    np.testing.assert_allclose(pwm, [0.0, 65535.0], atol=1e-6)
    np.testing.assert_allclose(thrust_to_firmware_units(np.array([X500.max_thrust_n / 4]), X500), [0.5])


# --- layout "integral": the position-error integral the caller keeps ---------------------------

def test_integral_layout_is_the_default_layout_plus_the_integral_and_round_trips():
    from sim.contract import SPEC_LAYOUTS

    spec = SPEC_LAYOUTS["integral"](X500)
    assert [f.name for f in spec.observation][:-1] == [f.name for f in default_spec(X500).observation]
    assert spec.obs_slice("position_error_integral_w") == slice(22, 25) and spec.uses_position_integral
    assert not default_spec(X500).uses_position_integral
    assert PolicySpec.from_json(spec.to_json()) == spec


def test_integrate_position_error_adds_error_times_dt_only_near_the_target_and_clips():
    from sim.contract import INTEGRAL_LIMIT_M_S, INTEGRAL_RADIUS_M, integral_spec, integrate_position_error

    spec = integral_spec(CF, control_rate_hz=100.0)
    target = np.array([0.0, 0.0, 1.0])
    pos = np.array([[0.1, -0.2, 1.05], [INTEGRAL_RADIUS_M + 0.01, 0.0, 1.0]])
    out = integrate_position_error(np.zeros((2, 3)), pos, target, spec)
    np.testing.assert_allclose(out[0], [0.001, -0.002, 0.0005])  # error * 10 ms
    np.testing.assert_array_equal(out[1], 0.0)  # outside the radius: a throw does not wind it up
    far = np.full((1, 3), INTEGRAL_LIMIT_M_S - 1e-4)
    out = integrate_position_error(far, np.array([[0.1, 0.1, 1.1]]), target, spec)
    np.testing.assert_allclose(out, INTEGRAL_LIMIT_M_S)  # clipped per axis (anti-windup)


def test_observe_refuses_an_integral_layout_without_the_integral():
    from sim.contract import integral_spec

    spec = integral_spec(CF)
    args = (np.zeros((1, 3)), np.zeros((1, 3)), np.array([[1.0, 0, 0, 0]]), np.zeros((1, 3)), np.zeros(3),
            np.zeros((1, 4)), spec)
    with pytest.raises(SpecError, match="position_error_integral"):
        observe(*args)
    obs = observe(*args, position_error_integral=np.array([[0.1, 0.2, 0.3]]))
    np.testing.assert_allclose(obs[0, spec.obs_slice("position_error_integral_w")], [0.1, 0.2, 0.3])


# --- state history: the past ticks' velocity and body-rate estimates the caller keeps ----------

def test_a_state_history_adds_past_velocities_and_rates_after_the_layout_and_round_trips():
    from sim.contract import SPEC_LAYOUTS

    spec = SPEC_LAYOUTS["integral"](X500, action_history=3, state_history=4)
    base = SPEC_LAYOUTS["integral"](X500, action_history=3)
    assert [f.name for f in spec.observation] == [f.name for f in base.observation] + [
        "velocity_history_w", "omega_history_b"]
    assert spec.obs_dim == base.obs_dim + 24 and spec.uses_state_history and not base.uses_state_history
    assert PolicySpec.from_json(spec.to_json()) == spec
    old = base.to_dict()
    del old["state_history"]  # a spec written before the state history reads as none
    assert PolicySpec.from_dict(old) == base


@pytest.mark.parametrize("breakage,match", [
    (lambda d: d.update(state_history=3), "'velocity_history_w' size must be 3 x state_history"),
    (lambda d: d.update(state_history=0), "size must be 3 x state_history \\(0\\)"),
    (lambda d: d.update(state_history=-1), "state_history must be in 0..16"),
])
def test_a_state_history_that_does_not_match_its_fields_is_refused(breakage, match):
    from sim.contract import integral_spec

    d = integral_spec(X500, state_history=2).to_dict()
    breakage(d)
    with pytest.raises(SpecError, match=match):
        PolicySpec.from_dict(d)


def test_px4_nn_has_no_state_history():
    from sim.contract import px4_nn_spec

    with pytest.raises(SpecError, match="no state history"):
        px4_nn_spec(X500, state_history=2)


def test_the_state_history_starts_at_the_first_estimate_and_holds_the_ticks_before_this_one():
    from sim.contract import integral_spec, push_state_history, start_state_history

    spec = integral_spec(X500, state_history=3)
    vel = lambda k: np.array([[k, 10.0 + k, 20.0 + k]])  # noqa: E731 - tick k's estimates
    omega = lambda k: np.array([[-k, -10.0 - k, -20.0 - k]])  # noqa: E731
    states = start_state_history(vel(0), omega(0), spec)
    args = lambda k: (np.zeros((1, 3)), vel(k), np.array([[1.0, 0, 0, 0]]), omega(k), np.zeros(3),  # noqa: E731
                      np.zeros((1, 4)), spec, np.zeros((1, 3)))
    seen = []
    for k in range(5):
        obs = observe(*args(k), state_history=states)
        seen.append(obs[0, spec.obs_slice("velocity_history_w")].reshape(3, 3)[:, 0].tolist())
        np.testing.assert_array_equal(obs[0, spec.obs_slice("omega_history_b")].reshape(3, 3)[:, 0],
                                      -np.array(seen[-1]))
        states = push_state_history(states, vel(k), omega(k))
    # tick 0 sees no motion before it; then newest first, the oldest dropped
    assert seen == [[0, 0, 0], [0, 0, 0], [1, 0, 0], [2, 1, 0], [3, 2, 1]]
    with pytest.raises(SpecError, match="state_history"):
        observe(*args(0))
