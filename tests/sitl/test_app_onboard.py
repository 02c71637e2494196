"""Mode 2 of quadhil's onboard app in the Crazyflie twin: the app's own C (quadhil_nn.c, built for
the host and called through ctypes) flies the motors from the twin's estimate, with the app's
refusals, start, commander feed and STATUS reports (quadhil_app.c), and both ways of flying a
motor-level policy through real cflib: the bridge relaying motor commands (mode 1) and the app's
onboard network following SETPOINT packets (mode 2, ``quadhil fly --onboard``).

The policy flown is tests/sitl/onboard_policy.py's: a trained one when there is one (then hover is
asserted), else a constant-action stand-in (then the chain and the safety paths are: refusals, the
link watchdog's landing (quadhil.lossMs), its resume, and what disables the app). A stand-in of
layout "integral" checks the position-error integral both ways: the app's (in the twin) and the
bridge's (relayed)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.sitl import app_channel as ac
from sim.sitl.crazyflie import app_policy, app_relay, crtp
from sim.sitl.crazyflie.supervisor import State
from sim.sitl.crazyflie.twin import CrazyflieTwin, TwinConfig
from tests.sitl.app_support import app_statuses
from tests.sitl.conftest import serving
from tests.sitl import onboard_policy

HOVER_RMSE_M = 0.10  # trained policy, hover at the target through either path


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> onboard_policy.MotorsPolicy:
    p = onboard_policy.prepare(tmp_path_factory.mktemp("motors-policy"))
    print(f"motor-level policy flown: {p.name}")
    return p


@pytest.fixture(scope="module")
def integral_policy(tmp_path_factory) -> onboard_policy.MotorsPolicy:
    return onboard_policy.integral_stand_in(tmp_path_factory.mktemp("integral-policy"))


def _setpoint(twin, seq: int, target) -> None:
    twin.handle_datagram(crtp.encode(ac.APP_CHANNEL_PORT, ac.APP_CHANNEL_CHANNEL, ac.encode_setpoint(seq, target)))


def _airborne_twin(weights: Path | None, z_m: float = 1.0) -> CrazyflieTwin:
    """A twin whose app runs ``weights`` in mode 2 from a start ``z_m`` up (the throw a hover policy
    is trained to recover from: the motors are allowed after the pre-flight checks)."""
    twin = CrazyflieTwin(TwinConfig(start_m=(0.0, 0.0, z_m), app_policy=None if weights is None else str(weights)))
    twin.params.set("quadhil.mode", 2)
    twin.params.set("quadhil.enable", 1)
    return twin


# ---------------------------------------------------------------------- the app's C in the twin

def _check_each_policy_tick(policy) -> tuple[np.ndarray, CrazyflieTwin]:
    """Fly ``policy`` in mode 2 from 1 m up for 300 ms; at each policy tick the twin's C
    must be sim.contract's observation (with integrate_position_error's integral, from zero at the
    start, for layouts that hold it), the .tflite's action, and the relay's motor path. Returns the
    app's integral at the end and the twin."""
    from deploy.runtime import Policy
    from sim.contract import act_to_command, integrate_position_error, observe

    net = Policy.load(policy.tflite)
    twin = _airborne_twin(policy.weights_h)
    rs = app_relay.relay_state(twin)
    integral = np.zeros((1, 3))
    ticks = checked = 0
    ms = 300
    for _ in range(ms):
        twin.tick()
        if rs.policy_ticks == ticks:
            continue
        ticks = rs.policy_ticks
        # the float32 values the app's C saw
        pos, vel, quat, omega, target, history = (np.asarray(x, np.float32).astype(np.float64) for x in rs.last_inputs)
        integral = integrate_position_error(integral, pos[None], target, net.spec)
        if net.spec.uses_position_integral:
            assert np.allclose(rs.position_integral, integral[0], rtol=0, atol=1e-6), "the app's integral differs"
        else:
            assert not rs.position_integral.any(), "a network without the integral leaves it at zero"
        expected_obs = observe(pos[None], vel[None], quat[None], omega[None], target, history[None], net.spec,
                               position_error_integral=integral)[0]
        assert np.allclose(rs.last_obs, expected_obs, atol=1e-5), "the C observation differs from sim.contract"
        action = np.asarray(net.act(expected_obs), dtype=np.float64)
        assert np.allclose(rs.last_action, action, atol=1e-5), "the C forward pass differs from the .tflite"
        if not twin.supervisor.motors_allowed:
            continue
        thrust = twin.vehicle.command_to_thrust(act_to_command(action[None], net.spec, twin.vehicle).thrust_fraction[0])
        assert np.allclose(twin.motor_cmd_n[0], thrust, rtol=1e-4, atol=1e-6), "motors differ from the relay's mapping"
        checked += 1
    assert ticks == -(-ms // (1000 // int(rs.policy.rate_hz))) and checked >= 25, "one per RATE_DO_EXECUTE step"
    return rs.position_integral.copy(), twin


def test_each_policy_tick_is_the_contracts_observation_the_tflites_action_and_the_relays_motor_path(policy):
    _check_each_policy_tick(policy)


def test_an_integral_network_sees_the_contracts_integral_which_the_app_advances_each_policy_tick(integral_policy):
    integral, _ = _check_each_policy_tick(integral_policy)
    assert np.max(np.abs(integral)) > 1e-3, "the flight must move the integral"


def test_the_integral_starts_from_zero_each_time_the_policy_takes_over(integral_policy):
    from deploy.runtime import Policy
    from sim.contract import integrate_position_error

    integral, twin = _check_each_policy_tick(integral_policy)
    assert np.max(np.abs(integral)) > 1e-3
    rs = app_relay.relay_state(twin)
    twin.params.set("quadhil.enable", 0)
    twin.tick()
    twin.params.set("quadhil.enable", 1)
    ticks = rs.policy_ticks
    while rs.policy_ticks == ticks:
        twin.tick()
    pos, target = (np.asarray(x, np.float32).astype(np.float64) for x in (rs.last_inputs[0], rs.last_inputs[4]))
    once = integrate_position_error(np.zeros((1, 3)), pos[None], target, Policy.load(integral_policy.tflite).spec)
    assert np.allclose(rs.position_integral, once[0], rtol=0, atol=1e-7), "one tick on from zero"


def test_the_policy_runs_at_its_rate_and_holds_the_motors_between_its_ticks(policy):
    twin = _airborne_twin(policy.weights_h)
    rs = app_relay.relay_state(twin)
    ran, changed = [], []
    prev_ticks, prev_motors = 0, twin.motor_cmd_n.copy()
    for _ in range(1000):
        step = twin.ticks
        twin.tick()
        if rs.policy_ticks != prev_ticks:
            ran.append(step)
        elif twin.supervisor.motors_allowed and step > 250 and not np.array_equal(twin.motor_cmd_n, prev_motors):
            changed.append(step)
        prev_ticks, prev_motors = rs.policy_ticks, twin.motor_cmd_n.copy()
    assert ran == list(range(0, 1000, 1000 // policy.rate_hz)), "RATE_DO_EXECUTE(rate, step) on the 1 kHz step"
    assert changed == [], "between its ticks the motors keep the last forces"


def test_the_first_tick_aims_at_the_estimated_position_and_reports_started(policy):
    twin = _airborne_twin(policy.weights_h, z_m=0.7)
    twin.tick()
    rs = app_relay.relay_state(twin)
    assert np.allclose(rs.target_w, (0.0, 0.0, 0.7))
    assert [(s.state, s.event) for s in app_statuses(twin)] == [(ac.AppState.POLICY, ac.AppEvent.STARTED)]


def test_a_setpoint_before_the_start_is_the_first_target(policy):
    twin = CrazyflieTwin(TwinConfig(start_m=(0.0, 0.0, 0.7), app_policy=str(policy.weights_h)))
    _setpoint(twin, 1, (0.2, -0.1, 1.0))
    twin.params.set("quadhil.mode", 2)
    twin.params.set("quadhil.enable", 1)
    twin.tick()
    assert np.allclose(app_relay.relay_state(twin).target_w, (0.2, -0.1, 1.0))


def _refused_weights(tmp_path: Path, vehicle: str, mode: str, rate_hz: float) -> Path:
    from deploy.export_c import render_header
    from tests.firmware_bridge.onboard_support import make_actor

    actor, spec, veh = make_actor(vehicle, mode, control_rate_hz=rate_hz)
    text, _ = render_header(actor, spec, veh)
    path = tmp_path / f"{vehicle}-{mode}-{rate_hz:g}.h"
    path.write_text(text)
    return path


@pytest.mark.parametrize("vehicle, mode, rate_hz, why", [
    (None, None, None, "'none: run quadhil export --format c'"),  # the app's committed placeholder
    ("x500", "motors", 100.0, "'x500'"),
    ("crazyflie", "ctbr", 100.0, "(ctbr, 100 Hz)"),
    ("crazyflie", "motors", 300.0, "(motors, 300 Hz)"),
])
def test_mode_2_refuses_what_the_app_refuses_with_motors_off_and_one_status(tmp_path, vehicle, mode, rate_hz, why):
    weights = None if vehicle is None else _refused_weights(tmp_path, vehicle, mode, rate_hz)
    twin = _airborne_twin(weights, z_m=0.0)
    for _ in range(300):
        twin.tick()
    rs = app_relay.relay_state(twin)
    assert np.all(twin.motor_cmd_n == 0)
    assert [(s.state, s.event) for s in app_statuses(twin)] == [(ac.AppState.REFUSED, ac.AppEvent.NONE)]
    assert why in rs.last_error and "need crazyflie, motors, a divisor of 1000 Hz" in rs.last_error
    assert rs.policy_ticks == 0


def test_with_lossMs_0_the_app_keeps_flying_without_setpoints_and_feeds_the_commander_itself(policy):
    """quadhil.lossMs = 0 switches mode 2's link watchdog off (documented as unsafe): SETPOINTs only
    move the target, and the app feeds the commander every 100 ms, so the supervisor never levels
    out or locks it."""
    twin = _airborne_twin(policy.weights_h)
    twin.params.set("quadhil.lossMs", 0)
    for _ in range(3000):  # 3 s without any packet: past the commander's 0.5 s and 2 s watchdogs
        twin.tick()
        if twin.supervisor.motors_allowed and twin.ticks > 600:
            assert twin.commander.inactivity_s(twin.now_s()) <= 0.1 + 0.001 + 1e-9  # 100 ms, checked a tick later
    rs = app_relay.relay_state(twin)
    assert rs.state == ac.AppState.POLICY and rs.watchdog_trips == 0
    assert twin.supervisor.state == State.FLYING
    assert np.all(twin.motor_cmd_n > 0)


def _fly_until(twin, rs, done, limit_s: float) -> None:
    for _ in range(int(limit_s * 1000)):
        twin.tick()
        if done():
            return
    raise AssertionError(f"not within {limit_s} s: state {rs.state.name}, z {twin.sim.state.pos_w[0, 2]:.2f} m")


def test_a_silent_client_trips_the_link_watchdog_after_lossMs_and_the_app_lands_and_stays_off(policy):
    """quadhil_app.c followLink: lossMs (500 ms by default) after the policy started without a packet,
    state link_lost (event watchdog, one STATUS, wdTrips + 1); the target sinks at 0.3 m/s from the
    lower of itself and the estimate, the feed goes on; then the motors are cut (on the ground, or the
    target 0.3 m below the estimate for 1 s) and stay off, the feed stops."""
    twin = _airborne_twin(policy.weights_h)
    assert twin.params.get("quadhil.lossMs") == ac.DEFAULT_LINK_LOSS_MS == 500
    rs = app_relay.relay_state(twin)
    _fly_until(twin, rs, lambda: rs.state == ac.AppState.LINK_LOST, 1.0)
    trip_s = rs.loss_times_s[0]
    assert len(rs.loss_times_s) == 1 and round(trip_s * 1000) == 500, "started at 0 ms, no packet: trips at 500 ms"
    assert [(s.state, s.event, s.watchdog_trips) for s in app_statuses(twin)] == [
        (ac.AppState.POLICY, ac.AppEvent.STARTED, 0), (ac.AppState.LINK_LOST, ac.AppEvent.WATCHDOG, 1)]
    z_trip = rs.loss_trip_z_m
    assert z_trip < 1.0, "the stand-in sinks before the supervisor lets its motors run, so does a trained one"
    assert rs.target_w[2] == pytest.approx(z_trip), "the target (1.0 m) drops to the estimate: never climb on a lost link"
    target_z = rs.target_w[2]
    for _ in range(100):  # 100 ms: 0.1 s x the policy's rate ticks, each sinking 0.3 m/s / rate
        twin.tick()
    ticks = 100 // (1000 // policy.rate_hz)
    assert rs.target_w[2] == pytest.approx(target_z - ticks * 0.3 / policy.rate_hz, abs=1e-5)
    assert np.all(twin.motor_cmd_n > 0), "the policy keeps flying the descent"
    assert twin.commander.inactivity_s(twin.now_s()) <= 0.1 + 0.001 + 1e-9, "the feed goes on during the descent"
    _fly_until(twin, rs, lambda: rs.loss_cut, z_trip / 0.3 + 2.0 - 0.1)
    print(f"link loss ({policy.name}): trip at {trip_s:.3f} s, z {z_trip:.2f} m; motors cut "
          f"{rs.loss_cut_s - trip_s:.2f} s later at z {twin.est_pos[2]:.2f} m")
    z_cut = float(twin.sim.state.pos_w[0, 2])
    for _ in range(3000):  # stays off, whatever arrives: a SETPOINT after the cut does not resume
        twin.tick()
        if twin.ticks % 500 == 0:
            _setpoint(twin, twin.ticks // 500, (0.0, 0.0, 1.0))
        assert np.all(twin.motor_cmd_n == 0) and rs.state == ac.AppState.LINK_LOST
    assert float(twin.sim.state.pos_w[0, 2]) < min(z_cut, 0.05), "the vehicle came down"
    assert twin.commander.inactivity_s(twin.now_s()) > 2.0, "no feed after the cut"
    assert rs.watchdog_trips == 1


def test_a_link_lost_on_the_ground_cuts_the_motors_at_the_next_policy_tick(policy):
    """The estimate's z below 0.05 m after a trip: on the ground, motors off at once."""
    twin = _airborne_twin(policy.weights_h, z_m=0.0)
    twin.params.set("quadhil.lossMs", 100)
    rs = app_relay.relay_state(twin)
    _fly_until(twin, rs, lambda: rs.loss_cut, 1.0)
    assert round(rs.loss_times_s[0] * 1000) == 100 and rs.loss_trip_z_m < 0.05
    assert round((rs.loss_cut_s - rs.loss_times_s[0]) * 1000) == 1000 // policy.rate_hz
    for _ in range(500):
        twin.tick()
        assert np.all(twin.motor_cmd_n == 0)
    assert rs.state == ac.AppState.LINK_LOST


def test_a_setpoint_during_the_descent_resumes_the_policy_at_its_target(policy):
    twin = _airborne_twin(policy.weights_h)
    rs = app_relay.relay_state(twin)
    _fly_until(twin, rs, lambda: rs.state == ac.AppState.LINK_LOST, 1.0)
    for _ in range(300):
        twin.tick()
    assert rs.state == ac.AppState.LINK_LOST and not rs.loss_cut
    twin.outbox.clear()
    _setpoint(twin, 1, (0.0, 0.0, 1.5))
    for _ in range(1000 // policy.rate_hz):  # the policy's next tick
        twin.tick()
    assert [(s.state, s.event) for s in app_statuses(twin)] == [(ac.AppState.POLICY, ac.AppEvent.RESUMED)]
    assert np.allclose(rs.target_w, (0.0, 0.0, 1.5)), "the packet's target, no longer sinking"
    z0 = float(twin.sim.state.pos_w[0, 2])
    for _ in range(490):  # within lossMs of the SETPOINT
        twin.tick()
    assert rs.state == ac.AppState.POLICY and np.all(twin.motor_cmd_n > 0)
    if policy.trained:  # the stand-in's constant thrust ignores the target
        assert float(twin.sim.state.pos_w[0, 2]) > z0, "climbs back towards the 1.5 m target"
    _fly_until(twin, rs, lambda: rs.state == ac.AppState.LINK_LOST, 0.1)  # and the watchdog is armed again
    assert rs.watchdog_trips == 2


def test_disabling_the_app_after_a_loss_landing_gives_idle_and_a_restart_flies_again(policy):
    twin = _airborne_twin(policy.weights_h)
    rs = app_relay.relay_state(twin)
    _fly_until(twin, rs, lambda: rs.loss_cut, 8.0)
    twin.outbox.clear()
    twin.params.set("quadhil.enable", 0)
    twin.tick()
    assert [(s.state, s.event) for s in app_statuses(twin)] == [(ac.AppState.IDLE, ac.AppEvent.DISABLED)]
    assert not rs.loss_cut and twin._override_n is None
    twin.outbox.clear()
    twin.params.set("quadhil.enable", 1)
    for _ in range(1000 // policy.rate_hz):
        twin.tick()
    assert [(s.state, s.event) for s in app_statuses(twin)] == [(ac.AppState.POLICY, ac.AppEvent.STARTED)]


def test_disabling_the_app_hands_the_motors_to_the_pid_and_a_restart_keeps_the_target(policy):
    twin = _airborne_twin(policy.weights_h)
    for _ in range(500):
        twin.tick()
    _setpoint(twin, 1, (0.0, 0.0, 1.2))
    twin.outbox.clear()
    twin.params.set("quadhil.enable", 0)
    twin.tick()
    twin.tick()
    assert [(s.state, s.event) for s in app_statuses(twin)] == [(ac.AppState.IDLE, ac.AppEvent.DISABLED)]
    assert twin._override_n is None
    assert np.all(twin.motor_cmd_n == 0), "the PID controller on the app's neutral setpoint: motors off"
    twin.outbox.clear()
    twin.params.set("quadhil.enable", 1)
    for _ in range(1000 // policy.rate_hz):  # the policy's next tick
        twin.tick()
    assert [(s.state, s.event) for s in app_statuses(twin)] == [(ac.AppState.POLICY, ac.AppEvent.STARTED)]
    assert np.allclose(app_relay.relay_state(twin).target_w, (0.0, 0.0, 1.2))


def test_without_gcc_asking_for_weights_fails_naming_it_and_the_default_twin_refuses_mode_2(policy, tmp_path,
                                                                                          monkeypatch):
    from sim.errors import QuadhilError

    monkeypatch.setenv("QUADHIL_APP_POLICY_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(app_policy.shutil, "which", lambda name: None)
    with pytest.raises(QuadhilError, match="gcc not found"):
        CrazyflieTwin(TwinConfig(app_policy=str(policy.weights_h)))
    twin = _airborne_twin(None, z_m=0.0)
    twin.tick()
    rs = app_relay.relay_state(twin)
    assert rs.state == ac.AppState.REFUSED and "gcc not found" in rs.last_error


def test_a_trained_policy_follows_a_setpoint_step(policy):
    if not policy.trained:
        pytest.skip(f"hover figures are for a trained policy; flying {policy.name}")
    twin = _airborne_twin(policy.weights_h)
    # the client streams its target at 10 Hz throughout, or the app's link-loss descent starts
    for k, target in enumerate([(0.0, 0.0, 1.0)] * 20 + [(0.3, -0.2, 1.2)] * 40):
        _setpoint(twin, 1 + k, target)
        for _ in range(100):
            twin.tick()
    assert app_relay.relay_state(twin).state == ac.AppState.POLICY
    err = np.linalg.norm(twin.sim.state.pos_w[0] - (0.3, -0.2, 1.2))
    print(f"{policy.name}: {err:.3f} m from a setpoint 0.42 m away, 4 s after the step")
    assert err < HOVER_RMSE_M


def test_the_twin_logs_the_apps_quadhil_group(policy):
    twin = _airborne_twin(policy.weights_h)
    for _ in range(500):
        twin.tick()
    values = {f"{v.group}.{v.name}": v.getter() for v in twin.log.variables if v.group == "quadhil"}
    rs = app_relay.relay_state(twin)
    assert set(values) == {"quadhil.state", "quadhil.event", "quadhil.wdTrips", "quadhil.rejected",
                           *(f"quadhil.m{i}" for i in range(1, 5)), *(f"quadhil.a{i}" for i in range(1, 5))}
    assert values["quadhil.state"] == ac.AppState.POLICY and values["quadhil.event"] == ac.AppEvent.STARTED
    assert [values[f"quadhil.a{i}"] for i in range(1, 5)] == pytest.approx(rs.last_action.tolist())
    # the PWM ratio is the force the motors get: thrust = command_to_thrust(ratio)
    ratios = np.array([values[f"quadhil.m{i}"] for i in range(1, 5)])
    assert twin.vehicle.command_to_thrust(ratios) == pytest.approx(twin.motor_cmd_n[0].tolist())


# ---------------------------------------------------------------------- end to end, real cflib

def _fly(args: list[str], timeout_s: float = 90.0) -> tuple[int, dict, str]:
    cmd = [sys.executable, "-m", "quadhil", "fly", *args, "--arm", "--quiet", "--json", "--realtime"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    return proc.returncode, (json.loads(lines[-1]) if lines else {}), err


def test_the_onboard_network_flies_the_twin_through_cflib_and_the_bridge_lands_it(policy, tmp_path):
    """quadhil sitl crazyflie --app-policy (a process) runs the app's C; quadhil fly --onboard (another)
    takes off, hands the motors to mode 2 with SETPOINTs over cflib, watches, and takes them back."""
    from tests.sitl.conftest import start_crazyflie_twin

    with start_crazyflie_twin(0, "--app-policy", str(policy.weights_h)) as twin:
        rc, d, err = _fly(["--onboard", "--model", str(policy.tflite), "--link", twin.uri, "--target", "0,0,0.8",
                           "--duration", "3", "--log", str(tmp_path / "flights")])
    assert d, f"no JSON from quadhil fly --onboard (exit {rc}): {err[-2000:]}"
    print(f"onboard ({policy.name}): {d['final_state']}, RMSE {d['rmse_m']}, max {d['max_error_m']}, "
          f"app states {d['app_states']}, reason {d['reason']}")
    assert "policy" in d["app_states"], "the app must report its policy running"
    rows = [json.loads(ln) for ln in Path(d["log"]).read_text().splitlines()]
    assert [r["phase"] for r in rows if r["type"] == "phase"] == ["takeoff", "onboard", "land"]
    assert sum(r["type"] == "tick" for r in rows) >= 20 and rows[-1]["type"] == "summary"
    if policy.trained:
        assert rc == 0 and d["final_state"] == "landed"
        assert d["rmse_m"] < HOVER_RMSE_M
    else:  # the climbing stand-in leaves the abort radius: the bridge takes the motors back
        assert rc == 3 and d["final_state"] == "failsafe" and "from the target" in d["reason"]


def test_the_bridge_reports_the_apps_link_lost_and_its_setpoints_resume_the_policy(policy, tmp_path):
    """An app whose quadhil.lossMs (30 ms, set on the twin) is shorter than the bridge's 50 ms SETPOINT
    period trips between setpoints: quadhil fly --onboard hears link_lost/watchdog, lists it in
    app_states and its log, and each next SETPOINT resumes the policy (policy/resumed)."""
    from sim.sitl.crazyflie.server import CrazyflieServer

    twin = CrazyflieTwin(TwinConfig(app_policy=str(policy.weights_h)))
    twin.params.set("quadhil.lossMs", 30)
    with serving(CrazyflieServer(twin, host="127.0.0.1", port=0), realtime=True) as server:
        rc, d, err = _fly(["--onboard", "--model", str(policy.tflite), "--link", server.uri, "--target", "0,0,0.8",
                           "--duration", "2", "--log", str(tmp_path / "flights")])
    assert d, f"no JSON from quadhil fly --onboard (exit {rc}): {err[-2000:]}"
    assert "link_lost" in d["app_states"] and "policy" in d["app_states"]
    rows = [json.loads(ln) for ln in Path(d["log"]).read_text().splitlines()]
    seen = {(r["state"], r["event"]) for r in rows if r["type"] == "app_status"}
    assert {("link_lost", "watchdog"), ("policy", "resumed")} <= seen
    assert app_relay.relay_state(twin).watchdog_trips >= 2


def test_an_onboard_bridge_wedged_in_cflib_logs_the_stall_and_lands_when_it_turns_again(policy, tmp_path):
    """The loop watchdog in --onboard flights (firmware_bridge.loop_watchdog): the bridge, in this
    process, streams SETPOINTs through the real cflib; the test holds cflib's send lock for 1.5 s
    (what cflib 0.1.34's link-error deadlock did), so the bridge's loop blocks in send_packet. A
    ``stall`` record is written at once; when the loop turns again the bridge takes the motors back."""
    import threading
    import time

    from firmware_bridge.links.crazyflie import CrazyflieLink
    from firmware_bridge.onboard_flight import OnboardConfig, fly_onboard
    from tests.sitl.conftest import start_crazyflie_twin

    with start_crazyflie_twin(0, "--app-policy", str(policy.weights_h)) as twin:
        cfg = OnboardConfig(model=str(policy.tflite), link=twin.uri, target_w=(0.0, 0.0, 0.8), duration_s=6.0,
                            arm=True, log_dir=str(tmp_path / "flights"), stall_timeout_s=0.5)
        link = CrazyflieLink(twin.uri)
        out: dict = {}
        t = threading.Thread(target=lambda: out.update(d=fly_onboard(cfg, log=lambda *a: None, link=link)),
                             daemon=True)
        t.start()
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and not any(s.state == ac.AppState.POLICY for s in link.app_status):
            time.sleep(0.05)
        assert any(s.state == ac.AppState.POLICY for s in link.app_status), "the app never flew its policy"
        send_lock = link._cf._send_lock
        assert send_lock.acquire(timeout=2.0)
        try:
            time.sleep(1.5)
        finally:
            send_lock.release()
        t.join(30.0)
        assert not t.is_alive(), "the onboard flight did not end after the wedge was released"
    d = out["d"]
    assert d["final_state"] == "failsafe" and d["reason"].startswith("control loop stalled for "), d
    rows = [json.loads(ln) for ln in Path(d["log"]).read_text().splitlines()]
    stalls = [r for r in rows if r["type"] == "stall"]
    assert len(stalls) == 1 and 0.5 < stalls[0]["stalled_s"] < 1.5
    assert any("send_packet" in frame for frame in stalls[0]["where"]), stalls[0]["where"]
    assert [r["phase"] for r in rows if r["type"] == "phase"] == ["takeoff", "onboard", "land"]


def test_an_app_holding_the_placeholder_refuses_and_the_bridge_lands(policy, tmp_path):
    """A twin without --app-policy holds the app's committed placeholder: mode 2 refuses it (motors
    off), the bridge hears it, takes the motors back and says why."""
    from tests.sitl.conftest import start_crazyflie_twin

    with start_crazyflie_twin(0) as twin:
        rc, d, err = _fly(["--onboard", "--model", str(policy.tflite), "--link", twin.uri, "--target", "0,0,0.6",
                           "--duration", "2", "--log", str(tmp_path / "flights")])
    assert d, f"no JSON from quadhil fly --onboard (exit {rc}): {err[-2000:]}"
    assert rc == 2 and d["final_state"] == "refused" and d["reason"].startswith("app refused")
    assert d["app_states"][-1] == "refused"


def test_onboard_refuses_a_policy_the_app_would_refuse_before_connecting(tmp_path):
    from deploy.export import export_policy
    from tests.firmware_bridge.onboard_support import make_actor

    actor, spec, _ = make_actor("crazyflie", "ctbr")
    run = tmp_path / "run"
    run.mkdir()
    actor.save(run / "actor_best.keras")
    (run / "config.json").write_text(json.dumps({"spec": spec.to_dict()}))
    export_policy(run, tmp_path / "ctbr.tflite", "none", parity_obs=200, episodes=0, log=lambda *a, **k: None)
    rc, d, err = _fly(["--onboard", "--model", str(tmp_path / "ctbr.tflite"), "--link", "udp://127.0.0.1:9"])
    assert rc == 2 and "motor-level" in err and not d


class _CflibClient:
    """A twin served on a free UDP port (a thread) and a cflib client hearing the app's STATUS packets
    and logging quadhil.state / quadhil.m1 at 10 Hz. Closed (link, server, thread) even on failure."""

    def __init__(self, twin: CrazyflieTwin):
        from sim.sitl.crazyflie.server import CrazyflieServer

        self.twin = twin
        self.server = CrazyflieServer(twin, host="127.0.0.1", port=0)
        self._serving = contextlib.ExitStack()
        self.statuses: list[ac.StatusPacket] = []
        self.logged: list[dict] = []
        self.scf = self.conf = None

    def __enter__(self) -> "_CflibClient":
        from cflib.crazyflie.log import LogConfig

        from tests.sitl.conftest import connect_cflib

        self._serving.enter_context(serving(self.server))
        try:
            self.scf = connect_cflib(self.server.uri)
            self.scf.cf.appchannel.packet_received.add_callback(
                lambda data: self.statuses.append(ac.decode(bytes(data))))
            self.conf = LogConfig(name="app", period_in_ms=100)
            for name in ("quadhil.state", "quadhil.m1"):
                self.conf.add_variable(name)
            self.conf.data_received_cb.add_callback(lambda ts, data, c: self.logged.append(dict(data)))
            self.scf.cf.log.add_config(self.conf)
            self.conf.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.scf is not None:
            self.scf.close_link()
        self._serving.close()

    def wait_status(self, state: ac.AppState, event: ac.AppEvent, timeout_s: float, after: int = 0) -> int:
        """Index of the first STATUS (state, event) from index ``after`` on, or AssertionError."""
        import time

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for i, st in enumerate(self.statuses[after:], after):
                if (st.state, st.event) == (state, event):
                    return i
            time.sleep(0.01)
        raise AssertionError(f"no {state.name}/{event.name} STATUS within {timeout_s} s: "
                             f"{[(s.state.name, s.event.name) for s in self.statuses]}")

    def send_setpoint(self, seq: int, target) -> None:
        self.scf.cf.appchannel.send_packet(ac.encode_setpoint(seq, target))

    def set_param(self, name: str, value) -> None:
        self.scf.cf.param.set_value(name, str(value))


def test_through_cflib_a_silent_client_makes_mode_2_land_by_itself_and_a_setpoint_in_time_resumes(policy):
    """The client (cflib) starts mode 2 1 m up, then goes silent: lossMs (500 ms, read through cflib)
    later, by the app's clock, it hears link_lost/watchdog; a SETPOINT then resumes (policy/resumed);
    silent again, the app descends and cuts its motors within z / 0.3 m/s + 2 s, logged as
    quadhil.state = link_lost, m1 = 0, and they stay off; quadhil.enable = 0 gives idle/disabled."""
    import time

    twin = CrazyflieTwin(TwinConfig(start_m=(0.0, 0.0, 1.0), app_policy=str(policy.weights_h)))
    with _CflibClient(twin) as c:
        assert int(c.scf.cf.param.get_value("quadhil.lossMs")) == 500
        c.send_setpoint(1, (0.0, 0.0, 1.0))
        c.set_param("quadhil.mode", 2)
        c.set_param("quadhil.enable", 1)
        i_start = c.wait_status(ac.AppState.POLICY, ac.AppEvent.STARTED, 3.0)
        i_lost = c.wait_status(ac.AppState.LINK_LOST, ac.AppEvent.WATCHDOG, 2.0, after=i_start)
        silent_ms = c.statuses[i_lost].time_ms - c.statuses[i_start].time_ms
        assert 500 <= silent_ms <= 500 + 1000 // policy.rate_hz + 1, "lossMs, checked on the policy's ticks"
        assert c.statuses[i_lost].watchdog_trips == 1
        c.send_setpoint(2, (0.0, 0.0, 1.0))
        i_resumed = c.wait_status(ac.AppState.POLICY, ac.AppEvent.RESUMED, 1.0, after=i_lost)
        i_lost = c.wait_status(ac.AppState.LINK_LOST, ac.AppEvent.WATCHDOG, 2.0, after=i_resumed)
        t_lost = time.monotonic()
        rs = app_relay.relay_state(twin)
        # down at 0.3 m/s; a vehicle that does not follow is 0.3 m above its target within 1 s, cut 1 s later
        bound_s = rs.loss_trip_z_m / 0.3 + 2.0
        # the wall clock only bounds the wait (the twin's real-time loop may lag on a loaded machine)
        while not (c.logged and c.logged[-1]["quadhil.m1"] == 0.0) and time.monotonic() - t_lost < bound_s + 5.0:
            time.sleep(0.01)
        assert rs.loss_cut and c.logged[-1]["quadhil.m1"] == 0.0
        cut_s = rs.loss_cut_s - rs.loss_times_s[-1]
        print(f"through cflib ({policy.name}): silent {silent_ms} ms -> link_lost; second loss at z "
              f"{rs.loss_trip_z_m:.2f} m, motors cut {cut_s:.2f} s later, twin time (bound {bound_s:.2f} s), "
              f"heard in the log {time.monotonic() - t_lost:.2f} s (wall) after the STATUS")
        assert cut_s < bound_s
        n_cut = len(c.logged)
        z_cut = float(twin.sim.state.pos_w[0, 2])
        time.sleep(1.0)
        after_cut = c.logged[n_cut - 1:]
        assert len(after_cut) >= 5 and all(r["quadhil.m1"] == 0.0 and r["quadhil.state"] == ac.AppState.LINK_LOST
                                           for r in after_cut), "the motors stay off"
        # z_cut is read when the test hears the cut, which on a loaded machine can be after the
        # vehicle (1 m up, motors off: under 0.5 s) already lies on the ground
        down = float(twin.sim.state.pos_w[0, 2]) < z_cut or bool(twin.sim.state.on_ground[0])
        assert np.all(twin.motor_cmd_n == 0) and down, "coming down"
        c.set_param("quadhil.enable", 0)
        c.wait_status(ac.AppState.IDLE, ac.AppEvent.DISABLED, 3.0, after=i_lost)
        assert rs.watchdog_trips == 2


def test_through_cflib_lossMs_0_lets_mode_2_outlive_a_silent_client_until_the_client_disables_it(policy):
    """quadhil.lossMs = 0 through cflib (unsafe, the behaviour before the link watchdog): the client
    starts mode 2 and sends nothing for 3 s; the app keeps flying, logged as quadhil.state = policy,
    and the supervisor never levels out or locks it. quadhil.enable = 0: the client hears
    idle/disabled and the motors stop (the PID controller on the app's neutral setpoint)."""
    import time

    twin = CrazyflieTwin(TwinConfig(app_policy=str(policy.weights_h)))
    with _CflibClient(twin) as c:
        z0 = float(twin.sim.state.pos_w[0, 2])
        c.set_param("quadhil.lossMs", 0)
        c.send_setpoint(1, (0.0, 0.0, z0 + 0.5))
        c.set_param("quadhil.mode", 2)
        c.set_param("quadhil.enable", 1)
        i_start = c.wait_status(ac.AppState.POLICY, ac.AppEvent.STARTED, 3.0)
        time.sleep(3.0)  # the client is silent: past lossMs and the commander's 0.5 s and 2 s watchdogs
        rs = app_relay.relay_state(twin)
        assert rs.loss_ms == 0 and rs.state == ac.AppState.POLICY and twin.supervisor.state == State.FLYING
        assert rs.watchdog_trips == 0 and len(c.statuses) == i_start + 1
        assert np.all(twin.motor_cmd_n > 0) and float(twin.sim.state.pos_w[0, 2]) > z0 + 0.2
        assert c.logged and c.logged[-1]["quadhil.state"] == ac.AppState.POLICY and c.logged[-1]["quadhil.m1"] > 0
        c.set_param("quadhil.enable", 0)
        c.wait_status(ac.AppState.IDLE, ac.AppEvent.DISABLED, 3.0, after=i_start)
        time.sleep(0.05)
        assert (c.statuses[-1].state, c.statuses[-1].event) == (ac.AppState.IDLE, ac.AppEvent.DISABLED)
        assert np.all(twin.motor_cmd_n == 0)


def _relay(tflite: Path, duration_s: float, tmp_path: Path, *extra: str) -> tuple[int, dict, list[dict]]:
    """Fly ``tflite`` in mode 1 (quadhil fly relaying motor commands) in a twin process to (0, 0, 0.8)
    m for ``duration_s``: (exit code, its JSON line, the logged ticks that sent an action)."""
    from tests.sitl.conftest import start_crazyflie_twin

    with start_crazyflie_twin(0) as twin:
        rc, d, err = _fly(["--model", str(tflite), "--link", twin.uri, "--target", "0,0,0.8",
                           "--duration", f"{duration_s:g}", "--log", str(tmp_path / "flights"), *extra])
    assert d, f"no JSON from quadhil fly (exit {rc}): {err[-2000:]}"
    rows = [json.loads(ln) for ln in Path(d["log"]).read_text().splitlines()]
    return rc, d, [r for r in rows if r.get("type") == "tick" and r.get("action") is not None]


TELEMETRY_HZ = 100  # cflib log blocks: a 10 ms period unit (firmware_bridge/links/crazyflie.py)


def test_the_relay_flies_the_motors_policy_through_cflib(policy, tmp_path):
    """A policy no faster than the link's 100 Hz state hovers through the relay. A faster one (the
    committed 250 Hz policy) is refused before arming, as it would act 2.5 times on each state (flown
    anyway with --allow-rate-mismatch it hovered at 5.6 cm beside one training run and ended in a
    failsafe beside three: docs/onboard.md); the relay's chain is then flown by the 100 Hz stand-in."""
    if policy.rate_hz > TELEMETRY_HZ:
        rc, d, sent = _relay(policy.tflite, 3, tmp_path / "refused")
        assert rc == 2 and "telemetry-rate" in {r["rule"] for r in d["refused_rules"]} and not sent
        print(f"relay ({policy.name}, {policy.rate_hz} Hz on {TELEMETRY_HZ} Hz state): refused before arming")
        policy = onboard_policy.stand_in(tmp_path / "stand-in")
    rc, d, sent = _relay(policy.tflite, 3, tmp_path)
    assert all("m1_pwm" in r["cmd"] for r in sent), "motor-level commands (the twin's TOC offers the relay app)"
    print(f"relay ({policy.name}): {d['final_state']}, RMSE {d['rmse_m']}, failsafe {d['failsafe']}, "
          f"{len(sent)} policy ticks")
    assert len(sent) >= 50, "the bridge must have relayed the policy's motor commands"
    if policy.trained:
        assert rc == 0 and d["failsafe"] is None
        assert d["rmse_m"] < HOVER_RMSE_M


def test_the_relay_flies_an_integral_network_observing_the_contracts_integral(integral_policy, tmp_path):
    """Mode 1 with layout "integral": the bridge advances the integral with
    sim.contract.integrate_position_error from zero at the hand-over, once per policy tick, from the
    estimate and target it logs for that tick, and observes it (sim.contract.observe)."""
    from deploy.runtime import Policy
    from sim.contract import integrate_position_error

    spec = Policy.load(integral_policy.tflite).spec
    _, d, sent = _relay(integral_policy.tflite, 2, tmp_path)
    assert len(sent) >= 50 and all("m1_pwm" in r["cmd"] for r in sent)
    integral = np.zeros((1, 3))
    sl = spec.obs_slice("position_error_integral_w")
    for r in sent:
        integral = integrate_position_error(integral, np.array([r["pos"]]), np.array(r["target"]), spec)
        assert np.array_equal(np.asarray(r["obs"])[sl], integral[0].astype(np.float32))
    print(f"relay ({integral_policy.name}): {d['final_state']}, {len(sent)} policy ticks, integral {integral[0]}")
    assert np.max(np.abs(integral)) > 1e-3, "the flight must move the integral"
