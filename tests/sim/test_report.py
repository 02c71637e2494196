"""Command-line values as a pilot types them: coordinates and fences with negative numbers need no
'=' anywhere in quadhil (argparse alone reads ``-1,0,1`` as an unknown option)."""

from __future__ import annotations

import importlib
import json

import pytest

from quadhil.cli import main
from sim.report import ArgumentParser, join_negative_values


@pytest.mark.parametrize("argv, joined", [
    (["--target", "-1,0,1"], ["--target=-1,0,1"]),
    (["--geofence", "-1,1,-1,1,2", "--arm"], ["--geofence=-1,1,-1,1,2", "--arm"]),
    (["--start", "-.5,0,0"], ["--start=-.5,0,0"]),
    (["--wind", "-2e-1,0,0"], ["--wind=-2e-1,0,0"]),
    (["--target", "1,0,1"], ["--target", "1,0,1"]),  # nothing to do
    (["--target=-1,0,1"], ["--target=-1,0,1"]),  # already joined
    (["--log", "-flights"], ["--log", "-flights"]),  # not a number: left for argparse to judge
    (["--quiet", "-v"], ["--quiet", "-v"]),  # a short option stays an option
    (["--", "--target", "-1,0,1"], ["--", "--target", "-1,0,1"]),  # after '--' nothing is touched
])
def test_a_negative_number_list_after_a_flag_is_attached_to_it(argv, joined):
    assert join_negative_values(argv) == joined


def _parser(module_name: str) -> ArgumentParser:
    """The parser ``quadhil`` builds for a command (quadhil.cli.run_command)."""
    parser = ArgumentParser(prog="quadhil")
    importlib.import_module(module_name).configure(parser)
    return parser


def test_fly_takes_a_target_and_a_fence_with_negative_numbers():
    args = _parser("firmware_bridge.cli_fly").parse_args(
        ["--model", "m.tflite", "--link", "udp://127.0.0.1:19850", "--target", "-1,0,1",
         "--geofence", "-1,1,-1,1,2"])
    assert args.target == (-1.0, 0.0, 1.0)
    assert (args.geofence.x_min_m, args.geofence.y_min_m, args.geofence.z_max_m) == (-1.0, -1.0, 2.0)


def test_every_twin_takes_a_start_and_a_wind_with_negative_numbers():
    parser = _parser("sim.sitl.cli")
    px4 = parser.parse_args(["px4", "--start", "-1,-2,0", "--wind", "-2,0,0"])
    assert px4.start == (-1.0, -2.0, 0.0) and px4.wind == (-2.0, 0.0, 0.0)
    cf = parser.parse_args(["crazyflie", "--start", "-0.5,0.5,0"])
    assert cf.start == (-0.5, 0.5, 0.0)


def test_a_bad_value_is_still_named(capsys):
    with pytest.raises(SystemExit):
        _parser("firmware_bridge.cli_fly").parse_args(["--model", "m", "--link", "u", "--target", "-1,0"])
    assert "argument --target: expected three finite comma-separated numbers x,y,z, got '-1,0'" in capsys.readouterr().err


def test_quadhil_sim_starts_where_a_negative_start_says(capsys):
    assert main(["sim", "--start", "-1,0,1", "--duration", "0.05", "--command", "hover", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["final_pos_m"][0] == pytest.approx(-1.0, abs=1e-3)
