"""``quadhil bench train`` builds a run the way ``quadhil train`` does and reports its figures."""

from __future__ import annotations

import json

from quadhil.cli import run_command


def test_bench_train_reports_the_loop_and_update_rates_as_one_json_line(capsys):
    """No timing is asserted (benchmarks measure, tests do not); the figures exist and are positive."""
    assert run_command("bench", ["train", "--vehicle", "crazyflie", "--seconds", "0.5", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cf = figures["crazyflie"]
    assert cf["loop_env_steps_per_s"] > 0 and cf["loop_updates_per_s"] > 0 and cf["update_only_updates_per_s"] > 0
    assert cf["num_envs"] == 8 and cf["batch_size"] == 128
