"""The Crazyflie twin's side of quadhil's onboard app: mode 1 (motor relay) here, mode 2 (onboard
policy, the app's own C) in :mod:`sim.sitl.crazyflie.app_policy`.

The twin routes every CRTP packet on port 13, channel 2 (the app channel) to :func:`handle`, and
calls :func:`tick` once per simulation tick. This module does what
``firmware_bridge/crazyflie_app/src/quadhil_app.c`` does in mode 1, from the same packet
definition (:mod:`sim.sitl.app_channel`):

* a valid MOTORS packet (exact size, version, kind, finite commands in [-1, 1], a sequence newer
  than the last accepted one) sets the four motor thrusts: (a + 1) / 2 of the nominal max motor
  thrust, times ``thrust_scale`` (the app's ``quadhil.thrustScale``), through
  ``twin.set_motor_override``. Anything else is counted as rejected and changes nothing;
* when no valid packet arrived within ``watchdog_ms`` (default 50, the app's ``quadhil.wdMs``) the
  motors drop to zero (safe output), the trip is counted, and a STATUS packet reports it on the
  app channel; the next valid packet resumes the relay (and is reported too).

As in the app, packets are validated and stored as they arrive (:func:`handle`, the app task) and
the motors follow in the 1 kHz loop (:func:`tick`, the controller), only while the ``quadhil``
parameters that :func:`param_specs` adds to the twin's TOC say ``enable = 1`` and ``mode = 1``
(what the bridge sets through cflib); otherwise the twin's own PID controller flies. The relay
never raises on a malformed packet: it refuses it and counts it, like the firmware.
A valid SETPOINT packet (same checks, the same sequence counter as MOTORS, as in the app's
handlePacket) moves the onboard policy's target in any mode; ``mode = 2`` runs
:func:`sim.sitl.crazyflie.app_policy.tick`, any other non-zero mode holds the motors off.
The twin API used: ``set_motor_override(thrust_n (4,) | None)``, ``now_s()``, ``send_crtp(port,
channel, data)``, ``tick_hooks``, ``vehicle`` (the nominal :class:`sim.vehicle.Vehicle`) and
``commander`` (fed a neutral setpoint per valid packet, as the app does; this uses the twin
commander's ``_set``, the twin's equivalent of the firmware's commanderSetSetpoint).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim.command_path import raw_pwm_battery_scale
from sim.sitl import app_channel as ac
from sim.vehicle import Vehicle, load_vehicle


@dataclass
class RelayState:
    """The relay's state on one twin (what the app keeps in its statics)."""

    watchdog_ms: float = float(ac.DEFAULT_WATCHDOG_MS)
    thrust_scale: float = 1.0
    state: ac.AppState = ac.AppState.IDLE
    event: ac.AppEvent = ac.AppEvent.NONE
    last_seq: int | None = None
    last_rx_s: float | None = None
    motors: np.ndarray = field(default_factory=lambda: np.zeros(4))
    accepted: int = 0
    rejected: int = 0
    watchdog_trips: int = 0
    trip_times_s: list = field(default_factory=list)  # twin time of each watchdog trip
    trip_ages_s: list = field(default_factory=list)  # time from the last valid packet to the trip
    last_error: str = ""
    overriding: bool = False
    # mode 2 (sim.sitl.crazyflie.app_policy): the app's shared target and policy statics
    setpoints_accepted: int = 0
    target_w: np.ndarray | None = None  # m ENU; None until a SETPOINT or the policy's first tick
    policy: object = None  # app_policy.CPolicy, loaded when the twin boots
    policy_error: str = ""
    policy_started: bool = False
    policy_ticks: int = 0
    history: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    # m*s world ENU, float32: the app's positionIntegral (layout "integral"), zeroed on the policy's first tick
    position_integral: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.float32))
    last_action: np.ndarray = field(default_factory=lambda: np.zeros(4))
    pwm_ratio: np.ndarray = field(default_factory=lambda: np.zeros(4))
    last_feed_s: float | None = None
    # mode 2's link watchdog (quadhil_app.c followLink)
    loss_ms: float = float(ac.DEFAULT_LINK_LOSS_MS)
    link_rx_s: float | None = None  # twin time of the last valid packet of any kind
    loss_setpoints: int = 0  # setpoints_accepted when the link was lost
    loss_cut: bool = False  # landed after a link loss: motors off until quadhil.enable = 0
    loss_stuck_since_s: float | None = None  # the target far below the estimate since then
    loss_times_s: list = field(default_factory=list)  # twin time of each link-loss trip
    loss_cut_s: float | None = None  # twin time of the last cut
    loss_trip_z_m: float | None = None  # the estimate's z at the last link-loss trip, m
    last_inputs: tuple | None = None  # the policy's last tick: estimate, target and history it saw
    last_obs: np.ndarray | None = None


