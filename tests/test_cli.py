"""Every command the README names exists, helps, and fails clearly."""

import subprocess
import sys

import pytest

from quadhil.cli import COMMANDS
from quadhil.bench import TARGETS


def quadhil(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "quadhil", *args], capture_output=True, text=True, timeout=timeout)


def test_top_level_help_lists_every_command():
    out = quadhil("--help")
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_has_help(name):
    out = quadhil(name, "--help")
    assert out.returncode == 0, out.stderr
    assert "usage: quadhil " + name in out.stdout


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_each_benchmark_has_help(target):
    out = quadhil("bench", target, "--help")
    assert out.returncode == 0, out.stderr


def test_unknown_vehicle_is_one_clear_line_and_exit_2():
    out = quadhil("sim", "--vehicle", "tello")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "quadhil sim: error: unknown vehicle 'tello'; known vehicles: crazyflie, x500"
    ]


def test_sim_json_is_the_last_line():
    import json

    out = quadhil("sim", "--command", "off", "--duration", "3", "--json")
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["on_ground"] is True and figures["final_pos_m"][2] == 0.0


def test_python_dash_m_runs_a_stage():
    out = subprocess.run([sys.executable, "-m", "sim", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "python -m sim" in out.stdout
