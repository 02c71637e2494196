"""``quadhil eval --suite spread``: each group puts back exactly the quantities it names, every
randomized quantity is in some group, and the rows fly the same throws."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from sim.dynamics import BatchParams
from sim.env import HoverTask, HoverTaskConfig
from sim.randomization import RealismConfig
from train.evaluate import evaluate_policy
from train.spread import SPREAD_GROUPS, put_back_nominal, run_spread


def _drawn_task(vehicle, spec, n=64):
    t = HoverTask(vehicle, spec, n, replace(HoverTaskConfig(), realism=RealismConfig(uncompensated_fraction=0.5)), seed=3)
    t.reset()
    return t


def test_every_quantity_the_randomization_draws_is_in_some_group(crazyflie, cf_spec):
    p = _drawn_task(crazyflie, cf_spec).sim.params
    drawn = {k for k, v in p.__dict__.items()
             if k != "spin_sign" and np.ptp(np.asarray(v, dtype=float), axis=0).max() > 0}
    assert {"mass_kg", "tau_up_s", "rate_gain_scale", "compensated"} <= drawn
    grouped = set(SPREAD_GROUPS["all"])
    assert drawn - {"crash_speed_mps"} <= grouped, drawn - grouped


def test_a_group_puts_back_exactly_its_fields(crazyflie, cf_spec):
    for name, fields in SPREAD_GROUPS.items():
        t = _drawn_task(crazyflie, cf_spec)
        before = t.sim.params.take(slice(None))
        put_back_nominal(t, fields)
        nominal = BatchParams.nominal(crazyflie, t.n)
        for k in before.__dict__:
            if k == "spin_sign":
                continue
            expect = getattr(nominal, k) if k in fields else getattr(before, k)
            assert np.array_equal(getattr(t.sim.params, k), expect), (name, k)


def test_rows_fly_the_seeds_throws_and_none_is_the_plain_evaluation(crazyflie, cf_spec):
    from deploy.crosscheck_rotorpy import PDHover

    pd = PDHover(cf_spec, crazyflie.mass_kg, kp=6.0, kd=4.0, k_tilt=4.0, max_collective_fraction=1.0)
    task = replace(HoverTaskConfig(), episode_s=1.0, hold_s=0.3)
    groups = {k: SPREAD_GROUPS[k] for k in ("none", "mass", "all")}
    result = run_spread(pd, cf_spec, task, episodes=40, seed=2, groups=groups)
    plain = evaluate_policy(pd, cf_spec, "crazyflie", episodes=40, seed=2, task=task)
    d = result.as_dict()
    assert [r.group for r in result.rows] == ["none", "mass", "all"]
    assert d["groups"]["none"]["success_rate"] == plain.success_rate == d["success_rate"]
    assert d["groups"]["all"]["gain"] == d["groups"]["all"]["success_rate"] - plain.success_rate
    # the PD is told the file's mass: with the mass back to nominal it fails no more often
    assert d["groups"]["mass"]["success_rate"] >= plain.success_rate


def test_eval_suite_spread_writes_json_and_one_json_line(tmp_path, capsys):
    from quadhil.cli import main
    from tests.deploy.conftest import make_run

    run = make_run(tmp_path / "run")
    assert main(["eval", str(run), "--suite", "spread", "--episodes", "2", "--json"]) == 0
    out = capsys.readouterr().out
    d = json.loads(out.strip().splitlines()[-1])
    assert d["suite"] == "spread" and set(d["groups"]) == set(SPREAD_GROUPS)
    assert json.loads((run / "spread.json").read_text())["groups"] == d["groups"]
    assert "motor_lag" in out
