"""The simulator's Crazyflie ctbr path does what the stock firmware does with the bridge's packets
(issue #26). Each table below is derived from the crazyflie-firmware source named in its test,
and each test drives the path with what firmware_bridge/links/crazyflie.py actually sends."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from firmware_bridge.links.crazyflie import ctbr_to_manual_setpoint, manual_rate_packet
from sim.command_path import (
    firmware_collective_n, motor_thrust_n, raw_pwm_battery_scale, stops_motors,
)
from sim.contract import act_to_command, default_spec, hover_action
from sim.env import HoverVecEnv
from sim.frames import quat_to_euler
from sim.randomization import RealismConfig
from sim.rate_control import Lpf2p, YawAngleLoop, lpf2p_coefficients
from sim.sitl.crazyflie.commander import Commander
from sim.vehicle import load_vehicle
from tests.sim.hover_support import hovering_env

CF = load_vehicle("crazyflie")
THRUST_MAX_N = 0.1125  # platform_defaults_cf2.h
THRUST_MIN_N = 0.02


def _wire(collective_action: float, rates=(0.0, 0.0, 0.0)):
    """The manual setpoint the bridge sends for one ctbr action, decoded as the firmware's
    manualDecoder reads it: (roll, pitch, yaw rate in deg/s, uint16 thrust, rate flag)."""
    spec = default_spec(CF)
    cmd = act_to_command(np.array([[collective_action, *rates]]), spec, CF)
    pk = manual_rate_packet(ctbr_to_manual_setpoint(cmd, CF))
    kind, roll, pitch, yaw, thrust, rate = struct.unpack("<BfffHB", bytes(pk.data))
    assert (kind, rate) == (11, 1)
    return roll, pitch, yaw, thrust, cmd


def _nominal_env(n: int = 1, yaw_rad: float = 0.0) -> HoverVecEnv:
    return hovering_env("crazyflie", n, yaw_rad=yaw_rad)


# --- 2. thrust ------------------------------------------------------------------------------

def test_the_bridges_16_bit_thrust_is_linear_in_thrust_to_thrust_max_per_motor():
    """motors.c motorsCompensateBatteryVoltage: thrust = cmd / 65535 * THRUST_MAX (the default,
    battery-compensated build), so the bridge encodes N as round(T / 4 / THRUST_MAX * 65535)."""
    spec = default_spec(CF)
    assert spec.thrust_max_n == pytest.approx(THRUST_MAX_N)
    for action, u16 in {-1.0: 0, -0.5: 16384, 0.0: 32768, 0.5: 49151, 1.0: 65535}.items():
        _, _, _, thrust, _ = _wire(action)
        assert thrust == u16, action
        # the simulator trains through the same encoding and reads it back as the firmware does
        assert firmware_collective_n(np.array([thrust]), CF)[0] == pytest.approx(4 * u16 / 65535 * THRUST_MAX_N)
    _, _, _, hover_u16, _ = _wire(hover_action(spec, CF)[0])
    assert hover_u16 == round(CF.weight_n / 4 / THRUST_MAX_N * 65535)
    # full scale is what the firmware delivers: 4 x THRUST_MAX, a thrust-to-weight of ~1.7
    assert 4 * THRUST_MAX_N / CF.weight_n == pytest.approx(1.6995, abs=1e-3)


def test_full_thrust_in_the_simulator_is_four_times_thrust_max():
    env = _nominal_env()
    s = env.task.sim.state
    for _ in range(100):  # 1 s: the motors reach their command
        env.step(np.array([[1.0, 0.0, 0.0, 0.0]]))
    assert s.thrust_n.sum() == pytest.approx(4 * THRUST_MAX_N, rel=1e-3)


def test_a_compensated_motor_below_thrust_min_stops_and_the_uncompensated_build_reads_pwm():
    t = np.array([[0.019, 0.021, 0.1125, 0.0]])
    on = motor_thrust_n(t, np.array([True]), CF)
    np.testing.assert_allclose(on, [[0.0, 0.021, 0.1125, 0.0]])
    off = motor_thrust_n(t, np.array([False]), CF)
    np.testing.assert_allclose(off, CF.pwm_to_thrust(t / THRUST_MAX_N) * (t > 0))
    assert off[0, 2] == pytest.approx(CF.max_thrust_n)  # 65535 counts = full PWM without compensation


def test_the_motor_level_app_restores_a_sagging_batterys_thrust_on_a_build_without_compensation():
    """quadhil_nn.c qh_action_to_pwm_ratio: PWM x V_curve / pm.vbat, at most full PWM (motors.c's
    rule in the compensated build). The physics then scales by the battery's (V / V_curve)^2."""
    from sim.command_path import app_battery_compensation

    asked = np.array([[0.03, 0.06, 0.09, 0.0]] * 3)
    comp = np.array([True, False, False])
    battery = np.array([1.0, 0.75, 0.75])  # a cell at 4.2 x sqrt(0.75) = 3.64 V under load
    sensed = np.array([1.0, 1.0, 1.05])  # pm.vbat read 5 % high in thrust terms on the last one
    cmd = app_battery_compensation(asked, comp, battery, sensed, CF)
    np.testing.assert_array_equal(cmd[0], asked[0])  # the firmware compensates this build itself
    delivered = cmd * battery[:, None]
    # The simulator scales the whole curve by the battery's (V / V_curve)^2 where the app assumes
    # thrust follows duty x voltage (motors.c's comment): its curve's linear term leaves 7-11 %
    # of a 25 % deficit at these thrusts, a conservative model of what the app restores.
    assert np.all(np.abs(delivered[1, :3] / asked[1, :3] - 1.0) < 0.12)
    assert np.all(delivered[1, :3] > 0.85 * asked[1, :3])
    assert np.all(delivered[2, :3] < delivered[1, :3])  # a high reading under-compensates
    assert cmd[1, 3] == 0.0  # zero stays zero
    full = app_battery_compensation(np.full((1, 4), CF.max_thrust_n), comp[1:2], battery[1:2], sensed[1:2], CF)
    np.testing.assert_allclose(full, CF.max_thrust_n)  # full PWM: the weak battery's cap stays


