"""The MAVLink link reads and sets PX4 parameters with the parameter protocol (PARAM_REQUEST_READ,
PARAM_SET, PARAM_VALUE) through the real pymavlink, against the PX4 twin."""

from __future__ import annotations

import time

import pytest

from firmware_bridge.links.mavlink import MavlinkLink, decode_param_value, encode_param_value
from tests.firmware_bridge.bridge_support import px4_twin


def _link(uri: str) -> MavlinkLink:
    link = MavlinkLink(uri)
    link.connect(10.0)
    return link


def test_int32_parameters_travel_bytewise_in_the_float_field():
    assert decode_param_value(encode_param_value(4001, 6), 6) == 4001.0
    assert encode_param_value(4001, 6) != 4001.0  # the bits, not the number
    assert decode_param_value(0.7, 9) == pytest.approx(0.7)


def test_read_params_returns_what_px4_answered_and_leaves_out_unknown_names():
    with px4_twin("--param", "MPC_THR_HOVER=0.42") as twin:
        link = _link(twin.uri)
        try:
            t0 = time.monotonic()
            got = link.read_params(["MPC_THR_HOVER", "SYS_AUTOSTART", "MC_ROLLRATE_P", "NO_SUCH_PARAM"], 2.0)
            elapsed = time.monotonic() - t0
        finally:
            link.close()
    assert got["MPC_THR_HOVER"] == pytest.approx(0.42)
    assert got["SYS_AUTOSTART"] == 4001.0  # INT32, decoded from its bytes
    assert got["MC_ROLLRATE_P"] == pytest.approx(0.15)
    assert "NO_SUCH_PARAM" not in got
    assert 1.9 < elapsed < 3.0  # waited the timeout for the unknown name, no longer


def test_set_params_is_confirmed_by_the_echoed_value():
    with px4_twin() as twin:
        link = _link(twin.uri)
        try:
            assert link.set_params({"MPC_THR_HOVER": 0.61, "COM_OBL_RC_ACT": 4}) == pytest.approx(
                {"MPC_THR_HOVER": 0.61, "COM_OBL_RC_ACT": 4.0})
            assert link.read_params(["MPC_THR_HOVER", "COM_OBL_RC_ACT"], 2.0) == pytest.approx(
                {"MPC_THR_HOVER": 0.61, "COM_OBL_RC_ACT": 4.0})
        finally:
            link.close()
