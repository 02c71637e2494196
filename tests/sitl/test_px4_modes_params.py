"""PX4 custom-mode encoding and the parameter encoding the twin uses on the wire."""

from __future__ import annotations

import math

import pytest
from pymavlink import mavutil

from sim.sitl.px4.modes import NavState, decode_custom_mode, encode_custom_mode, nav_state_from_custom
from sim.sitl.px4.params import (MAV_PARAM_TYPE_INT32, MAV_PARAM_TYPE_REAL32, PARAM_DEFS, ParamError, ParamStore,
                                 decode_value, encode_value)


def test_custom_mode_is_main_mode_shifted_16_and_sub_mode_shifted_24():
    assert NavState.OFFBOARD.custom_mode == 6 << 16 == 393216
    assert NavState.POSCTL.custom_mode == 3 << 16
    assert NavState.AUTO_TAKEOFF.custom_mode == 4 << 16 | 2 << 24
    assert NavState.AUTO_LAND.custom_mode == 4 << 16 | 6 << 24
    assert decode_custom_mode(encode_custom_mode(4, 3)) == (4, 3)


@pytest.mark.parametrize("state, name", [(NavState.POSCTL, "POSCTL"), (NavState.OFFBOARD, "OFFBOARD"),
                                         (NavState.AUTO_LOITER, "LOITER"), (NavState.AUTO_LAND, "LAND"),
                                         (NavState.AUTO_TAKEOFF, "TAKEOFF")])
def test_pymavlink_decodes_our_heartbeats_to_the_px4_mode_names(state, name):
    hb = mavutil.mavlink.MAVLink_heartbeat_message(2, 12, state.base_mode(armed=True), state.custom_mode, 4, 3)
    assert mavutil.mode_string_v10(hb) == name
    assert hb.base_mode & 128 and hb.base_mode & 1


def test_do_set_mode_mapping_follows_commander():
    assert nav_state_from_custom(4, 0) == NavState.AUTO_MISSION  # AUTO without sub mode
    assert nav_state_from_custom(4, 77) is None  # "Unsupported auto mode"
    assert nav_state_from_custom(42, 0) is None  # unmapped main mode: no change


def test_int32_parameters_travel_bytewise_and_floats_as_floats():
    assert decode_value(encode_value(4, MAV_PARAM_TYPE_INT32), MAV_PARAM_TYPE_INT32) == 4
    assert encode_value(4, MAV_PARAM_TYPE_INT32) != 4.0
    assert encode_value(2.5, MAV_PARAM_TYPE_REAL32) == 2.5


def test_param_store_refuses_unknown_names_nan_and_out_of_range():
    p = ParamStore()
    assert len(p) == len(PARAM_DEFS) and all(len(n) <= 16 for n in PARAM_DEFS)
    with pytest.raises(ParamError, match="unknown"):
        p.set("NOPE", 1.0)
    with pytest.raises(ParamError, match="not finite"):
        p.set("COM_OF_LOSS_T", math.nan)
    with pytest.raises(ParamError, match="outside"):
        p.set("MPC_XY_P", 99.0)
    seen = []
    p.on_change(lambda n, v: seen.append((n, v)))
    assert p.set("COM_OBL_RC_ACT", 4.4) == 4.0
    assert seen == [("COM_OBL_RC_ACT", 4.0)]


def test_cli_refuses_bad_arguments_with_one_line_and_exit_2():
    import socket
    import subprocess
    import sys

    def run(*args):
        return subprocess.run([sys.executable, "-m", "sim.sitl", "px4", "--duration", "0.1", *args],
                              capture_output=True, text=True, timeout=60)

    r = run("--param", "NOPE=1")
    assert r.returncode == 2 and "unknown parameter 'NOPE'" in r.stderr
    r = run("--battery", "1.5")
    assert r.returncode == 2 and "--battery" in r.stderr
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        r = run("--listen-port", str(busy.getsockname()[1]), "--no-gcs")
    assert r.returncode == 2 and "cannot listen" in r.stderr
