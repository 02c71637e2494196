"""MAVSDK (the native v4 binding, its C++ core bundled in the wheel) flies the PX4 twin:
discovery, parameters (INT32 bytewise, as PX4), arm, takeoff, land. Skipped, with the reason,
where the ``mavsdk`` wheel is not installed."""

from __future__ import annotations

import time

import pytest

mavsdk = pytest.importorskip("mavsdk", minversion="4.0", reason="MAVSDK v4 ('pip install mavsdk') is not installed")

from mavsdk import ComponentType, Configuration, Mavsdk  # noqa: E402
from mavsdk.plugins.action import Action  # noqa: E402
from mavsdk.plugins.param import Param  # noqa: E402
from mavsdk.plugins.telemetry import FlightMode, Telemetry  # noqa: E402

from tests.sitl.px4_helpers import px4_twin  # noqa: E402


def wait_for(predicate, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_mavsdk_reads_params_arms_takes_off_and_lands():
    with px4_twin("--param", "MIS_TAKEOFF_ALT=1.0", "--param", "MPC_TKO_SPEED=2.5", "--param", "MPC_LAND_SPEED=1.5",
                  "--param", "COM_DISARM_LAND=0.5", heartbeat_hz=1.0) as twin:
        twin.client.close()  # MAVSDK takes the offboard port over
        sdk = Mavsdk(Configuration.create_with_component_type(ComponentType.GROUND_STATION))
        try:
            assert int(sdk.add_any_connection(f"udpin://127.0.0.1:{twin.client_port}")) == 0
            system = sdk.first_autopilot(10.0)
            assert system is not None
            action, telemetry, param = Action(system), Telemetry(system), Param(system)
            assert param.get_param_float("COM_OF_LOSS_T") == pytest.approx(1.0)
            assert param.get_param_int("COM_OBL_RC_ACT") == 0
            param.set_param_int("COM_OBL_RC_ACT", 4)
            assert param.get_param_int("COM_OBL_RC_ACT") == 4
            assert wait_for(lambda: telemetry.flight_mode() == FlightMode.POSCTL, 3.0)
            action.arm()
            action.takeoff()
            # COM_SPOOLUP_TIME 1 s + MPC_TKO_RAMP_T 3 s before the climb, as PX4 does
            assert wait_for(lambda: telemetry.position().relative_altitude_m > 0.85, 12.0)
            assert wait_for(lambda: telemetry.flight_mode() == FlightMode.HOLD, 6.0)
            assert telemetry.in_air()
            action.land()
            assert wait_for(lambda: not telemetry.armed(), 14.0)  # land detector 0.9 s, then COM_DISARM_LAND
        finally:
            sdk.destroy()
