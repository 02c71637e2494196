"""``quadhil eval --suite ceiling``: a failed throw that a controller knowing the airframe could fly
is found recoverable, one that nothing can fly is not, and the bound counts only what was found."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from sim.env import HoverTaskConfig
from sim.randomization import RealismConfig
from train.ceiling import CRASH_COST, CeilingSearch, run_ceiling
from train.cli_eval import GENTLE_START

# A 1 s hover handed over 5 cm off, held for the last 0.3 s: short, so a search is a few seconds.
SHORT = replace(HoverTaskConfig(), episode_s=1.0, hold_s=0.3, **GENTLE_START, realism=RealismConfig.off())
SEARCH = CeilingSearch(samples=64, iterations=12)


def _pd(spec, vehicle, mass_fraction: float = 1.0):
    """The crosscheck's cascaded PD told a mass of ``mass_fraction`` of the true one (no integral:
    too little mass, and it hangs below the target)."""
    from deploy.crosscheck_rotorpy import PDHover

    return PDHover(spec, vehicle.mass_kg * mass_fraction, kp=6.0, kd=4.0, k_tilt=4.0, max_collective_fraction=1.0)


def test_a_policy_that_holds_has_nothing_to_search(crazyflie, cf_spec):
    result = run_ceiling(_pd(cf_spec, crazyflie), cf_spec, SHORT, episodes=3, seed=0, search=SEARCH)
    assert result.success_rate == 1.0 and result.verdicts == [] and result.ceiling_lower_bound == 1.0


def test_a_throw_lost_to_a_wrong_mass_is_recovered_by_the_search(crazyflie, cf_spec):
    """Told 80 % of its mass, the PD settles ~0.3 m low; the missing collective is a residual the
    search finds, so the bound is above the policy's rate."""
    result = run_ceiling(_pd(cf_spec, crazyflie, 0.8), cf_spec, SHORT, episodes=1, seed=0, search=SEARCH)
    assert result.success_rate == 0.0
    assert [v.verdict for v in result.verdicts] == ["recovered"]
    assert all(v.best_margin < 1.0 and 1 <= v.iterations <= SEARCH.iterations for v in result.verdicts)
    assert result.ceiling_lower_bound == 1.0


def test_a_task_no_flight_can_pass_stays_not_found(crazyflie, cf_spec):
    """A 1 um success radius: every candidate flies, none holds; the bound is the policy's rate."""
    impossible = replace(SHORT, success_radius_m=1e-6)
    search = CeilingSearch(samples=16, iterations=3)
    result = run_ceiling(_pd(cf_spec, crazyflie), cf_spec, impossible, episodes=2, seed=0, search=search)
    assert [v.verdict for v in result.verdicts] == ["not_found", "not_found"]
    assert all(1.0 < v.best_margin < CRASH_COST / 2 and v.iterations == 3 for v in result.verdicts)
    assert result.ceiling_lower_bound == 0.0


def test_a_throw_lost_only_to_sensor_noise_is_counted_as_noise(crazyflie, cf_spec):
    noisy = replace(SHORT, realism=replace(RealismConfig.off(), sensor_noise=True, noise_scale=40.0))
    result = run_ceiling(_pd(cf_spec, crazyflie), cf_spec, noisy, episodes=3, seed=1, search=SEARCH)
    assert result.success_rate < 1.0
    assert {v.verdict for v in result.verdicts} == {"noise"}
    assert result.ceiling_lower_bound == 1.0


def test_the_search_refuses_sizes_that_cannot_search():
    with pytest.raises(ValueError, match="samples >= 10"):
        CeilingSearch(samples=4)


def test_eval_suite_ceiling_writes_json_and_one_json_line(tmp_path, capsys):
    """The command as a user runs it, on a random actor (it fails every throw: each gets a verdict)."""
    from quadhil.cli import main
    from tests.deploy.conftest import make_run

    run = make_run(tmp_path / "run")
    rc = main(["eval", str(run), "--suite", "ceiling", "--episodes", "1", "--ceiling-samples", "10",
               "--ceiling-iterations", "1", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    d = json.loads(out.strip().splitlines()[-1])
    assert d["suite"] == "ceiling" and d["episodes"] == 1 and d["failed"] == len(d["verdicts"])
    assert d["noise"] + d["recovered"] + d["not_found"] == d["failed"]
    assert json.loads((run / "ceiling.json").read_text())["verdicts"] == d["verdicts"]
    assert main(["eval", str(run), "--suite", "ceiling", "--ceiling-samples", "3"]) == 2
    assert "samples >= 10" in capsys.readouterr().err