_ATTR = "_quadhil_app_relay"


def relay_state(twin) -> RelayState:
    """The relay state attached to ``twin`` (created on first use - the twin does so when it boots -,
    which also registers :func:`tick` in ``twin.tick_hooks`` so the app's controller runs every twin
    tick, and loads the onboard policy's C, see :func:`sim.sitl.crazyflie.app_policy.load_for_twin`)."""
    state = getattr(twin, _ATTR, None)
    if state is None:
        from sim.sitl.crazyflie import app_policy

        state = RelayState()
        app_policy.load_for_twin(twin, state)
        setattr(twin, _ATTR, state)
        hooks = getattr(twin, "tick_hooks", None)
        if hooks is not None and tick not in hooks:
            hooks.append(tick)
    return state


def _feed_commander(twin) -> None:
    """What the app's feedCommander does: a neutral setpoint resets the commander watchdog, so the
    supervisor keeps a relay-flown vehicle flying (commanderSetSetpoint, supervisor.c)."""
    commander = getattr(twin, "commander", None)
    if commander is not None:
        from sim.sitl.crazyflie.commander import NULL_SETPOINT

        commander._set(NULL_SETPOINT, _now_s(twin))


def _vehicle(twin) -> Vehicle:
    vehicle = getattr(twin, "vehicle", None)
    return vehicle if isinstance(vehicle, Vehicle) else load_vehicle("crazyflie")


def _now_s(twin) -> float:
    return float(twin.now_s())


def _report(twin, rs: RelayState) -> None:
    status = ac.StatusPacket(
        sequence=rs.last_seq or 0, state=rs.state, event=rs.event, watchdog_trips=rs.watchdog_trips,
        rejected=rs.rejected, time_ms=int(round(_now_s(twin) * 1000.0)))
    send = getattr(twin, "send_crtp", None)
    if send is not None:
        send(ac.APP_CHANNEL_PORT, ac.APP_CHANNEL_CHANNEL, ac.encode_status(status))


def _set_state(twin, rs: RelayState, state: ac.AppState, event: ac.AppEvent) -> None:
    if state != rs.state or event != rs.event:
        rs.state, rs.event = state, event
        _report(twin, rs)


def _apply(twin, rs: RelayState) -> None:
    vehicle = _vehicle(twin)
    frac = 0.5 * (np.clip(rs.motors, -1.0, 1.0) + 1.0)
    # The app commands controlModeForce; powerDistributionForce maps a force f to f * 65535 and the
    # stabilizer's battery compensation reads that as thrust (motors.c: linear to THRUST_MAX, 0
    # below THRUST_MIN); without compensation it is PWM (vehicle.command_to_thrust does both).
    # qh_action_to_pwm_ratio: the thrust asked is frac x QH_THRUST_MAX_N (THRUST_MAX for a policy
    # trained on the file's compensated Crazyflie) x quadhil.thrustScale; compensated, f = thrust /
    # THRUST_MAX; without compensation the PWM through the curve, times V_curve / pm.vbat (>= 2 V).
    u = np.clip(vehicle.thrust_to_command(frac * rs.thrust_scale * vehicle.command_path.thrust_max_n), 0.0, 1.0)
    if not vehicle.compensated:
        vbat_v = float(twin.battery.vbat_v) if hasattr(twin, "battery") else None
        u = np.clip(u * raw_pwm_battery_scale(vbat_v, vehicle), 0.0, 1.0)
    rs.last_action, rs.pwm_ratio = rs.motors.copy(), u  # the app's applyActions: lastAction, pwmRatio
    twin.set_motor_override(vehicle.command_to_thrust(u))