@pytest.mark.parametrize("vbat_v, scale", [(4.2, 1.0), (3.7, 4.2 / 3.7), (3.0, 1.4), (None, 1.0), (1.9, 1.0),
                                           (float("nan"), 1.0), (0.0, 1.0)])
def test_raw_pwm_is_scaled_by_the_curves_supply_over_the_cell_and_not_without_a_reading(vbat_v, scale):
    """quadhil_nn.c qh_action_to_pwm_ratio's rule (PWM x V_curve / pm.vbat, none below 2 V), shared by
    the twin's app mirror and the bridge's motorPowerSet path."""
    assert raw_pwm_battery_scale(vbat_v, load_vehicle("crazyflie")) == pytest.approx(scale)


def test_motor_level_episodes_on_a_build_without_compensation_fly_the_apps():
    from sim.env import HoverTaskConfig, HoverVecEnv
    from sim.contract import SPEC_LAYOUTS

    task = HoverTaskConfig(realism=RealismConfig(uncompensated_fraction=1.0, sensor_noise=False))
    spec = SPEC_LAYOUTS["default"](CF, "motors", 250.0)
    env = HoverVecEnv("crazyflie", 64, spec=spec, config=task, seed=3)
    env.reset(seed=3)
    p = env.task.sim.params
    assert not p.compensated.any()
    assert p.battery_thrust_scale.min() < 0.8 and np.all(np.abs(p.battery_sense_ratio - 1.0) <= 0.05 + 1e-12)
    seen = []
    step = env.task.sim.step
    env.task.sim.step = lambda thrust, n: (seen.append(np.array(thrust)), step(thrust, n))
    env.step(np.zeros((64, 4)))
    asked = 0.5 * spec.thrust_max_n
    delivered = seen[0] * p.battery_thrust_scale[:, None]
    raw = asked * p.battery_thrust_scale[:, None]  # what the same command gave before the app compensated
    weak = p.battery_thrust_scale < 0.85
    assert np.all(np.abs(delivered[weak] / asked - 1.0) < np.abs(raw[weak] / asked - 1.0))
    assert np.all(np.abs(delivered / asked - 1.0) < 0.16)  # the curve's shape and a 5 % reading error


