"""Vehicle files are data with sources; a broken one fails loudly, naming file and field."""

import numpy as np
import pytest

from sim.vehicle import VEHICLE_DIR, VehicleFileError, known_vehicles, load_vehicle


@pytest.mark.parametrize("name", ["crazyflie", "x500"])
def test_shipped_vehicles_load_and_can_hover(name):
    v = load_vehicle(name)
    assert v.id == name
    assert 0.2 < v.hover_thrust_fraction < 0.8  # hover well inside the motors' range
    a = v.allocation_matrix()
    assert np.linalg.matrix_rank(a) == 4  # thrust and three torques are independently controllable


def test_known_vehicles_lists_the_shipped_files():
    assert {"crazyflie", "x500"} <= set(known_vehicles())


def test_thrust_curve_inverts():
    v = load_vehicle("crazyflie")
    u = np.linspace(0.05, 1.0, 50)
    np.testing.assert_allclose(v.pwm_for_thrust(v.pwm_to_thrust(u)), u, atol=1e-12)


def test_the_crazyflies_16_bit_command_is_thrust_to_thrust_max_with_a_stop_below_thrust_min():
    """motors.c motorsCompensateBatteryVoltage with platform_defaults_cf2.h: thrust = cmd / 65535 *
    THRUST_MAX (0.1125 N), and 0 (motor off) when that is below THRUST_MIN (0.02 N)."""
    v = load_vehicle("crazyflie")
    table = {0: 0.0, 11000: 0.0, 11650: 0.0, 11651: 11651 / 65535 * 0.1125, 38561: 38561 / 65535 * 0.1125,
             65535: 0.1125}
    for cmd, thrust_n in table.items():
        assert v.command_to_thrust(np.array([cmd / 65535])) == pytest.approx([thrust_n], abs=1e-12), cmd
    assert v.thrust_to_command(np.array([0.1125 / 2]))[0] == pytest.approx(0.5)
    off = v.with_battery_compensation(False)
    np.testing.assert_allclose(off.command_to_thrust(np.array([0.3, 1.0])), v.pwm_to_thrust(np.array([0.3, 1.0])))
    assert off.command_thrust_max_n == pytest.approx(v.max_thrust_n)


def test_crazyflie_motor_layout_matches_firmware_numbering():
    v = load_vehicle("crazyflie")
    # M1 front-right (x > 0, y < 0 in FLU) spinning counter-clockwise: reaction torque -z.
    # power_distribution_quadrotor.c: +yaw demand speeds up M2 and M4 (controller_pid.c negates
    # the yaw output before powerDistributionLegacy adds it to M1/M3 and subtracts it from M2/M4)
    assert v.motor_names[0] == "M1"
    assert v.rotor_position_m[0, 0] > 0 > v.rotor_position_m[0, 1]
    np.testing.assert_array_equal(v.spin_sign, [-1.0, 1.0, -1.0, 1.0])


def _write(tmp_path, text):
    path = tmp_path / "broken.toml"
    path.write_text(text)
    return path


def _base_text():
    return (VEHICLE_DIR / "crazyflie.toml").read_text()


def test_missing_field_names_file_and_field(tmp_path):
    path = _write(tmp_path, _base_text().replace("mass_kg = 0.027", ""))
    with pytest.raises(VehicleFileError, match=r"broken\.toml.*body\.mass_kg"):
        load_vehicle(path)


def test_malformed_field_names_file_and_field(tmp_path):
    path = _write(tmp_path, _base_text().replace("mass_kg = 0.027", 'mass_kg = "light"'))
    with pytest.raises(VehicleFileError, match=r"broken\.toml.*body\.mass_kg.*finite number"):
        load_vehicle(path)


def test_wrong_shape_is_refused(tmp_path):
    text = _base_text().replace("inertia_kgm2 = [16.571710e-6, 16.655602e-6, 29.261652e-6]", "inertia_kgm2 = [1e-5, 1e-5]")
    with pytest.raises(VehicleFileError, match=r"body\.inertia_kgm2.*shape \(3,\)"):
        load_vehicle(_write(tmp_path, text))


def test_missing_section_is_named(tmp_path):
    text = _base_text().split("[battery]")[0]
    with pytest.raises(VehicleFileError, match=r"missing section '\[battery\]'"):
        load_vehicle(_write(tmp_path, text))


def test_invalid_toml_is_named(tmp_path):
    with pytest.raises(VehicleFileError, match=r"broken\.toml: not valid TOML"):
        load_vehicle(_write(tmp_path, "[body\nmass_kg = "))


def test_vehicle_that_cannot_lift_itself_is_refused(tmp_path):
    text = _base_text().replace("mass_kg = 0.027", "mass_kg = 0.2")
    with pytest.raises(VehicleFileError, match="cannot lift"):
        load_vehicle(_write(tmp_path, text))


def test_unknown_vehicle_lists_known_ones():
    with pytest.raises(VehicleFileError, match="unknown vehicle 'tello'.*crazyflie"):
        load_vehicle("tello")