def motors_off(twin, rs: RelayState) -> None:
    """The app's motorsOff: zero force on every motor, and its logged PWM ratios zeroed."""
    rs.pwm_ratio = np.zeros(4)
    twin.set_motor_override(np.zeros(4))


def _param(twin, name: str, default: float) -> float:
    params = getattr(twin, "params", None)
    if params is None:
        return default
    try:
        return float(params.get(f"quadhil.{name}"))
    except KeyError:
        return default


def _mode(twin) -> int:
    """The mode the app's controller runs: 0 when quadhil.enable = 0 (the PID controller flies),
    else quadhil.mode (1 relay, 2 onboard policy)."""
    return int(_param(twin, "mode", 1.0)) if bool(_param(twin, "enable", 1.0)) else 0


def _active(twin) -> bool:
    """quadhil.enable = 1 and quadhil.mode = 1 (the app's controller runs the relay)."""
    return _mode(twin) == 1


def param_specs(twin) -> list:
    """The app's ``quadhil`` parameter group (quadhil_app.c PARAM_GROUP_START(quadhil)) for the
    twin's param TOC: enable (0), mode (1 relay, 2 policy), wdMs (50), lossMs (500), thrustScale (1.0)."""
    from sim.sitl.crazyflie.params import ParamSpec

    return [
        ParamSpec("quadhil", "enable", "uint8_t", 0),
        ParamSpec("quadhil", "mode", "uint8_t", 1),
        ParamSpec("quadhil", "wdMs", "uint16_t", ac.DEFAULT_WATCHDOG_MS),
        ParamSpec("quadhil", "lossMs", "uint16_t", ac.DEFAULT_LINK_LOSS_MS),
        ParamSpec("quadhil", "thrustScale", "float", 1.0),
    ]


def log_vars(twin) -> list:
    """The app's ``quadhil`` log group (quadhil_app.c LOG_GROUP_START(quadhil)) for the twin's log TOC:
    state, event (uint8), wdTrips, rejected (uint32), m1..m4 (PWM ratio sent to the motors), a1..a4
    (last action), floats. Read from the relay state when it exists (the twin attaches it at boot)."""
    from sim.sitl.crazyflie.logging import LogVar

    def get(attr: str, i: int | None = None):
        def value() -> float:
            rs = getattr(twin, _ATTR, None)
            if rs is None:
                return 0.0
            v = getattr(rs, attr)
            return float(v[i] if i is not None else v)
        return value

    out = [LogVar("quadhil", "state", "uint8_t", get("state")), LogVar("quadhil", "event", "uint8_t", get("event")),
           LogVar("quadhil", "wdTrips", "uint32_t", get("watchdog_trips")),
           LogVar("quadhil", "rejected", "uint32_t", get("rejected"))]
    out += [LogVar("quadhil", f"m{i + 1}", "float", get("pwm_ratio", i)) for i in range(4)]
    out += [LogVar("quadhil", f"a{i + 1}", "float", get("last_action", i)) for i in range(4)]
    return out