# --- 4. zero thrust -------------------------------------------------------------------------

def test_collective_minus_one_is_thrust_zero_which_stops_the_motors_and_resets_every_pid():
    """controller_pid.c: ``if (control->thrust == 0)`` zeroes roll, pitch, yaw and calls
    controllerResetAllPids; ``attitudeDesired.yaw = state->attitude.yaw``. The simulator models it
    (the bridge sends what the policy asks)."""
    _, _, _, thrust, _ = _wire(-1.0, (0.2, -0.1, 0.4))
    assert thrust == 0 and stops_motors(np.array([thrust]), CF)[0]
    _, _, _, thrust, _ = _wire(-1.0 + 2.0 / 65535)
    assert thrust == 1 and not stops_motors(np.array([thrust]), CF)[0]
    env = _nominal_env(yaw_rad=0.3)
    task = env.task
    for _ in range(5):  # wind up the integrators and move the yaw setpoint
        env.step(np.array([[0.2, 0.5, -0.5, 0.8]]))
    assert np.abs(task.rate_ctrl.integral).max() > 0 and abs(task.yaw_loop.integ[0]) > 0
    before = task.sim.state.thrust_n.copy()
    env.step(np.array([[-1.0, 0.5, -0.5, 0.8]]))
    assert np.all(task.rate_ctrl.integral == 0.0) and task.yaw_loop.integ[0] == 0.0
    yaw_now = math.degrees(quat_to_euler(task.sim.state.quat_wb)[0, 2])
    assert task.yaw_loop.yaw_desired_deg[0] == pytest.approx(yaw_now, abs=0.5)  # reset at the last rate tick
    # every motor commanded 0: each spins down along its (249 ms) time constant
    expected = before * math.exp(-0.01 / CF.tau_down_s)
    np.testing.assert_allclose(task.sim.state.thrust_n, expected, rtol=0.05)


# --- 1. yaw ---------------------------------------------------------------------------------

def _firmware_yaw_table(yaw_rate_cmd_dps, yaw_deg, dt=1.0 / 500.0, kp=6.0, ki=1.0, kd=0.35, ilimit=360.0):
    """controller_pid.c velocity-mode yaw and attitude_pid_controller.c / pid.c pidUpdate for the
    yaw angle, written out line by line from the firmware (scalar, one step per 500 Hz tick)."""

    def cap(a):
        while a > 180.0:
            a -= 360.0
        while a < -180.0:
            a += 360.0
        return a

    desired, integ, prev, out = 0.0, 0.0, 0.0, []
    desired = yaw_deg[0]  # attitudeDesired.yaw = state->attitude.yaw after thrust 0
    for cmd, yaw in zip(yaw_rate_cmd_dps, yaw_deg):
        desired = cap(desired + cmd * dt)
        error = cap(desired - yaw)  # pidUpdate with isYawAngle: error wrapped to +-180
        deriv = (error - prev) / dt
        integ = min(max(integ + error * dt, -ilimit), ilimit)
        prev = error
        out.append(kp * error + kd * deriv + ki * integ)
    return np.array(out)


