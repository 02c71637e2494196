"""The bridge's battery rule for a firmware without the ``pm`` log group (CrazySim's SITL build):
declared simulated over udp:// (software only), refused over a radio (real hardware)."""

from firmware_bridge.links.crazyflie import SITL_BATTERY_V, CrazyflieLink
from firmware_bridge.supervisor import Limits, PreflightInputs, preflight_refusals


def _battery_refusals(battery_v):
    inp = PreflightInputs(spec_vehicle="crazyflie", spec_firmware="crazyflie-firmware", spec_action_mode="ctbr",
                          link_firmware="crazyflie-firmware", link_action_modes=("ctbr",), state=None,
                          battery_v=battery_v)
    return [r for r in preflight_refusals(inp, Limits(control_period_s=0.02, battery_min_v=3.2)) if "battery" in r]


def test_over_udp_a_firmware_without_pm_gets_a_declared_simulated_battery_the_log_names():
    link = CrazyflieLink("udp://127.0.0.1:19850")
    link._battery_without_pm_group()
    assert link.battery_v == SITL_BATTERY_V
    assert "no pm log group" in link.describe()["battery_source"]
    assert _battery_refusals(link.battery_v) == []


def test_over_a_radio_a_firmware_without_pm_has_no_battery_reading_and_the_supervisor_refuses():
    link = CrazyflieLink("radio://0/80/2M/E7E7E7E7E7")
    link._battery_without_pm_group()
    assert link.battery_v is None
    assert link.describe()["battery_source"].startswith("none")
    assert _battery_refusals(link.battery_v) == ["no battery reading"]
