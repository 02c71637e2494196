"""What `quadhil plot` writes on its figures: numbers a person reads, not float reprs."""

from firmware_bridge.cli_plot import position_title


def test_position_title_gives_rmse_in_cm_with_two_decimals_and_how_the_flight_ended():
    title = position_title("flight-1", {"rmse_m": 0.0251926192322285, "final_state": "DONE", "failsafe": None})
    assert title == "flight-1: position vs reference (RMSE 2.52 cm, ended DONE, failsafe none)"


def test_position_title_of_a_flight_without_a_hover_names_the_failsafe():
    title = position_title("f", {"rmse_m": None, "final_state": "LANDED", "failsafe": "geofence breached"})
    assert "RMSE n/a" in title and "failsafe geofence breached" in title and "0.0" not in title
