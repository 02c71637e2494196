"""``quadhil eval --suite robustness``: each axis changes what it names, and success follows it."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from sim.contract import default_spec
from sim.env import HoverTask, HoverTaskConfig
from sim.randomization import RealismConfig
from sim.vehicle import GRAVITY_MPS2
from train.robustness import AXES, CORNER_AXES, nominal_thrust_to_weight, run_suite, suite_realism


AXIS = {a.name: a for a in AXES}


def _pd(spec, vehicle):
    """A hand-written cascaded PD that holds the nominal Crazyflie (deploy.crosscheck_rotorpy's,
    gentle tilt gain: the firmware rate loop behind it has 55/249 ms motors), the file's mass as
    feed-forward and no integral."""
    from deploy.crosscheck_rotorpy import PDHover

    return PDHover(spec, vehicle.mass_kg, kp=6.0, kd=4.0, k_tilt=4.0, max_collective_fraction=1.0)


@pytest.fixture()
def task(crazyflie, cf_spec):
    t = HoverTask(crazyflie, cf_spec, 3, replace(HoverTaskConfig(), realism=RealismConfig.off()), seed=0)
    t.reset()
    return t


def test_airframe_axes_set_exactly_the_parameter_they_name(task, crazyflie):
    AXIS["motor_tau_s"].airframe(task, 0.08)
    assert np.all(task.sim.params.tau_up_s == 0.08) and np.all(task.sim.params.tau_down_s == 0.08)
    AXIS["thrust_to_weight"].airframe(task, 1.6)
    p = task.sim.params
    # what the firmware's full collective command gives (THRUST_MAX on a compensated Crazyflie)
    ceiling_n = 4 * min(crazyflie.command_thrust_max_n, crazyflie.max_thrust_n)
    assert ceiling_n / (p.mass_kg * GRAVITY_MPS2) == pytest.approx(np.full(3, 1.6))
    AXIS["yaw_torque_m"].airframe(task, 0.034)
    assert np.all(task.sim.params.torque_to_thrust_m == 0.034)
    AXIS["inertia_scale"].airframe(task, 2.0)
    assert task.sim.params.inertia_kgm2 == pytest.approx(2.0 * np.tile(crazyflie.inertia_kgm2, (3, 1)))
    AXIS["com_offset_arm"].airframe(task, 0.1)
    arm_m = np.linalg.norm(crazyflie.rotor_position_m[:, :2], axis=1).mean()
    # rotors are placed relative to the CoM: a CoM 0.1 arm forward puts every rotor 0.1 arm further back
    assert task.sim.params.rotor_pos_m[:, :, 0] == pytest.approx(
        np.tile(crazyflie.rotor_position_m[:, 0] - 0.1 * arm_m, (3, 1)))


def test_rate_loop_axes_scale_the_gains_or_drop_i_and_d(task, crazyflie):
    nominal = crazyflie.rate_controller
    AXIS["rate_gain_scale"].airframe(task, 2.0)
    kp, ki, kd = task.rate_ctrl._gains()
    assert kp == pytest.approx(np.tile(2 * nominal.kp_nm_per_rad_s, (3, 1)))
    assert ki == pytest.approx(np.tile(2 * nominal.ki_nm_per_rad, (3, 1)))
    assert kd == pytest.approx(np.tile(2 * nominal.kd_nm_s_per_rad, (3, 1)))
    AXIS["p_only_gain_scale"].airframe(task, 1.0)
    kp, ki, kd = task.rate_ctrl._gains()
    assert kp == pytest.approx(np.tile(nominal.kp_nm_per_rad_s, (3, 1)))
    assert not ki.any() and not kd.any()
    assert nominal.ki_nm_per_rad.any(), "the vehicle file's own gains must stay untouched"


def test_realism_axes_change_only_their_knob():
    base = suite_realism()
    assert AXIS["latency_ticks"].realism(base, 2) == replace(base, latency_ticks=2, latency_ticks_max=None)
    assert AXIS["sensor_noise_scale"].realism(base, 0.0).sensor_noise is False
    assert AXIS["sensor_noise_scale"].realism(base, 3.0).noise_scale == 3.0
    assert AXIS["wind_mps"].realism(base, 2.0).wind_mean_mps == (2.0, 0.0, 0.0)
    assert base.randomize is False and base.sensor_noise is True


def test_success_falls_where_the_axis_hurts_and_the_suite_is_reproducible(crazyflie, cf_spec):
    # A PD with the nominal mass as feed-forward and no integral holds the nominal airframe; a
    # payload that leaves a thrust-to-weight of 1.4 (the file's is 1.70) makes it sag and fail.
    act = _pd(cf_spec, crazyflie)
    kwargs = dict(episodes=6, seed=1, axes=("thrust_to_weight", "latency_ticks"), corners=False)
    r = run_suite(act, cf_spec, **kwargs)
    assert r.nominal.success_rate >= 0.8
    tw = {c.value: c.success_rate for c in r.axes["thrust_to_weight"]}
    assert tw[1.4] == 0.0
    assert set(r.axes) == {"thrust_to_weight", "latency_ticks"}
    d1, d2 = r.as_dict(), run_suite(act, cf_spec, **kwargs).as_dict()
    d1.pop("wall_s"), d2.pop("wall_s")
    assert d1 == d2
    assert d1["worst"]["success_rate"] == min(c["success_rate"] for cells in d1["axes"].values() for c in cells)


def test_corners_cover_every_combination_and_a_motors_policy_skips_the_rate_loop(crazyflie):
    spec = default_spec(crazyflie, action_mode="motors")
    hover = lambda obs: np.zeros((obs.shape[0], 4), np.float32)  # noqa: E731 - any policy will do
    r = run_suite(hover, spec, episodes=1, axes=("rate_gain_scale", "motor_tau_s"))
    assert "rate_gain_scale" in r.skipped and "rate_gain_scale" not in r.axes
    non_rate = [n for n, _ in CORNER_AXES if n != "rate_gain_scale"]
    assert len(r.corners) == 2 ** len(non_rate)
    assert {tuple(sorted(c.value.items())) for c in r.corners} == {
        tuple(sorted(zip(non_rate, combo))) for combo in
        __import__("itertools").product(*(ends for n, ends in CORNER_AXES if n != "rate_gain_scale"))}


def test_unknown_axis_is_refused_by_name(crazyflie, cf_spec):
    with pytest.raises(ValueError, match="unknown robustness axis 'nope'|unknown robustness axis nope"):
        run_suite(lambda o: o[:, :4], cf_spec, episodes=1, axes=("nope",))


def test_nominal_thrust_to_weight_is_what_the_firmware_can_ask_for(crazyflie):
    # compensated Crazyflie: 4 x THRUST_MAX 0.1125 N over 27 g, not the motors' 4 x 0.16 N
    assert nominal_thrust_to_weight(crazyflie) == pytest.approx(4 * 0.1125 / (0.027 * GRAVITY_MPS2))


def test_eval_suite_command_writes_table_json_and_heat_map(tmp_path, capsys):
    """The command as a user runs it, on a random actor (it fails everywhere: the figures are
    still all there)."""
    from quadhil.cli import main
    from tests.deploy.conftest import make_run

    run = make_run(tmp_path / "run")
    rc = main(["eval", str(run), "--suite", "robustness", "--episodes", "2", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    d = json.loads(out.strip().splitlines()[-1])
    assert d["suite"] == "robustness" and d["episodes_per_cell"] == 2
    assert set(d["axes"]) == {a.name for a in AXES}
    assert len(d["corners"]) == 2 ** len(CORNER_AXES)
    assert json.loads((run / "robustness.json").read_text())["axes"] == d["axes"]
    assert (run / "robustness.png").stat().st_size > 10_000
    assert "motor_tau_s" in out and "joint corners" in out


def test_eval_suite_refuses_flags_it_sets_itself(tmp_path, capsys):
    from quadhil.cli import main
    from tests.deploy.conftest import make_run

    run = make_run(tmp_path / "run")
    assert main(["eval", str(run), "--suite", "robustness", "--latency-ticks", "1"]) == 2
    assert "--suite flies the run's own evaluation task" in capsys.readouterr().err