def test_the_yaw_rate_command_moves_a_yaw_angle_setpoint_through_the_attitude_pid():
    _, _, yaw_dps, _, _ = _wire(0.0, (0.0, 0.0, 0.6))  # the bridge sends deg/s
    assert yaw_dps == pytest.approx(math.degrees(0.6 * 5.0))
    rng = np.random.default_rng(0)
    cmds = np.concatenate([np.full(300, yaw_dps), rng.uniform(-200, 200, 300)])
    yaws = cap = np.cumsum(rng.normal(0.0, 0.5, 600)) + 170.0  # crosses +-180
    yaws = (cap + 180.0) % 360.0 - 180.0
    loop = YawAngleLoop(1, 6.0, 1.0, 0.35, 360.0, 1.0 / 500.0)
    loop.reset(None, np.array([yaws[0]]))
    got = np.array([loop.update(np.array([c]), np.array([y]))[0] for c, y in zip(cmds, yaws)])
    np.testing.assert_allclose(got, _firmware_yaw_table(cmds, yaws), rtol=1e-9, atol=1e-9)


def test_the_twins_yaw_loop_and_the_simulators_agree_on_the_bridges_packets():
    from sim.sitl.crazyflie.controller import PidController

    commander = Commander()
    roll, pitch, yaw_dps, thrust, _ = _wire(0.1, (0.0, 0.0, -0.4))
    commander.handle_generic(0, bytes(manual_rate_packet(ctbr_to_manual_setpoint(
        act_to_command(np.array([[0.1, 0.0, 0.0, -0.4]]), default_spec(CF), CF), CF)).data), 0.0)
    sp = commander.current(0.0)
    assert sp.yaw_rate_dps == pytest.approx(yaw_dps) and sp.thrust == thrust
    twin = PidController(CF)
    loop = YawAngleLoop.for_vehicle(CF, 1, 1.0 / 500.0)
    twin.update(sp, (0.0, 0.0, 10.0), np.zeros((1, 3)))  # first call: mode change resets to this yaw
    loop.reset(None, np.array([10.0]))
    twin.yaw_desired_deg = 10.0
    for pid in twin.att.values():
        pid.reset()
    for k in range(200):
        yaw = 10.0 - 0.05 * k
        twin.update(sp, (0.0, 0.0, yaw), np.zeros((1, 3)))
        ref = loop.update(np.array([sp.yaw_rate_dps]), np.array([yaw]))[0]
        assert twin.rate_desired_dps[2] == pytest.approx(ref, rel=1e-9, abs=1e-9)


def test_after_a_yaw_rate_pulse_the_vehicle_holds_the_integrated_angle():
    """The signature of the angle loop: 0.5 s of +1 rad/s, then 0: the vehicle lags the ramp, and
    after the command stops keeps turning until it reaches the integrated 0.5 rad (a plain rate
    loop would stop wherever the lag left it)."""
    env = _nominal_env()
    spec = env.spec
    hover = hover_action(spec, CF)[0]
    rate = 1.0 / spec.body_rate_max_rad_s[2]
    yaws = []
    for tick in range(490):
        env.step(np.array([[hover, 0.0, 0.0, rate if tick < 50 else 0.0]]))
        yaws.append(quat_to_euler(env.task.sim.state.quat_wb)[0, 2])
    assert yaws[49] < 0.45  # behind the setpoint when the command stops
    assert np.mean(yaws[-100:]) == pytest.approx(0.5, abs=0.02)
    assert np.ptp(yaws[-100:]) < 0.03


# --- 5. gyro low-pass -----------------------------------------------------------------------

def test_the_gyro_filter_is_the_firmwares_80_hz_two_pole_butterworth_at_1_khz():
    """filter.c lpf2pSetCutoffFreq at GYRO_LPF_CUTOFF_FREQ 80 (sensors_bmi088_bmp3xx.c), 1 kHz:
    the bilinear Butterworth, the same as scipy's design with pre-warping."""
    from scipy import signal

    assert (CF.command_path.gyro_lpf_cutoff_hz, CF.command_path.gyro_lpf_sample_hz) == (80.0, 1000.0)
    b0, b1, b2, a1, a2 = lpf2p_coefficients(1000.0, 80.0)
    b, a = signal.butter(2, 80.0, fs=1000.0)
    np.testing.assert_allclose([b0, b1, b2], b, rtol=1e-12)
    np.testing.assert_allclose([1.0, a1, a2], a, rtol=1e-12)
    f = Lpf2p(1, 1000.0, 80.0)
    step = np.array([f.apply(np.ones((1, 3)))[0, 0] for _ in range(20)])
    np.testing.assert_allclose(step, signal.lfilter(b, a, np.ones(20)), rtol=1e-12)
    assert step[1] < 0.2 and step[-1] == pytest.approx(1.0, abs=0.01)  # ~3 ms late, no offset