def handle(twin, payload: bytes) -> None:
    """One app-channel datagram from the client (the app task's handlePacket): validate and store.
    The motors follow at the next tick. Never raises for bad input."""
    rs = relay_state(twin)
    try:
        packet = ac.decode(payload)
    except ac.PacketError as exc:
        rs.rejected += 1
        rs.last_error = str(exc)
        return
    if not isinstance(packet, (ac.MotorPacket, ac.SetpointPacket)):
        # STATUS is app -> client: the app's handlePacket counts anything else as rejected
        rs.rejected += 1
        rs.last_error = f"{type(packet).__name__} is not a client packet"
        return
    if not ac.sequence_is_newer(packet.sequence, rs.last_seq):
        rs.rejected += 1
        rs.last_error = f"sequence {packet.sequence} is not newer than {rs.last_seq}"
        return
    rs.last_seq = packet.sequence
    rs.link_rx_s = _now_s(twin)  # any valid packet feeds mode 2's link watchdog
    if isinstance(packet, ac.SetpointPacket):  # stored in any mode; only the policy reads it
        rs.target_w = np.asarray(packet.target_w, dtype=np.float64)
        rs.setpoints_accepted += 1
        return
    rs.last_rx_s = _now_s(twin)
    rs.motors = np.asarray(packet.motors, dtype=np.float64)
    rs.accepted += 1
    if _active(twin):
        _feed_commander(twin)


def tick(twin) -> None:
    """The app's controller (controllerOutOfTree), once per twin tick. Mode 1: apply the last valid
    packet, or, when none arrived within ``watchdog_ms``, motors off and report. Mode 2: the onboard
    policy (:mod:`sim.sitl.crazyflie.app_policy`). Disabled: hand the motors back."""
    rs = getattr(twin, _ATTR, None)
    if rs is None:
        return
    mode = _mode(twin)
    if mode == 0:
        rs.policy_started = False
        rs.loss_cut = False
        if rs.state != ac.AppState.IDLE or rs.overriding:
            twin.set_motor_override(None)
            rs.overriding = False
            _set_state(twin, rs, ac.AppState.IDLE, ac.AppEvent.DISABLED)
        return
    rs.overriding = True
    rs.watchdog_ms = _param(twin, "wdMs", rs.watchdog_ms)  # read every tick, like the app's statics
    rs.thrust_scale = _param(twin, "thrustScale", rs.thrust_scale)
    rs.loss_ms = _param(twin, "lossMs", rs.loss_ms)
    if mode == 2:
        from sim.sitl.crazyflie import app_policy

        app_policy.tick(twin, rs, lambda state, event: _set_state(twin, rs, state, event), _feed_commander)
        return
    rs.policy_started = False
    if mode != 1:
        motors_off(twin, rs)  # quadhil_app.c: an unknown mode holds the motors off
        return
    if rs.last_rx_s is None:
        motors_off(twin, rs)  # enabled, nothing received yet: motors off
        _set_state(twin, rs, ac.AppState.IDLE, ac.AppEvent.NONE)
        return
    now = _now_s(twin)
    age_s = now - rs.last_rx_s
    # whole microseconds, so 1 ms twin ticks compare exactly: trips when 50 ms have passed
    if round(age_s * 1e6) >= round(rs.watchdog_ms * 1e3):
        if rs.state != ac.AppState.RELAY_TIMEOUT:
            rs.watchdog_trips += 1
            rs.trip_times_s.append(now)
            rs.trip_ages_s.append(age_s)
        motors_off(twin, rs)  # safe output: motors off until a valid packet
        _set_state(twin, rs, ac.AppState.RELAY_TIMEOUT, ac.AppEvent.WATCHDOG)
        return
    event = {ac.AppState.RELAY_TIMEOUT: ac.AppEvent.RESUMED, ac.AppState.IDLE: ac.AppEvent.STARTED}.get(rs.state,
                                                                                                       rs.event)
    _apply(twin, rs)
    _set_state(twin, rs, ac.AppState.RELAY, event)


def release(twin) -> None:
    """Hand the motors back to the twin's own controller and forget the relay state."""
    rs = getattr(twin, _ATTR, None)
    if rs is not None:
        twin.set_motor_override(None)
        _set_state(twin, rs, ac.AppState.IDLE, ac.AppEvent.DISABLED)
        setattr(twin, _ATTR, None)
        hooks = getattr(twin, "tick_hooks", None)
        if hooks is not None and tick in hooks:
            hooks.remove(tick)
