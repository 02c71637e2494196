"""A positive body yaw-torque command turns the vehicle counter-clockwise (positive FLU yaw rate)
through every motor-level path (issue #19 item 1), with the motor pattern taken from the
firmware's own mixing table, not from quadhil's vehicle file:

* Crazyflie, crazyflie-firmware src/modules/src/power_distribution_quadrotor.c
  ``powerDistributionLegacy``: m1 += yaw, m2 -= yaw, m3 += yaw, m4 -= yaw, after controller_pid.c
  negated the yaw rate PID's output (``control->yaw = -control->yaw``); ``powerDistributionForceTorque``
  the same: -yawPart on M1/M3, +yawPart on M2/M4. +yaw demand: M1 -, M2 +, M3 -, M4 +.
* PX4 x500, ROMFS/px4fmu_common/init.d-posix/airframes/4001_gz_x500: CA_ROTOR0..3_KM +0.05,
  +0.05, -0.05, -0.05 (positive KM: counter-clockwise rotor, whose drag turns the body clockwise),
  so +yaw speeds up rotors 2 and 3: 1 -, 2 -, 3 +, 4 +.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from sim.contract import default_spec, hover_action
from sim.env import HoverVecEnv
from sim.sitl import app_channel as ac
from sim.sitl.crazyflie import crtp
from sim.sitl.crazyflie.twin import CrazyflieTwin, TwinConfig
from sim.vehicle import load_vehicle
from tests.sim.hover_support import hovering_env

CF_YAW_MIX = np.array([-1.0, 1.0, -1.0, 1.0])  # power_distribution_quadrotor.c, +yaw demand
X500_YAW_MIX = np.array([-1.0, -1.0, 1.0, 1.0])  # 4001_gz_x500 CA_ROTOR*_KM signs
DELTA = 0.1  # of the normalized action


def _hovering_env(vehicle: str, mode: str) -> HoverVecEnv:
    return hovering_env(vehicle, spec=default_spec(load_vehicle(vehicle), mode))


@pytest.mark.parametrize("vehicle, mix", [("crazyflie", CF_YAW_MIX), ("x500", X500_YAW_MIX)])
def test_simulator_motor_actions_in_the_firmwares_yaw_pattern_turn_the_vehicle_ccw(vehicle, mix):
    env = _hovering_env(vehicle, "motors")
    action = hover_action(env.spec, env.task.vehicle) + DELTA * mix
    for _ in range(20):
        env.step(action[None])
    assert env.task.sim.state.omega_b[0, 2] > 0.05
    assert abs(env.task.sim.state.omega_b[0, 0]) < 0.01 and abs(env.task.sim.state.omega_b[0, 1]) < 0.01


def test_simulator_ctbr_yaw_rate_command_turns_the_crazyflie_ccw():
    env = _hovering_env("crazyflie", "ctbr")
    action = hover_action(env.spec, env.task.vehicle) + np.array([0.0, 0.0, 0.0, 0.2])
    for _ in range(20):
        env.step(action[None])
    assert env.task.sim.state.omega_b[0, 2] > 0.3


def _airborne_twin(**params) -> CrazyflieTwin:
    twin = CrazyflieTwin(TwinConfig(start_m=(0.0, 0.0, 1.0)))
    for name, value in params.items():
        twin.params.set(name, value)
    for _ in range(200):  # pre-flight checks and auto-arming (the twin holds the start height)
        twin.tick()
    s = twin.sim.state
    s.pos_w[0] = (0.0, 0.0, 1.0)
    s.vel_w[0] = 0.0
    s.omega_b[0] = 0.0
    s.on_ground[0] = False
    s.thrust_n[0] = twin.vehicle.weight_n / 4
    return twin


def _yaw_rate_after(twin: CrazyflieTwin, feed, ticks: int = 200) -> float:
    for k in range(ticks):
        if k % 10 == 0:
            feed(twin, k // 10)
        twin.tick()
    return float(twin.sim.state.omega_b[0, 2])


def test_twin_relay_app_packets_in_the_firmwares_yaw_pattern_turn_it_ccw():
    twin = _airborne_twin(**{"quadhil.mode": 1, "quadhil.enable": 1})
    hover = 2.0 * twin.vehicle.hover_thrust_fraction - 1.0
    actions = hover + DELTA * CF_YAW_MIX

    def feed(t, seq):
        t.handle_datagram(crtp.encode(ac.APP_CHANNEL_PORT, ac.APP_CHANNEL_CHANNEL,
                                      ac.encode_motors(seq + 1, actions)))

    assert _yaw_rate_after(twin, feed) > 0.05


def test_twin_motor_power_params_in_the_firmwares_yaw_pattern_turn_it_ccw():
    twin = _airborne_twin()
    hover_pwm = twin.vehicle.pwm_for_thrust(np.array([twin.vehicle.weight_n / 4]))[0] * 65535
    for i, sign in enumerate(CF_YAW_MIX):
        twin.params.set(f"motorPowerSet.m{i + 1}", int(round(hover_pwm * (1 + 0.1 * sign))))
    twin.params.set("motorPowerSet.enable", 1)

    def feed(t, seq):  # the stock commander must keep a setpoint for the supervisor
        t.commander.handle_generic(0, b"\x0b" + struct.pack("<fffHB", 0, 0, 0, 30000, 1), t.now_s())

    assert _yaw_rate_after(twin, feed) > 0.05


def test_twin_stock_controller_turns_ccw_for_a_positive_yaw_rate_packet():
    from firmware_bridge.links.crazyflie import ctbr_to_manual_setpoint, manual_rate_packet
    from sim.contract import act_to_command

    twin = _airborne_twin()
    spec = default_spec(twin.vehicle)
    action = hover_action(spec, twin.vehicle) + np.array([0.0, 0.0, 0.0, 0.1])
    pk = manual_rate_packet(ctbr_to_manual_setpoint(act_to_command(action[None], spec, twin.vehicle), twin.vehicle))

    def feed(t, seq):
        t.handle_datagram(crtp.encode(pk.port, pk.channel, bytes(pk.data)))

    assert _yaw_rate_after(twin, feed) > 0.1


def test_the_onboard_c_mapping_keeps_motor_order_and_its_forces_turn_the_twin_ccw(tmp_path):
    from tests.firmware_bridge.onboard_support import build

    built = build(tmp_path)
    hover = hover_action(built.spec, built.vehicle)
    actions = (hover + DELTA * CF_YAW_MIX).astype(np.float32)
    ratios = np.frombuffer(built.run("pwm", "4", "1.0", data=actions.tobytes()), dtype=np.float32)
    assert np.all(np.sign(np.diff(ratios)) == np.sign(np.diff(actions)))  # M1..M4 in order
    twin = _airborne_twin()
    forces_n = twin.vehicle.command_to_thrust(ratios.astype(np.float64))  # powerDistributionForce + compensation

    def feed(t, seq):
        t.set_motor_override(forces_n)

    assert _yaw_rate_after(twin, feed) > 0.05
    assert math.isfinite(float(twin.sim.state.omega_b[0, 2]))