def test_the_simulated_rate_loop_sees_the_filtered_gyro():
    env = _nominal_env()
    rc = env.task.rate_ctrl
    assert rc.gyro_filter is not None and rc.gyro_filter.sample_hz == 1000.0
    env.task.sim.state.omega_b[:] = [2.0, 0.0, 0.0]  # a sudden roll rate
    seen = rc.filter_gyro(env.task.sim.state.omega_b)
    assert 0.0 < seen[0, 0] < 0.2 * 2.0


# --- 3./7. motor lag and the randomization's spread ------------------------------------------

def test_randomized_crazyflies_cover_the_published_spread():
    from sim.randomization import sample_params

    p = sample_params(CF, 20000, np.random.default_rng(0), RealismConfig())
    up, down = p.tau_up_s[:, 0], p.tau_down_s[:, 0]
    assert up.min() < 0.027 and up.max() > 0.095  # 25 ms .. 100 ms
    assert down.max() > 0.235 and np.all(down >= up)  # .. 249 ms (L2F 2.0.18), never faster than up
    assert p.torque_to_thrust_m.min() < 0.0065 and p.torque_to_thrust_m.max() > 0.032
    assert p.rate_gain_scale.min() < 0.52 and p.rate_gain_scale.max() > 1.9
    assert 0.17 < p.rate_p_only.mean() < 0.23
    assert p.noise_scale.min() < 0.05 and p.noise_scale.max() > 2.9
    # thrust-to-weight of what the full command delivers, over both firmware builds
    full = np.where(p.compensated, THRUST_MAX_N, CF.max_thrust_n)[:, None] * p.thrust_gain
    tw = full.sum(axis=1) / (p.mass_kg * 9.80665)
    assert tw.min() < 1.5 and tw.max() > 2.8
    assert ((tw > 1.8) & (tw < 2.8)).mean() > 0.2


def test_training_may_weight_the_uncompensated_build_and_leaves_the_other_draws_alone():
    from sim.randomization import sample_params

    file_p = sample_params(CF, 20000, np.random.default_rng(0), RealismConfig())
    assert 0.23 < (~file_p.compensated).mean() < 0.27  # the file's 0.25
    half = sample_params(CF, 20000, np.random.default_rng(0), RealismConfig(uncompensated_fraction=0.5))
    assert 0.48 < (~half.compensated).mean() < 0.52
    np.testing.assert_array_equal(half.mass_kg, file_p.mass_kg)  # the same stream before the build's draw
    np.testing.assert_array_equal(half.tau_up_s, file_p.tau_up_s)
    none = sample_params(CF, 1000, np.random.default_rng(0), RealismConfig(uncompensated_fraction=0.0))
    assert none.compensated.all()


def test_the_twins_controller_sees_its_1_khz_gyro_through_the_same_filter():
    from sim.sitl.crazyflie.twin import CrazyflieTwin

    twin = CrazyflieTwin()
    ref = Lpf2p(1, 1000.0, 80.0)
    for _ in range(3):
        expected = ref.apply(np.array([[1.0, 0.0, 0.0]]))
        twin.sim.state.omega_b[0] = [1.0, 0.0, 0.0]  # set each tick: on the ground the twin zeroes it
        twin.tick()
        np.testing.assert_allclose(twin.filtered_omega_b, expected, rtol=1e-12)
    assert twin.filtered_omega_b[0, 0] < 0.5
